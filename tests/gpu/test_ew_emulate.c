/* test_ew_emulate: the BN, SE and elementwise kernels' own thread code
 * (kernels/batchnorm.cu, se.cu, elementwise.cu, run on the CPU through
 * kernel_emu.h for every thread of the launch grids) against the CPU ops and
 * per-element references that find each element's channel and image with
 * / and %. Needs the CUDA build, not a GPU.
 *
 * Every comparison is bit for bit: each output is one float expression of
 * its inputs, evaluated in the same order on both sides (host code of both
 * is compiled without FMA contraction: ISO C / -ffp-contract=off), rounded
 * once to the act type. Where the CPU op's sigmoid differs from the
 * kernels' (fastmath.h vs expf: BN with swish), the reference is the
 * per-element loop with expf. Paths: 16-byte vectors, scalar, misaligned
 * pointers (must fall back to scalar); launch pieces of the launchers'
 * 2^31-1 vectors and of 5 (many pieces, plus the n % V tail of the flat
 * ops). Exit 0 pass, 1 fail. */
#include "emu_util.h"
#include "kernel_emu.h"
#include "ops/ops.h"
#include "test_util.h"

#include <math.h>

static TestState ts;

static int want_width(int C, int prec, int path) {
    const int v = prec ? 8 : 4;
    return path || C % v ? 1 : v;
}

/* Count elements of emu that are not, bit for bit, round(ref). */
static long mismatches(const Act *emu, const float *ref, size_t n, int prec) {
    long bad = 0;
    for (size_t i = 0; i < n; i++) bad += !bits_equal(act_at(emu, i, prec), eff_round_act(ref[i], prec));
    return bad;
}

static float sigmoid_ref(float z) { return 1.0f / (1.0f + expf(-z)); }

/* BN forward (batch statistics, then running statistics) and backward. */
static void bn_case(EffRng *r, int M, int C, int swish, int prec, int path, unsigned limit) {
    const size_t n = (size_t)M * C;
    float *x = randn(r, n, 1.0, prec), *dy = randn(r, n, 1.0, prec), *g = randn(r, C, 1.0, 0);
    float *b = randn(r, C, 0.5, 0), *y = eff_malloc(n * 4, "y"), *ref = eff_malloc(n * 4, "ref");
    float *mean = eff_malloc(C * 4, "m"), *rstd = eff_malloc(C * 4, "r"), *rm = eff_calloc(C, 4, "rm");
    float *rv = eff_malloc(C * 4, "rv"), *dg = eff_calloc(C, 4, "dg"), *db = eff_calloc(C, 4, "db");
    double *work = eff_malloc((size_t)2 * EFF_BN_CHUNKS * C * sizeof(double), "work");
    for (int c = 0; c < C; c++) rv[c] = 1.0f;
    batchnorm_forward_train_cpu(y, mean, rstd, rm, rv, work, x, g, b, M, C, 0.1f, 1e-5f, swish);
    float *y_train = eff_malloc(n * 4, "y_train"); /* the CPU backward's swish derivative reads it */
    memcpy(y_train, y, n * 4);
    const int shift = path == 2;
    Act ax = act_from(x, n, prec, shift), ady = act_from(dy, n, prec, shift), ao = act_from(NULL, n, prec, shift);
    char name[80];
    snprintf(name, sizeof name, "BN M%d C%d%s %s path %d limit %u", M, C, swish ? " swish" : "", prec_name(prec),
             path, limit);
    int v = bn_apply_emulate(prec, path == 1, limit, ao.p, ax.p, mean, rstd, g, b, M, C, swish);
    for (size_t i = 0; i < n && swish; i++) {
        const int c = (int)(i % C);
        const float z = (x[i] - mean[c]) * rstd[c] * g[c] + b[c];
        y[i] = z * sigmoid_ref(z);
    }
    T_CHECK(&ts, mismatches(&ao, y, n, prec) == 0, "%s: forward differs", name);
    T_CHECK(&ts, v == want_width(C, prec, path), "%s: width %d", name, v);

    v = bn_eval_emulate(prec, path == 1, limit, ao.p, ax.p, g, b, rm, rv, M, C, 1e-5f, swish);
    for (size_t i = 0; i < n; i++) {
        const int c = (int)(i % C);
        const float z = (x[i] - rm[c]) / sqrtf(rv[c] + 1e-5f) * g[c] + b[c];
        ref[i] = swish ? z * sigmoid_ref(z) : z;
    }
    if (!swish) batchnorm_forward_eval_cpu(y, x, g, b, rm, rv, M, C, 1e-5f, 0);
    T_CHECK(&ts, mismatches(&ao, ref, n, prec) == 0 && (swish || memcmp(y, ref, n * 4) == 0), "%s: eval", name);

    batchnorm_backward_cpu(y, dg, db, work, dy, x, y_train, mean, rstd, g, b, M, C, swish); /* work[0, 2C): the sums */
    v = bn_back_apply_emulate(prec, path == 1, limit, ao.p, ady.p, ax.p, mean, rstd, g, b, work, M, C, swish);
    for (size_t i = 0; i < n && swish; i++) {
        const int c = (int)(i % C);
        const float xh = (x[i] - mean[c]) * rstd[c], zz = xh * g[c] + b[c], s = sigmoid_ref(zz);
        const float dz = dy[i] * (s * (1.0f + zz * (1.0f - s))), invM = 1.0f / (float)M;
        y[i] = g[c] * rstd[c] * (dz - invM * (float)work[c] - xh * invM * (float)work[C + c]);
    }
    T_CHECK(&ts, mismatches(&ao, y, n, prec) == 0 && v == want_width(C, prec, path), "%s: backward", name);
    free(x), free(dy), free(g), free(b), free(y), free(y_train), free(ref), free(mean), free(rstd), free(rm), free(rv);
    free(dg), free(db), free(work), free(ax.base), free(ady.base), free(ao.base);
}

