/* test_fused_emulate: the CUDA fused train-forward group (FUSED in
 * src/backend/backend.h: dwconv_forward_bnstats, batchnorm_forward_train_sums,
 * se_forward_pooled's squeeze), the kernels' own thread code run on the CPU
 * over the launchers' grids (kernel_emu.h). Needs the CUDA build, not a GPU.
 *
 * Per shape and precision (fp32, bf16, fp16):
 *  1. Fused == unfused, bit for bit (the backend's contract, as
 *     tests/test_recompute.c checks it on the CPU): the conv output and the
 *     statistics' sums of dwconv_bnstats_emulate against dwconv_forward_emulate
 *     + bn_stats_emulate (the unfused statistics pass); the BN output, mean,
 *     rstd, running estimates and the squeeze of bn_train_sums_emulate with
 *     pooled against the same without pooled + gap_f32_emulate. Both sides sum
 *     in the same order, so any difference is a bug.
 *  2. Against the CPU ops, fed the same values (the emulated conv output as
 *     floats): batchnorm_forward_train_cpu's mean, rstd, running estimates and
 *     gap_forward_cpu's pooled, within stated bounds (the orders differ):
 *     mean: two double sums of the same M values, each within gamma_M(2^-53)
 *     sum |x|, then one float rounding each side; rstd: the variance then
 *     differs by at most 2 gamma_M (sum x^2 / M + 2 |mu| sum |x| / M), and
 *     rstd by half that relative to var + eps, plus a float rounding each;
 *     pooled: the CPU's float sum over HW within gamma_(HW+1) sum |y| / HW of
 *     the exact mean, the kernels' double sum within one float rounding.
 *     The worst error / bound is printed (the conv output against the CPU op
 *     is test_kernel_emulate's). Measured (seed 24): mean, rstd 0 (the
 *     double sums agree to the float), pooled 0.09.
 *  3. The vectorised column reduction (reduce.cuh): every path above with
 *     aligned and misaligned pointers (16-byte or scalar loads), C a multiple
 *     of the vector or not, chunk counts 1 to 1024; and the statistics bit
 *     for bit the same whatever the alignment or grid.y's cap (run_layout).
 * Planted bugs seen to fail (then removed): a fused thread skipping its last
 * row, BnPoolF summing the input instead of the output, the mean divided by
 * M + 1, the block tree dropping its last row, the scalar-load path reading
 * the wrong lane, the emulated tile loop skipping tiles.
 * Exit 0 pass, 1 fail. */
#include "emu_util.h"
#include "kernel_emu.h"
#include "ops/ops.h"
#include "test_util.h"

#include <math.h>

static TestState ts;
static double worst[3]; /* mean and running mean, rstd and running var, pooled: worst error / bound */

typedef struct {
    int N, H, W, C, K, S;
} Shape;

static const double U32 = 5.9604644775390625e-8, U64 = 1.1102230246251565e-16; /* 2^-24, 2^-53 */

static double gam(double n, double u) { return n * u / (1.0 - n * u); }

static long count_over(double err, double bound, int slot) {
    if (bound > 0 && err / bound > worst[slot]) worst[slot] = err / bound;
    return !(err <= bound); /* NaN counts */
}

/* batchnorm_forward_train_cpu on the same y (floats; momentum 0.1, eps 1e-3,
 * running estimates from 0 and 1): mean, rstd, rm, rv within the bounds above. */
static void check_cpu(const char *name, const float *y, const float *mean, const float *rstd, const float *rm,
                      const float *rv, const float *g, const float *b, int M, int C) {
    float *o = eff_malloc((size_t)M * C * 4, "o"), *m = eff_malloc(C * 4, "m"), *r = eff_malloc(C * 4, "r");
    float *crm = eff_calloc(C, 4, "rm"), *crv = eff_malloc(C * 4, "rv");
    double *work = eff_malloc((size_t)2 * EFF_BN_CHUNKS * C * sizeof(double), "work");
    for (int c = 0; c < C; c++) crv[c] = 1.0f;
    batchnorm_forward_train_cpu(o, m, r, crm, crv, work, y, g, b, M, C, 0.1f, 1e-3f, 1);
    long over = 0;
    for (int c = 0; c < C; c++) {
        double a = 0, a2 = 0;
        for (int i = 0; i < M; i++) {
            const double v = y[(size_t)i * C + c];
            a += fabs(v), a2 += v * v;
        }
        const double dmu = 2 * gam(M, U64) * a / M + 4 * U64 * a / M, mu = fabs((double)m[c]);
        over += count_over(fabs((double)mean[c] - m[c]), U32 * (fabs(mean[c]) + mu) + dmu, 0);
        over += count_over(fabs((double)rm[c] - crm[c]), U32 * (fabs(rm[c]) + fabs(crm[c])) + 0.1 * dmu, 0);
        /* var + eps = 1 / r^2 within 2^-22: the 1.01 covers it and the linearisation of 1/sqrt */
        const double dvar = 2 * gam(M, U64) * a2 / M + 2 * (mu + dmu) * dmu + 4 * U64 * (a2 / M);
        const double drel = 0.5 * dvar * ((double)r[c] * r[c]) * 1.01, unbias = M > 1 ? (double)M / (M - 1) : 1.0;
        over += count_over(fabs((double)rstd[c] - r[c]), U32 * (fabs(rstd[c]) + fabs(r[c])) + drel * fabs(r[c]), 1);
        over += count_over(fabs((double)rv[c] - crv[c]), U32 * (fabs(rv[c]) + fabs(crv[c])) + 0.1 * dvar * unbias, 1);
    }
    T_CHECK(&ts, over == 0, "%s: %ld of the BN statistics outside the bound against the CPU op", name, over);
    free(o), free(m), free(r), free(crm), free(crv), free(work);
}

