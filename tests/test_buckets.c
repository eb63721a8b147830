/* test_buckets.c: the gradient bucket layout (src/comm/buckets.h) that the
 * MPI and NCCL paths and ZeRO-1's optimizer ranges share. For parameter
 * counts that do and do not divide by the rank count (B0's 7142650 on 3
 * ranks among them): the ranks' pieces tile [0, n) exactly, in order; piece
 * r of a bucket starts at lo + r q with q = len / world (ncclReduceScatter's
 * in-place layout), and only the last rank's piece is longer (the tail). */
#include "comm/buckets.h"
#include "test_util.h"

#include <stdlib.h>

static void check_layout(TestState *ts, size_t n, double mb, int world) {
    int nb = 0;
    size_t *lo = eff_bucket_bounds(n, mb, &nb);
    T_CHECK(ts, nb >= 1 && lo[0] == 0 && lo[nb] == n, "n %zu: bounds [%zu, %zu] over %d buckets", n, lo[0], lo[nb], nb);
    unsigned char *hit = calloc(n ? n : 1, 1);
    EffSeg *seg = malloc(sizeof(EffSeg) * (size_t)nb);
    for (int r = 0; r < world; r++) {
        const int ns = eff_bucket_owned(lo, nb, r, world, seg);
        for (int i = 0; i < ns; i++) {
            T_CHECK(ts, i == 0 || seg[i].lo >= seg[i - 1].lo + seg[i - 1].n, "rank %d: ranges out of order", r);
            for (size_t j = seg[i].lo; j < seg[i].lo + seg[i].n && j < n; j++) hit[j]++;
        }
    }
    size_t bad = 0;
    for (size_t j = 0; j < n; j++) bad += hit[j] != 1;
    T_CHECK(ts, bad == 0, "n %zu, %g MiB, %d ranks: %zu parameters not owned by exactly one rank", n, mb, world, bad);
    for (int k = 0; k < nb; k++) {
        const size_t q = (lo[k + 1] - lo[k]) / (size_t)world;
        for (int r = 0; r < world; r++) {
            const size_t a = eff_piece_lo(lo[k], lo[k + 1], r, world), b = eff_piece_lo(lo[k], lo[k + 1], r + 1, world);
            T_CHECK(ts, a == lo[k] + (size_t)r * q && (r == world - 1 ? b - a == q + (lo[k + 1] - lo[k]) % (size_t)world : b - a == q),
                    "bucket %d piece %d of %d: [%zu, %zu), q %zu", k, r, world, a, b, q);
        }
    }
    free(seg);
    free(hit);
    eff_free(lo);
}

int main(void) {
    TestState ts = {0, 0};
    const size_t sizes[] = {7142650, 1000003, 4096, 5, 1};
    const double mbs[] = {4.0, 1.0, 0.001};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        for (size_t j = 0; j < sizeof mbs / sizeof *mbs; j++)
            for (int world = 1; world <= 8; world++) check_layout(&ts, sizes[i], mbs[j], world);
    return t_finish(&ts, "test_buckets");
}
