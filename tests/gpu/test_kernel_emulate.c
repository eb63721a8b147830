/* test_kernel_emulate: the depthwise conv kernels' own thread code
 * (kernels/dwconv.cu, run on the CPU by kernel_emu.h for every thread of
 * the launch grid) against a brute-force reference and the CPU op
 * src/ops/dwconv.c. Needs the CUDA build, not a GPU.
 *
 * Per shape, precision (fp32, bf16, fp16) and path (16-byte vectors or
 * scalar; pointers misaligned on purpose must fall back to scalar):
 *  1. out and din equal, bit for bit, a brute-force reference that finds
 *     each element's taps the old way (/ and % per tap), sums them in the
 *     CPU op's order with fmaf, and rounds once to the act type: the new tap
 *     ranges, thread decode, vector lanes and grid cover exactly the same
 *     taps in the same order.
 *  2. out, din and dw(+=) agree with the CPU op within the error bound of
 *     the two summations (Higham's gamma_n = n u / (1 - n u), u = 2^-24):
 *     the CPU op rounds each product and sum separately (no FMA), the
 *     kernels fuse them, and in 16 bits add one rounding of the result
 *     (2^-8 bf16, 2^-11 fp16, relative). The worst ratio error / bound is
 *     printed; it must not exceed 1. Measured (seed 15): fp32 0.25 (out,
 *     din) and 0.13 (dw, bound gamma_(d+1) + gamma_(P+2): the kernels' and the
 *     CPU op's); bf16 and fp16 0.996 (out, din) -- the half-ulp rounding of
 *     the store, which the bound states exactly, is nearly attained.
 *  3. dw(+=) is within gamma_(d+2) (|dw0| + sum |g x|) of dw0 + a double sum
 *     of the float products: the kernels sum in fp32 (FMAs into per-thread
 *     groups of 32 pixels, a 4-way block sum, chunks in groups of 32), and d
 *     (dwconv_wgrad_depth) counts the roundings a product passes through;
 *     +1 for the reference's rounded products, +1 for its double sum and
 *     final comparison. A missing or doubled tap larger than that exceeds it.
 *     Measured worst error / bound (printed): 0.19 (seed 15).
 * Exit 0 pass, 1 fail. */
#include "common.h"
#include "emu_util.h"
#include "half.h"
#include "kernel_emu.h"
#include "ops/ops.h"
#include "rng.h"
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static TestState ts;
static double worst[3][2]; /* per precision: out/din, dw: worst |error| / bound against the CPU op */
static double worst_ref;    /* dw: worst |error| / bound against the double reference */

typedef struct {
    int N, H, W, C, K, S;
} Shape;

static const double U32 = 5.9604644775390625e-8; /* 2^-24 */

static double gamma_n(int n) { return n * U32 / (1.0 - n * U32); }

/* Relative rounding of the act type's store (0 in fp32) and, for fp16, the
 * absolute half-spacing of its subnormals (2^-25). */
static double u_act(int prec) { return prec == 1 ? 1.0 / 256 : prec == 2 ? 1.0 / 2048 : 0.0; }
static double abs_act(int prec) { return prec == 2 ? 2.98023223876953125e-8 : 0.0; }

/* ---- brute-force references: the old kernels' per-element loops ---- */

/* Forward element (n, ho, wo, c): taps found by bounds tests, summed with
 * fmaf in kh-then-kw order; *mag = sum |x w|. */
static float ref_fwd(const float *x, const float *w, const Shape *s, int Ho, int Wo, size_t i, double *mag) {
    const int C = s->C, K = s->K, pad = K / 2, c = (int)(i % C);
    const int wo = (int)(i / C % Wo), ho = (int)(i / C / Wo % Ho), n = (int)(i / C / Wo / Ho);
    float acc = 0.0f;
    *mag = 0.0;
    for (int kh = 0; kh < K; kh++) {
        const int hi = ho * s->S - pad + kh;
        if (hi < 0 || hi >= s->H) continue;
        for (int kw = 0; kw < K; kw++) {
            const int wi = wo * s->S - pad + kw;
            if (wi < 0 || wi >= s->W) continue;
            const float a = x[(((size_t)n * s->H + hi) * s->W + wi) * C + c], b = w[(kh * K + kw) * C + c];
            acc = fmaf(a, b, acc);
            *mag += fabs((double)a * b);
        }
    }
    return acc;
}