/* pooled against gap_forward_cpu of the same output (floats). */
static void check_pool(const char *name, const float *out, const float *pooled, int N, int HW, int C) {
    float *p = eff_malloc((size_t)N * C * 4, "p");
    gap_forward_cpu(p, out, N, HW, C);
    long over = 0;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            double a = 0;
            for (int i = 0; i < HW; i++) a += fabs(out[((size_t)n * HW + i) * C + c]);
            const size_t j = (size_t)n * C + c;
            const double bound = gam(HW + 1, U32) * a / HW + U32 * (fabs(pooled[j]) + a / HW);
            over += count_over(fabs((double)pooled[j] - p[j]), bound, 2);
        }
    T_CHECK(&ts, over == 0, "%s: %ld pooled values outside the bound against gap_forward_cpu", name, over);
    free(p);
}

static float *act_floats(const Act *a, size_t n, int prec) {
    float *f = eff_malloc(n * 4, "floats");
    for (size_t i = 0; i < n; i++) f[i] = act_at(a, i, prec);
    return f;
}

static int same_bytes(const void *a, const void *b, size_t n) { return memcmp(a, b, n) == 0; }

/* The reduction's columns per thread: a 16-byte vector when C allows (reduce.cuh). */
static int red_width(int C, int prec) {
    const int v = prec ? 8 : 4;
    return C % v ? 1 : v;
}

/* The statistics' sums and the train forward, fused and unfused; results in out/stat (fused side). */
static void run_case(EffRng *rng, const Shape *s, int prec, int shift) {
    const int Ho = conv_out_size(s->H, s->K, s->S, s->K / 2), Wo = conv_out_size(s->W, s->K, s->S, s->K / 2);
    const int C = s->C, HW = Ho * Wo, M = s->N * HW, es = prec ? 2 : 4;
    const size_t nx = (size_t)s->N * s->H * s->W * C, ny = (size_t)M * C;
    float *x = randn(rng, nx, 1.0, prec), *w = randn(rng, (size_t)s->K * s->K * C, 0.3, 0);
    float *g = randn(rng, C, 1.0, 0), *b = randn(rng, C, 0.5, 0);
    Act ax = act_from(x, nx, prec, shift), yf = act_from(NULL, ny, prec, shift), yu = act_from(NULL, ny, prec, shift);
    Act of = act_from(NULL, ny, prec, shift), ou = act_from(NULL, ny, prec, shift);
    double *sf = eff_malloc(2 * C * sizeof(double), "sums"), *su = eff_malloc(2 * C * sizeof(double), "sums");
    float *st = eff_malloc((size_t)12 * C * 4, "stats"), *pf = eff_malloc((size_t)s->N * C * 4, "pooled");
    float *pu = eff_malloc((size_t)s->N * C * 4, "pooled");
    for (int c = 0; c < C; c++) st[4 * C + c] = st[5 * C + c] = 0.0f, st[10 * C + c] = st[11 * C + c] = 1.0f;
    char name[96];
    snprintf(name, sizeof name, "N%d %dx%d C%d K%d S%d %s%s", s->N, s->H, s->W, C, s->K, s->S, prec_name(prec),
             shift ? " misaligned" : "");

    T_CHECK(&ts, dwconv_bnstats_emulate(prec, yf.p, sf, ax.p, w, s->N, s->H, s->W, C, s->K, s->S) == red_width(C, prec),
            "%s: fused conv width", name);
    dwconv_forward_emulate(prec, 0, yu.p, ax.p, w, s->N, s->H, s->W, C, s->K, s->S);
    T_CHECK(&ts, bn_stats_emulate(prec, 0, su, yu.p, M, C) == red_width(C, prec), "%s: statistics width", name);
    T_CHECK(&ts, same_bytes(yf.p, yu.p, ny * es), "%s: fused conv output differs from the unfused", name);
    T_CHECK(&ts, same_bytes(sf, su, 2 * C * sizeof(double)), "%s: fused statistics differ from the unfused", name);

    /* st: [0,C) mean, [C,2C) rstd, [4C,5C) rm, [10C,11C) rv fused; +2C unfused */
    T_CHECK(&ts, bn_train_sums_emulate(prec, of.p, pf, st, st + C, st + 4 * C, st + 10 * C, sf, yf.p, g, b, s->N, M, C,
                                       0.1f, 1e-3f, 1) == red_width(C, prec), "%s: fused BN width", name);
    bn_train_sums_emulate(prec, ou.p, NULL, st + 2 * C, st + 3 * C, st + 5 * C, st + 11 * C, su, yu.p, g, b, s->N, M,
                          C, 0.1f, 1e-3f, 1);
    gap_f32_emulate(prec, pu, ou.p, s->N, HW, C);
    T_CHECK(&ts, same_bytes(of.p, ou.p, ny * es), "%s: fused BN output differs from the unfused", name);
    T_CHECK(&ts, same_bytes(pf, pu, (size_t)s->N * C * 4), "%s: fused squeeze differs from the unfused", name);
    T_CHECK(&ts, same_bytes(st, st + 2 * C, 2 * C * 4) && same_bytes(st + 4 * C, st + 5 * C, C * 4) &&
                     same_bytes(st + 10 * C, st + 11 * C, C * 4), "%s: fused BN statistics differ from the unfused", name);

    float *yfl = act_floats(&yf, ny, prec), *ofl = act_floats(&of, ny, prec);
    check_cpu(name, yfl, st, st + C, st + 4 * C, st + 10 * C, g, b, M, C);
    check_pool(name, ofl, pf, s->N, HW, C);
    free(x), free(w), free(g), free(b), free(sf), free(su), free(st), free(pf), free(pu), free(yfl), free(ofl);
    free(ax.base), free(yf.base), free(yu.base), free(of.base), free(ou.base);
}

