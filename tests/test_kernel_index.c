/* test_kernel_index: the index math of the CUDA kernels (kernels/dw_index.cuh, ew_index.cuh,
 * index_math.cuh), run on the CPU -- no GPU, no CUDA toolkit needed.
 *
 *  - fast division (EffDivmod) against / and % for divisors 1..4096 and
 *    large ones, numerators at every boundary and random, up to 2^31 - 1;
 *  - depthwise conv taps: the forward spans and the backward-input gather
 *    ranges (no division per tap) against a brute-force enumeration of all
 *    (output, tap) pairs, the same pairs in the same order (the CPU op's
 *    kh-then-kw order), in 1D for every size 1..80 and EfficientNet's sizes,
 *    and in 2D for every pixel of a set of shapes;
 *  - the thread decode (tid -> pixel, channel group) is a bijection with
 *    element offset tid * V; the weight-gradient walk (carries instead of
 *    division) against direct division; the chunks tile the pixels;
 *  - the row walk of the BN/SE/elementwise kernels visits every vector of
 *    [rows][C/V] exactly once with the right channel group, for every grid
 *    shape tried, and row pieces tile the rows;
 *  - the launchers' size checks reject what 32-bit indexing cannot hold and
 *    accept EfficientNet's largest shapes.
 * All comparisons are exact (integers). Exit 0 pass, 1 fail. */
#include "dw_index.cuh"
#include "ew_index.cuh"
#include "rng.h"
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

static TestState ts;

/* ---- fast division ---- */
static int check_div(uint32_t d, uint32_t n) {
    EffDivmod m = eff_divmod_make(d);
    uint32_t q, r;
    eff_divmod(m, n, &q, &r);
    if (q == n / d && r == n % d) return 1;
    T_CHECK(&ts, 0, "divmod %u / %u: got %u r %u, want %u r %u", n, d, q, r, n / d, n % d);
    return 0;
}

static void test_divmod(EffRng *rng) {
    static const uint32_t big[] = {4097, 65535, 65536, 65537, 1u << 20, (1u << 20) + 1, 1000003, (1u << 30) - 1,
                                   1u << 30, (1u << 30) + 1, 0x7ffffffeu, 0x7fffffffu};
    long bad = 0, n_checks = 0;
    for (int k = 0; k < 4096 + 12; k++) {
        const uint32_t d = k < 4096 ? (uint32_t)k + 1 : big[k - 4096];
        uint32_t ns[64];
        int nn = 0;
        const uint32_t edges[] = {0, 1, d - 1, d, d + 1, 2 * d - 1, 2 * d, 0x7fffffffu, 0x7ffffffeu,
                                  0x7fffffffu / d * d, 0x7fffffffu / d * d - 1};
        for (size_t e = 0; e < sizeof edges / sizeof edges[0]; e++)
            if (edges[e] <= 0x7fffffffu) ns[nn++] = edges[e];
        while (nn < 64) ns[nn++] = (uint32_t)(eff_rng_next(rng) & 0x7fffffffu);
        for (int i = 0; i < nn; i++, n_checks++) bad += !check_div(d, ns[i]);
    }
    for (uint32_t d = 1; d <= 64; d++) /* exhaustive over small numerators */
        for (uint32_t n = 0; n < (1u << 16); n++, n_checks++) {
            EffDivmod m = eff_divmod_make(d);
            if (eff_div(m, n) != n / d) { bad++; T_CHECK(&ts, 0, "div %u / %u", n, d); }
        }
    T_CHECK(&ts, bad == 0, "divmod: %ld of %ld wrong", bad, n_checks);
    printf("divmod: %ld quotients checked\n", n_checks);
}

/* ---- depthwise conv taps, one axis ---- */
typedef struct { int o, k; } Pair;

/* Forward of output o: brute force over k vs the span. */
static int fwd_axis_ok(int o, int K, int S, int I) {
    DwSpan s = dw_fwd_span(o, K, S, I);
    for (int k = 0; k < K; k++) {
        const int i = o * S - K / 2 + k, brute = i >= 0 && i < I, ours = k >= s.k0 && k < s.k1;
        if (brute != ours || (ours && s.i0 + k != i)) return 0;
    }
    return 1;
}