/* Input-gradient element (n, hi, wi, c): taps found with % and / per tap. */
static float ref_bwd(const float *dy, const float *w, const Shape *s, int Ho, int Wo, size_t i, double *mag) {
    const int C = s->C, K = s->K, S = s->S, pad = K / 2, c = (int)(i % C);
    const int wi = (int)(i / C % s->W), hi = (int)(i / C / s->W % s->H), n = (int)(i / C / s->W / s->H);
    float acc = 0.0f;
    *mag = 0.0;
    for (int kh = 0; kh < K; kh++) {
        const int th = hi + pad - kh;
        if (th < 0 || th % S || th / S >= Ho) continue;
        for (int kw = 0; kw < K; kw++) {
            const int tw = wi + pad - kw;
            if (tw < 0 || tw % S || tw / S >= Wo) continue;
            const float a = dy[(((size_t)n * Ho + th / S) * Wo + tw / S) * C + c], b = w[(kh * K + kw) * C + c];
            acc = fmaf(a, b, acc);
            *mag += fabs((double)a * b);
        }
    }
    return acc;
}

/* Weight gradient: dw0 + sum over output pixels of (double)(float)(g x), and
 * mag = sum |g x|, per (tap, c). */
static void ref_dw(const float *dy, const float *x, const float *dw0, const Shape *s, int Ho, int Wo, double *ref,
                   double *mag) {
    const int C = s->C, K = s->K, pad = K / 2;
    for (int t = 0; t < K * K; t++)
        for (int c = 0; c < C; c++) {
            double sum = 0.0, m = 0.0;
            for (int n = 0; n < s->N; n++)
                for (int ho = 0; ho < Ho; ho++)
                    for (int wo = 0; wo < Wo; wo++) {
                        const int hi = ho * s->S - pad + t / K, wi = wo * s->S - pad + t % K;
                        if (hi < 0 || hi >= s->H || wi < 0 || wi >= s->W) continue;
                        const float p = dy[(((size_t)n * Ho + ho) * Wo + wo) * C + c] *
                                        x[(((size_t)n * s->H + hi) * s->W + wi) * C + c];
                        sum += p;
                        m += fabs(p);
                    }
            ref[t * C + c] = dw0[t * C + c] + sum;
            mag[t * C + c] = m;
        }
}

/* ---- comparisons ---- */

/* emu == round(ref) bit for bit; |emu - cpu| <= 2 gamma_KK mag + store rounding. */
static void check_act(const char *name, const char *what, const Act *emu, const float *x, const float *w,
                      const float *cpu, size_t n, int prec, const Shape *s, int Ho, int Wo, int backward) {
    long not_exact = 0, over = 0;
    for (size_t i = 0; i < n; i++) {
        double mag;
        const float r = backward ? ref_bwd(x, w, s, Ho, Wo, i, &mag) : ref_fwd(x, w, s, Ho, Wo, i, &mag);
        const float e = act_at(emu, i, prec);
        if (!bits_equal(e, eff_round_act(r, prec))) not_exact++;
        const double bound = 2 * gamma_n(s->K * s->K) * mag + u_act(prec) * fabs(r) + abs_act(prec);
        const double err = fabs((double)e - cpu[i]);
        if (err > bound) over++;
        if (bound > 0 && err / bound > worst[prec][0]) worst[prec][0] = err / bound;
        if (bound == 0 && err > 0) over++;
    }
    T_CHECK(&ts, not_exact == 0, "%s %s: %ld of %zu elements differ from the brute-force taps", name, what, not_exact,
            n);
    T_CHECK(&ts, over == 0, "%s %s: %ld of %zu elements outside the rounding bound of the CPU op", name, what, over, n);
}

/* dw(+=): within the kernels' fp32 summation bound gamma_(d+2) of the double
 * brute force, and within that plus the CPU op's (float sums over P pixels)
 * of the CPU op. */
static void check_dw(const char *name, const float *emu, const float *cpu, const double *ref, const double *mag,
                     const float *dw0, size_t n, int P, int d, int prec) {
    long over_ref = 0, over_cpu = 0;
    for (size_t i = 0; i < n; i++) {
        const double scale = fabs(dw0[i]) + mag[i], bref = gamma_n(d + 2) * scale;
        const double eref = fabs((double)emu[i] - ref[i]);
        if (eref > bref || (bref == 0 && eref > 0)) over_ref++;
        if (bref > 0 && eref / bref > worst_ref) worst_ref = eref / bref;
        const double bound = (gamma_n(d + 1) + gamma_n(P + 2)) * scale, err = fabs((double)emu[i] - cpu[i]);
        if (err > bound) over_cpu++;
        if (bound > 0 && err / bound > worst[prec][1]) worst[prec][1] = err / bound;
    }
    T_CHECK(&ts, d > 0, "%s dw: no depth", name);
    T_CHECK(&ts, over_ref == 0, "%s dw: %ld of %zu off the brute force by more than gamma_%d", name, over_ref, n, d + 2);
    T_CHECK(&ts, over_cpu == 0, "%s dw: %ld of %zu outside the CPU op's summation bound", name, over_cpu, n);
}