/* The statistics do not depend on the pointers' alignment (16-byte loads or
 * scalar ones: the same layout) nor on grid.y's cap (the kernel's loop over
 * column tiles): C = 200 bf16 is 25 vectors, tiles of 25; C = 1000 fp32, 250
 * vectors in 8 tiles of 32 (the last of 26). */
static void run_layout(EffRng *rng) {
    static const int Cs[2] = {200, 1000}, precs[2] = {1, 0};
    for (int t = 0; t < 2; t++) {
        const int C = Cs[t], prec = precs[t], M = 700;
        float *x = randn(rng, (size_t)M * C, 1.0, prec);
        Act a = act_from(x, (size_t)M * C, prec, 0), m = act_from(x, (size_t)M * C, prec, 1);
        double *s0 = eff_malloc(2 * C * sizeof(double), "s"), *s1 = eff_malloc(2 * C * sizeof(double), "s");
        T_CHECK(&ts, bn_stats_emulate(prec, 0, s0, a.p, M, C) == red_width(C, prec), "C%d: width", C);
        static const unsigned caps[] = {1, 2, 3, 7};
        for (int i = 0; i < 4; i++) {
            bn_stats_emulate(prec, caps[i], s1, a.p, M, C);
            T_CHECK(&ts, same_bytes(s0, s1, 2 * C * sizeof(double)), "C%d: grid.y capped at %u differs", C, caps[i]);
        }
        bn_stats_emulate(prec, 0, s1, m.p, M, C);
        T_CHECK(&ts, same_bytes(s0, s1, 2 * C * sizeof(double)), "C%d: misaligned (scalar loads) differs", C);
        free(x), free(a.base), free(m.base), free(s0), free(s1);
    }
}

int main(void) {
    /* chunk counts: 1 (small), several (P = 132300 rows: 258 chunks of 512;
     * 28800 rows at C = 16, B0's narrow layers) and the cap of 1024 (532900
     * rows); C: 1 to 40, a multiple of the 16-byte vector or not (then one
     * column per thread), 12 (a vector in fp32 only) */
    static const Shape shapes[] = {{1, 1, 1, 1, 3, 1},    {2, 5, 7, 3, 3, 2},   {2, 40, 40, 24, 3, 1},
                                   {3, 23, 23, 40, 5, 2},  {2, 30, 30, 8, 5, 1}, {3, 210, 210, 3, 3, 1},
                                   {2, 120, 120, 16, 3, 1}, {1, 12, 12, 12, 3, 2}, {1, 730, 730, 1, 3, 1}};
    EffRng rng;
    eff_rng_seed(&rng, 24);
    int cases = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int prec = 0; prec < 3; prec++)
            for (int shift = 0; shift < 2; shift++, cases++) run_case(&rng, &shapes[i], prec, shift);
    run_layout(&rng);
    T_CHECK(&ts, dwconv_bnstats_emulate(0, NULL, NULL, NULL, NULL, 1, 1, 1, 1, 7, 1) == 0, "K = 7 rejected");
    printf("test_fused_emulate: %d cases; worst error / bound against the CPU ops: mean %.3f, rstd/var %.3f, "
           "pooled %.3f\n", cases, worst[0], worst[1], worst[2]);
    return t_finish(&ts, "test_fused_emulate");
}