/* Backward of input i: the pairs (o, k) of the gather ranges, in loop order. */
static int bwd_pairs(int i, int K, int S, int O, Pair *p) {
    DwTaps t = dw_bwd_taps(i, K, S, O);
    int n = 0;
    for (int j = 0; j < DW_JMAX(K, S); j++) {
        if (j < t.j0 || j >= t.j1) continue;
        p[n].o = t.o0 - j, p[n].k = t.r + j * S;
        n++;
    }
    return n;
}

/* The same pairs by brute force, as the CPU op finds them (k ascending). */
static int bwd_pairs_brute(int i, int K, int S, int O, Pair *p) {
    int n = 0;
    for (int k = 0; k < K; k++)
        for (int o = 0; o < O; o++)
            if (o * S - K / 2 + k == i) p[n].o = o, p[n].k = k, n++;
    return n;
}

static int pairs_equal(const Pair *a, int na, const Pair *b, int nb) {
    return na == nb && (na == 0 || memcmp(a, b, sizeof(Pair) * (size_t)na) == 0);
}

static void test_taps_1d(void) {
    static const int model_sizes[] = {112, 224, 56, 28, 14, 7, 600, 300, 150, 75, 38, 19, 10, 260, 130, 65, 33, 17};
    long pairs = 0, bad = 0;
    for (int idx = 0; idx < 80 + (int)(sizeof model_sizes / sizeof model_sizes[0]); idx++) {
        const int I = idx < 80 ? idx + 1 : model_sizes[idx - 80];
        for (int K = 3; K <= 5; K += 2)
            for (int S = 1; S <= 2; S++) {
                const int O = dw_out_size(I, K, S);
                for (int o = 0; o < O; o++) bad += !fwd_axis_ok(o, K, S, I);
                for (int i = 0; i < I; i++) {
                    Pair a[8], b[8];
                    const int na = bwd_pairs(i, K, S, O, a), nb = bwd_pairs_brute(i, K, S, O, b);
                    pairs += nb;
                    if (!pairs_equal(a, na, b, nb)) {
                        bad++;
                        T_CHECK(&ts, 0, "bwd taps I=%d K=%d S=%d i=%d: %d pairs, brute force %d", I, K, S, i, na, nb);
                    }
                }
            }
    }
    T_CHECK(&ts, bad == 0, "1D taps: %ld mismatches", bad);
    printf("taps 1D: %ld backward (output, tap) pairs matched\n", pairs);
}

/* 2D: every pixel's (oh, ow, kh, kw) sequence in the kernel's loop order vs
 * the CPU op's loops with % and / (src/ops/dwconv.c). */
static int bwd_pixel_ok(int ih, int iw, int K, int S, int Ho, int Wo, long *npairs) {
    Pair ph[8], pw[8];
    const int nh = bwd_pairs(ih, K, S, Ho, ph), nw = bwd_pairs(iw, K, S, Wo, pw);
    int ours[64][4], n = 0, m = 0;
    for (int a = 0; a < nh; a++)
        for (int b = 0; b < nw; b++, n++)
            ours[n][0] = ph[a].o, ours[n][1] = pw[b].o, ours[n][2] = ph[a].k, ours[n][3] = pw[b].k;
    const int pad = K / 2;
    for (int kh = 0; kh < K; kh++) {
        const int t = ih + pad - kh;
        if (t < 0 || t % S || t / S >= Ho) continue;
        for (int kw = 0; kw < K; kw++) {
            const int u = iw + pad - kw;
            if (u < 0 || u % S || u / S >= Wo) continue;
            if (m >= n || ours[m][0] != t / S || ours[m][1] != u / S || ours[m][2] != kh || ours[m][3] != kw) return 0;
            m++;
        }
    }
    *npairs += m;
    return m == n;
}