/* ---- one shape ---- */

static int expected_width(int C, int prec, int scalar, int shift) {
    const int v = prec ? 8 : 4;
    return scalar || shift || C % v ? 1 : v;
}

/* One shape in one precision and path: forward, then backward. */
static void run_case(EffRng *rng, const Shape *s, int prec, int scalar, int shift) {
    const int Ho = conv_out_size(s->H, s->K, s->S, s->K / 2), Wo = conv_out_size(s->W, s->K, s->S, s->K / 2);
    const size_t nx = (size_t)s->N * s->H * s->W * s->C, ny = (size_t)s->N * Ho * Wo * s->C;
    const size_t nw = (size_t)s->K * s->K * s->C;
    float *x = randn(rng, nx, 1.0, prec), *dy = randn(rng, ny, 1.0, prec), *w = randn(rng, nw, 0.3, 0);
    float *dw0 = randn(rng, nw, 0.1, 0), *y = eff_malloc(ny * 4, "y"), *dx = eff_malloc(nx * 4, "dx");
    float *dw_cpu = eff_malloc(nw * 4, "dw"), *dw_emu = eff_malloc(nw * 4, "dw");
    double *dw_ref = eff_malloc(nw * sizeof(double), "dw");
    double *mag = eff_malloc(nw * sizeof(double), "mag");
    memcpy(dw_cpu, dw0, nw * 4), memcpy(dw_emu, dw0, nw * 4);
    Act ax = act_from(x, nx, prec, shift), ady = act_from(dy, ny, prec, shift);
    Act ay = act_from(NULL, ny, prec, shift), adx = act_from(NULL, nx, prec, shift);
    char name[96];
    snprintf(name, sizeof name, "N%d %dx%d C%d K%d S%d %s%s%s", s->N, s->H, s->W, s->C, s->K, s->S,
             prec == 0 ? "fp32" : prec == 1 ? "bf16" : "fp16", scalar ? " scalar" : "", shift ? " misaligned" : "");

    dwconv_forward_cpu(y, x, w, s->N, s->H, s->W, s->C, s->K, s->S);
    dwconv_backward_cpu(dx, dw_cpu, dy, x, w, s->N, s->H, s->W, s->C, s->K, s->S);
    const int vf = dwconv_forward_emulate(prec, scalar, ay.p, ax.p, w, s->N, s->H, s->W, s->C, s->K, s->S);
    const int vb = dwconv_backward_emulate(prec, scalar, adx.p, dw_emu, ady.p, ax.p, w, s->N, s->H, s->W, s->C,
                                           s->K, s->S);
    const int want = expected_width(s->C, prec, scalar, shift);
    T_CHECK(&ts, vf == want && vb == want, "%s: channel width %d/%d, expected %d", name, vf, vb, want);
    check_act(name, "out", &ay, x, w, y, ny, prec, s, Ho, Wo, 0);
    check_act(name, "din", &adx, dy, w, dx, nx, prec, s, Ho, Wo, 1);
    ref_dw(dy, x, dw0, s, Ho, Wo, dw_ref, mag);
    const int d = dwconv_wgrad_depth(s->N, s->H, s->W, s->C, s->K, s->S);
    check_dw(name, dw_emu, dw_cpu, dw_ref, mag, dw0, nw, s->N * Ho * Wo, d, prec);

    free(x), free(dy), free(w), free(dw0), free(y), free(dx), free(dw_cpu), free(dw_emu), free(dw_ref), free(mag);
    free(ax.base), free(ady.base), free(ay.base), free(adx.base);
}

/* din = NULL: only dw, which must not change with it. */
static void run_no_din(EffRng *rng) {
    const int N = 2, H = 9, C = 16, K = 5, S = 2, Ho = conv_out_size(H, K, S, K / 2);
    const size_t nx = (size_t)N * H * H * C, ny = (size_t)N * Ho * Ho * C, nw = (size_t)K * K * C;
    float *x = randn(rng, nx, 1.0, 0), *dy = randn(rng, ny, 1.0, 0), *w = randn(rng, nw, 0.3, 0);
    float *a = eff_calloc(nw, 4, "dw"), *b = eff_calloc(nw, 4, "dw"), *dx = eff_malloc(nx * 4, "dx");
    const int v1 = dwconv_backward_emulate(0, 0, NULL, a, dy, x, w, N, H, H, C, K, S);
    const int v2 = dwconv_backward_emulate(0, 0, dx, b, dy, x, w, N, H, H, C, K, S);
    T_CHECK(&ts, v1 == 1 && v2 == 4 && memcmp(a, b, nw * 4) == 0, "din = NULL: dw alone, bit for bit the same");
    free(x), free(dy), free(w), free(a), free(b), free(dx);
}