/* SE: out = x * gate[n], din = dy * gate[n] + dpooled[n] / HW. */
static void se_case(EffRng *r, int N, int HW, int C, int prec, int path) {
    const size_t n = (size_t)N * HW * C;
    float *x = randn(r, n, 1.0, prec), *gate = randn(r, (size_t)N * C, 1.0, 0);
    float *dp = randn(r, (size_t)N * C, 1.0, 0), *ref = eff_malloc(n * 4, "ref");
    const int shift = path == 2;
    Act ax = act_from(x, n, prec, shift), ao = act_from(NULL, n, prec, shift);
    char name[80];
    snprintf(name, sizeof name, "SE N%d HW%d C%d %s path %d", N, HW, C, prec_name(prec), path);
    int v = se_scale_emulate(prec, path == 1, ao.p, ax.p, gate, N, HW, C);
    for (size_t i = 0; i < n; i++) ref[i] = x[i] * gate[i / ((size_t)HW * C) * C + i % C];
    T_CHECK(&ts, mismatches(&ao, ref, n, prec) == 0 && v == want_width(C, prec, path), "%s: scale", name);
    const float inv = 1.0f / (float)HW;
    v = se_back_apply_emulate(prec, path == 1, ao.p, ax.p, gate, dp, N, HW, C);
    for (size_t i = 0; i < n; i++) {
        const size_t nc = i / ((size_t)HW * C) * C + i % C;
        ref[i] = x[i] * gate[nc] + dp[nc] * inv;
    }
    T_CHECK(&ts, mismatches(&ao, ref, n, prec) == 0 && v == want_width(C, prec, path), "%s: backward", name);
    free(x), free(gate), free(dp), free(ref), free(ax.base), free(ao.base);
}

/* y += x (the CPU op) and x *= alpha over n elements. */
static void flat_case(EffRng *r, size_t n, int prec, int path, unsigned limit) {
    float *x = randn(r, n, 1.0, prec), *y = randn(r, n, 1.0, prec);
    const int shift = path == 2;
    Act ax = act_from(x, n, prec, 0), ay = act_from(y, n, prec, shift);
    char name[80];
    snprintf(name, sizeof name, "flat n%zu %s path %d limit %u", n, prec_name(prec), path, limit);
    const int v = add_inplace_emulate(prec, path == 1, limit, ay.p, ax.p, n);
    add_inplace_cpu(y, x, n);
    T_CHECK(&ts, mismatches(&ay, y, n, prec) == 0 && v == want_width(0, prec, path), "%s: add", name);
    if (prec == 0) {
        float *s = (float *)ay.p;
        const int vs = scale_inplace_emulate(path == 1, limit, s, n, 0.375f);
        long bad = 0;
        for (size_t i = 0; i < n; i++) bad += !bits_equal(s[i], y[i] * 0.375f);
        T_CHECK(&ts, bad == 0 && vs == want_width(0, 0, path), "%s: scale", name);
    }
    free(x), free(y), free(ax.base), free(ay.base);
}

int main(void) {
    static const int bn[][2] = {{1, 1}, {3, 5}, {7, 8}, {50, 12}, {100, 16}, {33, 24}, {9, 1152}, {1000, 40}};
    static const int se[][3] = {{1, 1, 8}, {2, 49, 32}, {3, 7, 12}, {4, 16, 5}, {2, 3, 1152}, {65537, 1, 8}};
    static const size_t flat[] = {1, 7, 8, 9, 100, 1001, 4099};
    EffRng rng;
    eff_rng_seed(&rng, 15);
    int cases = 0;
    for (int prec = 0; prec < 3; prec++)
        for (int path = 0; path < 3; path++) {
            for (size_t k = 0; k < sizeof bn / sizeof bn[0]; k++)
                for (int sw = 0; sw < 2; sw++, cases += 2) {
                    bn_case(&rng, bn[k][0], bn[k][1], sw, prec, path, 0);
                    bn_case(&rng, bn[k][0], bn[k][1], sw, prec, path, 5);
                }
            for (size_t k = 0; k < sizeof se / sizeof se[0]; k++, cases++)
                se_case(&rng, se[k][0], se[k][1], se[k][2], prec, path);
            for (size_t k = 0; k < sizeof flat / sizeof flat[0]; k++, cases += 2) {
                flat_case(&rng, flat[k], prec, path, 0);
                flat_case(&rng, flat[k], prec, path, 5);
            }
        }
    printf("test_ew_emulate: %d cases\n", cases);
    return t_finish(&ts, "test_ew_emulate");
}