static void test_taps_2d(void) {
    static const int hw[][2] = {{1, 1}, {1, 7}, {2, 3}, {3, 2}, {4, 4}, {5, 7}, {7, 5}, {8, 8}, {9, 9},
                                {14, 14}, {15, 16}, {16, 15}, {19, 19}, {28, 28}, {38, 38}, {75, 75}};
    long npairs = 0, bad = 0;
    for (size_t s = 0; s < sizeof hw / sizeof hw[0]; s++)
        for (int K = 3; K <= 5; K += 2)
            for (int S = 1; S <= 2; S++) {
                const int H = hw[s][0], W = hw[s][1], Ho = dw_out_size(H, K, S), Wo = dw_out_size(W, K, S);
                for (int ih = 0; ih < H; ih++)
                    for (int iw = 0; iw < W; iw++)
                        if (!bwd_pixel_ok(ih, iw, K, S, Ho, Wo, &npairs)) {
                            bad++;
                            T_CHECK(&ts, 0, "2D bwd taps H=%d W=%d K=%d S=%d pixel (%d,%d)", H, W, K, S, ih, iw);
                        }
            }
    T_CHECK(&ts, bad == 0, "2D taps: %ld pixels wrong", bad);
    printf("taps 2D: %ld (output, tap) pairs matched in order\n", npairs);
}

/* ---- thread decode, weight-gradient walk, chunks ---- */
static void test_decode(void) {
    static const int shapes[][3] = {{1, 1, 1}, {2, 3, 8}, {7, 7, 16}, {5, 9, 24}, {14, 14, 40}, {3, 1, 12},
                                    {19, 19, 1152}, {1, 6, 4}};
    static const int vs[] = {1, 4, 8};
    long n = 0, bad = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int v = 0; v < 3; v++) {
            const int H = shapes[s][0], W = shapes[s][1], C = shapes[s][2], V = vs[v];
            if (C % V) continue;
            const EffDivmod cv = eff_divmod_make((uint32_t)(C / V)), wd = eff_divmod_make((uint32_t)W);
            const uint32_t work = (uint32_t)(H * W * (C / V));
            for (uint32_t tid = 0; tid < work; tid++, n++) {
                const DwPix p = dw_decode(cv, wd, V, tid);
                const int in_range = p.h >= 0 && p.h < H && p.w >= 0 && p.w < W && p.c0 >= 0 && p.c0 < C;
                if (!in_range || p.c0 % V || dw_off(p.h, p.w, W, C) + (uint32_t)p.c0 != tid * (uint32_t)V) bad++;
            }
        }
    T_CHECK(&ts, bad == 0, "decode: %ld of %ld threads map to the wrong element", bad, n);
    printf("decode: %ld threads mapped to element tid*V\n", n);
}

static void test_walk_and_chunks(void) {
    static const int shapes[][5] = {/* N H W K S */ {1, 1, 1, 3, 1}, {2, 3, 2, 3, 2}, {3, 7, 7, 5, 1},
                                    {2, 9, 5, 5, 2}, {4, 14, 14, 3, 1}, {2, 2, 13, 3, 1}};
    long bad = 0, steps = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        DwGeom g;
        const char *why = dw_geom_init(&g, shapes[s][0], shapes[s][1], shapes[s][2], 8, shapes[s][3], shapes[s][4], 1);
        T_CHECK(&ts, why == NULL, "geom %zu: %s", s, why ? why : "");
        if (why) continue;
        for (uint32_t p0 = 0; p0 < 4 && p0 < g.P; p0++) {
            DwWalk w = dw_walk_start(&g, p0);
            for (uint32_t p = p0; p < g.P; p += 4, dw_walk_next(&w, 4, g.Ho, g.Wo), steps++) {
                const uint32_t wo = p % (uint32_t)g.Wo, ho = p / (uint32_t)g.Wo % (uint32_t)g.Ho;
                if (w.wo != (int)wo || w.ho != (int)ho || w.n != (int)(p / ((uint32_t)g.Wo * g.Ho))) bad++;
            }
        }
        for (int chunks = 1; chunks <= 9; chunks++) {
            uint32_t prev = 0;
            for (int k = 0; k < chunks; k++) {
                const uint32_t a = dw_chunk_start(g.P, k, chunks), b = dw_chunk_start(g.P, k + 1, chunks);
                if (a != prev || b < a) bad++;
                prev = b;
            }
            if (prev != g.P) bad++;
        }
    }
    T_CHECK(&ts, bad == 0, "weight-gradient walk/chunks: %ld wrong", bad);
    printf("walk: %ld carried steps matched division\n", steps);
}