/* The weight-gradient grid with grid.y capped below the channel tiles
 * (C = 100: 4 tiles of 32, the last of 4 channels): the kernel's loop over
 * tiles beyond grid.y must give dw bit for bit as one tile per block. */
static void run_wgrad_tiles(EffRng *rng) {
    const int N = 2, H = 7, C = 100, K = 3, S = 1;
    const size_t nx = (size_t)N * H * H * C, nw = (size_t)K * K * C;
    float *x = randn(rng, nx, 1.0, 0), *dy = randn(rng, nx, 1.0, 0), *w = randn(rng, nw, 0.3, 0);
    float *a = eff_calloc(nw, 4, "dw"), *b = eff_malloc(nw * 4, "dw");
    T_CHECK(&ts, dwconv_backward_emulate(0, 0, NULL, a, dy, x, w, N, H, H, C, K, S) == 1, "wgrad tiles: launcher");
    static const unsigned caps[] = {1, 2, 3, 4, 65535};
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        memset(b, 0, nw * 4);
        T_CHECK(&ts, dwconv_wgrad_emulate(0, caps[i], b, dy, x, N, H, H, C, K, S) == 1 && memcmp(a, b, nw * 4) == 0,
                "dw with grid.y capped at %u (tiles looped) differs from one tile per block", caps[i]);
    }
    T_CHECK(&ts, dwconv_wgrad_emulate(0, 0, b, dy, x, N, H, H, C, K, S) == 0, "grid.y cap 0 rejected");
    free(x), free(dy), free(w), free(a), free(b);
}

/* Shapes the emulation must refuse, as the launchers do. */
static void run_rejects(void) {
    float z[8] = {0};
    T_CHECK(&ts, dwconv_forward_emulate(0, 0, z, z, z, 1, 1, 1, 1, 7, 1) == 0, "K = 7 rejected");
    T_CHECK(&ts, dwconv_backward_emulate(0, 0, z, z, z, z, z, 1, 1, 1, 1, 3, 3) == 0, "stride 3 rejected");
}

int main(void) {
    static const int hw[][2] = {{1, 1}, {2, 3}, {4, 4}, {5, 7}, {7, 5}, {8, 8}, {9, 9}, {14, 14}, {15, 16}};
    static const int cs[] = {1, 5, 8, 12, 24};
    EffRng rng;
    eff_rng_seed(&rng, 15);
    int cases = 0;
    for (size_t a = 0; a < sizeof hw / sizeof hw[0]; a++)
        for (size_t b = 0; b < sizeof cs / sizeof cs[0]; b++)
            for (int ks = 0; ks < 4; ks++)
                for (int prec = 0; prec < 3; prec++)
                    for (int path = 0; path < 3; path++, cases++) {
                        const Shape s = {1 + (int)((a + b) % 3), hw[a][0], hw[a][1], cs[b], ks < 2 ? 3 : 5, 1 + ks % 2};
                        run_case(&rng, &s, prec, path == 1, path == 2);
                    }
    /* EfficientNet-like: B0's 28x28x240 K5 S2 stage input at batch 2, and
     * images beyond grid.y's 65535 (the launchers loop over them). */
    const Shape b0 = {2, 28, 28, 240, 5, 2}, many = {65537, 1, 2, 8, 3, 1};
    for (int prec = 0; prec < 3; prec++, cases++) run_case(&rng, &b0, prec, 0, 0);
    run_case(&rng, &many, 1, 0, 0), cases++;
    run_no_din(&rng);
    run_wgrad_tiles(&rng);
    run_rejects();
    printf("test_kernel_emulate: %d cases; worst |error| / bound against the CPU op:\n", cases);
    for (int p = 0; p < 3; p++)
        printf("  %s: out, din %.3f; dw %.3f\n", p == 0 ? "fp32" : p == 1 ? "bf16" : "fp16", worst[p][0], worst[p][1]);
    printf("  dw against the double reference: %.3f of gamma_(d+2)\n", worst_ref);
    return t_finish(&ts, "test_kernel_emulate");
}