/* ---- the row walk of BN / SE / elementwise ---- */
static void test_row_walk(void) {
    static const int cvs[] = {1, 2, 3, 5, 7, 10, 12, 14, 18, 30, 84, 160, 257, 300};
    static const uint32_t threads[] = {1, 7, 256, 300, 512, 1024, 3 * 256, 4096};
    unsigned char *seen = malloc(70000);
    long bad = 0, visits = 0;
    for (size_t a = 0; a < sizeof cvs / sizeof cvs[0]; a++)
        for (int rows = 1; rows <= 200; rows += 37)
            for (size_t b = 0; b < sizeof threads / sizeof threads[0]; b++) {
                const uint32_t cv = (uint32_t)cvs[a], total = (uint32_t)rows * cv;
                EffWalk w = eff_walk_make(total, cv, threads[b]);
                memset(seen, 0, total);
                for (uint32_t tid = 0; tid < threads[b]; tid++) {
                    uint32_t i, c;
                    for (eff_walk_first(&w, tid, &i, &c); i < w.total; eff_walk_next(&w, &i, &c), visits++) {
                        if (c != i % cv) bad++;
                        seen[i]++;
                    }
                }
                for (uint32_t i = 0; i < total; i++) bad += seen[i] != 1;
            }
    /* The launchers' grid: threads = blocks * EFF_BLOCK from eff_walk_for. */
    uint32_t blocks;
    EffWalk w = eff_walk_for(1000000, 30, &blocks);
    T_CHECK(&ts, blocks == 3907 && w.step == blocks * EFF_BLOCK && w.cstep == w.step % 30, "eff_walk_for grid");
    w = eff_walk_for(EFF_INDEX_MAX, 7, &blocks);
    T_CHECK(&ts, blocks == EFF_GRID_X_CAP, "eff_walk_for caps grid.x at %u (got %u)", EFF_GRID_X_CAP, blocks);
    T_CHECK(&ts, (uint64_t)EFF_INDEX_MAX + w.step < ((uint64_t)1 << 32), "index + stride fits 32 bits");
    free(seen);
    T_CHECK(&ts, bad == 0, "row walk: %ld wrong visits or channels", bad);
    printf("row walk: %ld visits, each vector once with channel group i %% CV\n", visits);
}

static void test_pieces(void) {
    long bad = 0;
    for (int cv = 1; cv <= 40; cv += 3)
        for (uint32_t limit = 40; limit <= 400; limit += 120)
            for (long rows = 1; rows <= 97; rows += 12) {
                const long per = eff_rows_per_piece(cv, limit);
                long covered = 0;
                for (long r0 = 0; r0 < rows; r0 += per) {
                    const long n = rows - r0 < per ? rows - r0 : per;
                    if ((uint64_t)n * (uint64_t)cv > limit) bad++;
                    covered += n;
                }
                if (covered != rows) bad++;
            }
    T_CHECK(&ts, bad == 0, "row pieces: %ld wrong", bad);
}

/* ---- the launchers' checks ---- */
static void test_geom_checks(void) {
    DwGeom g;
    T_CHECK(&ts, dw_geom_init(&g, 2, 8, 8, 16, 7, 1, 1) != NULL, "K=7 rejected");
    T_CHECK(&ts, dw_geom_init(&g, 2, 8, 8, 16, 3, 3, 1) != NULL, "stride 3 rejected");
    T_CHECK(&ts, dw_geom_init(&g, 2, 8, 8, 12, 3, 1, 8) != NULL, "C %% V != 0 rejected");
    T_CHECK(&ts, dw_geom_init(&g, 1, 65536, 65536, 1, 3, 1, 1) != NULL, "2^32-element image rejected");
    T_CHECK(&ts, dw_geom_init(&g, 1, 16384, 16384, 8, 3, 1, 1) != NULL, "2^31-element image rejected");
    T_CHECK(&ts, dw_geom_init(&g, 40000, 300, 300, 1, 3, 1, 1) != NULL, "N*Ho*Wo > 2^31-1 rejected");
    /* EfficientNet's largest depthwise inputs: B0 224 batch 256 (112x112x96
     * expanded, stride 2), B7 600 (300x300x192, K 3 S 2; 150x150x288, K 5). */
    T_CHECK(&ts, dw_geom_init(&g, 256, 112, 112, 96, 3, 2, 8) == NULL, "B0 224 batch 256");
    T_CHECK(&ts, dw_geom_init(&g, 64, 300, 300, 192, 3, 2, 8) == NULL, "B7 600 stage 2");
    T_CHECK(&ts, dw_geom_init(&g, 128, 150, 150, 288, 5, 2, 8) == NULL, "B7 600 stage 3");
    T_CHECK(&ts, dw_geom_init(&g, 65536, 7, 7, 1152, 5, 1, 8) == NULL, "batch 65536 (images on grid.y, looped)");
    T_CHECK(&ts, eff_grid_y(65536) == EFF_GRID_Y_MAX && eff_grid_y(3) == 3, "grid.y capped at 65535");
    T_CHECK(&ts, eff_grid_x(EFF_INDEX_MAX, EFF_INDEX_MAX) == (EFF_INDEX_MAX + EFF_BLOCK - 1) / EFF_BLOCK,
            "grid.x covers 2^31-1 threads");
    T_CHECK(&ts, eff_vec_width(24, 2, 1) == 8 && eff_vec_width(12, 2, 1) == 1 && eff_vec_width(12, 4, 1) == 4 &&
                     eff_vec_width(24, 2, 0) == 1 && eff_vec_width(6, 4, 1) == 1,
            "vector width: 16 bytes when C and alignment allow");
}

/* The weight-gradient grid: channel tiles on grid.y up to 65535, looped
 * beyond (C > 65535 * 32, a 1x1 image can have it); the tile loop visits
 * every channel once, also at C = INT_MAX, where c0 + 31 would overflow. */
static void test_wgrad_grid(void) {
    static const int cs[] = {1, 31, 32, 33, 65535 * 32, 65535 * 32 + 1, 3000000, 0x7fffffff};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        const int C = cs[i];
        const uint32_t tiles = (uint32_t)((C + 31LL) / 32);
        uint32_t gx, gy;
        dw_wgrad_grid(7, C, 32, EFF_GRID_Y_MAX, &gx, &gy);
        T_CHECK(&ts, gx == 7 && gy == (tiles < EFF_GRID_Y_MAX ? tiles : EFF_GRID_Y_MAX), "C %d: grid (%u, %u)", C, gx,
                gy);
        uint64_t seen = 0, lanes = 0; /* tiles visited, channels covered */
        for (uint32_t by = 0; by < gy; by++)
            for (uint32_t c0 = by * 32u; c0 < (uint32_t)C; c0 += gy * 32u) {
                const int live = C - (int)c0 < 32 ? C - (int)c0 : 32;
                seen++;
                lanes += (uint64_t)live;
                if (c0 != 0 && c0 + 32u < (uint32_t)C) continue; /* lanes: first and last tile */
                for (int tx = 0; tx < 32; tx++) {
                    const int c = dw_tile_channel(c0, tx, C);
                    T_CHECK(&ts, tx < live ? (uint32_t)c == c0 + (uint32_t)tx : c == C,
                            "C %d: tile at %u, lane %d -> channel %d", C, c0, tx, c);
                }
            }
        T_CHECK(&ts, seen == tiles && lanes == (uint64_t)C, "C %d: %llu of %u tiles, %llu of %d channels", C,
                (unsigned long long)seen, tiles, (unsigned long long)lanes, C);
    }
}

int main(void) {
    EffRng rng;
    eff_rng_seed(&rng, 15);
    test_divmod(&rng);
    test_taps_1d();
    test_taps_2d();
    test_decode();
    test_wgrad_grid();
    test_walk_and_chunks();
    test_row_walk();
    test_pieces();
    test_geom_checks();
    return t_finish(&ts, "test_kernel_index");
}
