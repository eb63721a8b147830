/* test_dwconv_isa.c: the depthwise conv's instruction-set paths (AVX-512,
 * AVX2, plain C; src/ops/dwconv_isa.h) against the plain loops below, which
 * add in the same order, so every path must agree BIT FOR BIT, on 1 and 2
 * threads. A float64 evaluation of the same sums checks that those loops
 * are the convolution (tolerance below). Shapes cover K = 3 and 5 (the
 * register tiles), K = 1 and 7 (the scalar tile), strides 1 and 2, and C
 * with and without a tail past the last vector and past 4 vectors. */
#include "ops/ops.h"
#include "test_util.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Norm-wise ||fp32 loops - float64|| / ||float64||, fp32 sums of up to 49
 * (forward, din) and 504 (dw) products: measured worst 3.8e-7 (dw, K = 5,
 * 2026-12-02); 2e-6 is 8x that, while a wrong or missing tap gives ~0.1-1. */
#define REF_TOL 2e-6

typedef struct { int N, H, W, C, K, s; } Shape;

static int dim_out(int H, int K, int s) { return conv_out_size(H, K, s, K / 2); }

/* The reference: the plain loops, taps in (kh, kw) order, pixels in (n, oh,
 * ow) order; T is float (the bitwise reference) or double (the exact one). */
#define REF_LOOPS(T, out, din, dw, in, dout, w, S)                                                           \
    do {                                                                                                     \
        const int pad = S.K / 2, Ho = dim_out(S.H, S.K, S.s), Wo = dim_out(S.W, S.K, S.s);                  \
        for (int n = 0; n < S.N; n++)                                                                        \
            for (int oh = 0; oh < Ho; oh++)                                                                  \
                for (int ow = 0; ow < Wo; ow++)                                                              \
                    for (int c = 0; c < S.C; c++) {                                                          \
                        const size_t o = ((size_t)(n * Ho + oh) * Wo + ow) * S.C + c;                        \
                        T a = 0;                                                                             \
                        for (int kh = 0; kh < S.K; kh++)                                                     \
                            for (int kw = 0; kw < S.K; kw++) {                                               \
                                const int ih = oh * S.s - pad + kh, iw = ow * S.s - pad + kw;                \
                                if (ih < 0 || ih >= S.H || iw < 0 || iw >= S.W) continue;                   \
                                const size_t i = ((size_t)(n * S.H + ih) * S.W + iw) * S.C + c;             \
                                a += (T)in[i] * (T)w[(kh * S.K + kw) * S.C + c];                            \
                            }                                                                                \
                        out[o] = a;                                                                          \
                    }                                                                                        \
        for (int n = 0; n < S.N; n++)                                                                        \
            for (int ih = 0; ih < S.H; ih++)                                                                 \
                for (int iw = 0; iw < S.W; iw++)                                                             \
                    for (int c = 0; c < S.C; c++) {                                                          \
                        T a = 0;                                                                             \
                        for (int kh = 0; kh < S.K; kh++)                                                     \
                            for (int kw = 0; kw < S.K; kw++) {                                               \
                                const int t = ih + pad - kh, u = iw + pad - kw;                              \
                                if (t < 0 || u < 0 || t % S.s || u % S.s || t / S.s >= Ho || u / S.s >= Wo)  \
                                    continue;                                                                \
                                a += (T)dout[((size_t)(n * Ho + t / S.s) * Wo + u / S.s) * S.C + c] *        \
                                     (T)w[(kh * S.K + kw) * S.C + c];                                        \
                            }                                                                                \
                        din[((size_t)(n * S.H + ih) * S.W + iw) * S.C + c] = a;                              \
                    }                                                                                        \
        for (int c = 0; c < S.C; c++)                                                                        \
            for (int kh = 0; kh < S.K; kh++)                                                                 \
                for (int kw = 0; kw < S.K; kw++) {                                                           \
                    T a = 0;                                                                                 \
                    for (int n = 0; n < S.N; n++)                                                            \
                        for (int oh = 0; oh < Ho; oh++)                                                      \
                            for (int ow = 0; ow < Wo; ow++) {                                                \
                                const int ih = oh * S.s - pad + kh, iw = ow * S.s - pad + kw;                \
                                if (ih < 0 || ih >= S.H || iw < 0 || iw >= S.W) continue;                   \
                                a += (T)dout[((size_t)(n * Ho + oh) * Wo + ow) * S.C + c] *                  \
                                     (T)in[((size_t)(n * S.H + ih) * S.W + iw) * S.C + c];                   \
                            }                                                                                \
                    dw[(kh * S.K + kw) * S.C + c] += a;                                                      \
                }                                                                                            \
    } while (0)

static void *xcalloc(size_t n, size_t sz) {
    void *p = calloc(n, sz);
    if (!p) { fprintf(stderr, "test_dwconv_isa: out of memory (%zu x %zu bytes)\n", n, sz); exit(1); }
    return p;
}

/* ||a - x|| / ||x|| against the float64 evaluation. */
static double rel_err64(const float *a, const double *x, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) { num += (a[i] - x[i]) * (a[i] - x[i]); den += x[i] * x[i]; }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static int same_bits(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

static void check_shape(TestState *ts, EffRng *rng, Shape S) {
    const int Ho = dim_out(S.H, S.K, S.s), Wo = dim_out(S.W, S.K, S.s);
    const size_t nin = (size_t)S.N * S.H * S.W * S.C, nout = (size_t)S.N * Ho * Wo * S.C, nw = (size_t)S.K * S.K * S.C;
    float *in = xcalloc(nin, 4), *w = xcalloc(nw, 4), *dout = xcalloc(nout, 4), *dw0 = xcalloc(nw, 4);
    float *out_r = xcalloc(nout, 4), *din_r = xcalloc(nin, 4), *dw_r = xcalloc(nw, 4);
    float *out = xcalloc(nout, 4), *din = xcalloc(nin, 4), *dw = xcalloc(nw, 4);
    double *out_x = xcalloc(nout, 8), *din_x = xcalloc(nin, 8), *dw_x = xcalloc(nw, 8);
    t_fill_normal(rng, in, nin, 1.0);
    t_fill_normal(rng, w, nw, 0.5);
    t_fill_normal(rng, dout, nout, 1.0);
    t_fill_normal(rng, dw0, nw, 1.0); /* dw accumulates: start from non-zero */
    memcpy(dw_r, dw0, nw * 4);
    for (size_t i = 0; i < nw; i++) dw_x[i] = dw0[i];
    REF_LOOPS(float, out_r, din_r, dw_r, in, dout, w, S);
    REF_LOOPS(double, out_x, din_x, dw_x, in, dout, w, S);
    const double e_out = rel_err64(out_r, out_x, nout), e_din = rel_err64(din_r, din_x, nin),
                 e_dw = rel_err64(dw_r, dw_x, nw);
    printf("  N%d %dx%dx%d K%d s%d: fp32 loops vs float64: out %.2e din %.2e dw %.2e\n", S.N, S.H, S.W, S.C, S.K, S.s,
           e_out, e_din, e_dw);
    T_CHECK(ts, e_out < REF_TOL && e_din < REF_TOL && e_dw < REF_TOL,
            "N%d %dx%dx%d K%d s%d: fp32 loops vs float64: out %.2e din %.2e dw %.2e", S.N, S.H, S.W, S.C, S.K, S.s,
            e_out, e_din, e_dw);
    for (int isa = EFF_ISA_SCALAR; isa <= dwconv_isa_best(); isa++)
        for (int threads = 1; threads <= 2; threads++) {
            omp_set_num_threads(threads);
            memset(out, 0xff, nout * 4); /* NaN: every element must be written */
            memset(din, 0xff, nin * 4);
            memcpy(dw, dw0, nw * 4);
            dwconv_forward_isa(isa, out, NULL, in, w, S.N, S.H, S.W, S.C, S.K, S.s);
            dwconv_backward_isa(isa, din, dw, dout, in, w, S.N, S.H, S.W, S.C, S.K, S.s);
            const char *nm = dwconv_isa_name(isa);
            T_CHECK(ts, same_bits(out, out_r, nout), "%s %d thr N%d %dx%dx%d K%d s%d: forward differs", nm, threads, S.N,
                    S.H, S.W, S.C, S.K, S.s);
            T_CHECK(ts, same_bits(din, din_r, nin), "%s %d thr N%d %dx%dx%d K%d s%d: din differs", nm, threads, S.N, S.H,
                    S.W, S.C, S.K, S.s);
            T_CHECK(ts, same_bits(dw, dw_r, nw), "%s %d thr N%d %dx%dx%d K%d s%d: dw differs", nm, threads, S.N, S.H, S.W,
                    S.C, S.K, S.s);
        }
    free(in); free(w); free(dout); free(dw0); free(out_r); free(din_r); free(dw_r);
    free(out); free(din); free(dw); free(out_x); free(din_x); free(dw_x);
}

int main(void) {
    TestState ts = {0, 0};
    EffRng rng;
    eff_rng_seed(&rng, 16);
    printf("test_dwconv_isa: widest instruction set here: %s\n", dwconv_isa_name(dwconv_isa_best()));
    const Shape shapes[] = {
        {2, 9, 8, 19, 3, 1},  {2, 9, 8, 19, 3, 2},  {2, 11, 11, 37, 5, 1}, {2, 11, 10, 37, 5, 2},
        {3, 7, 7, 64, 3, 1},  {1, 6, 5, 80, 5, 2},  {2, 8, 8, 200, 3, 2},  {1, 5, 6, 96, 5, 1},
        {2, 5, 5, 21, 7, 1},  {1, 4, 4, 24, 1, 1},  {1, 1, 1, 48, 3, 1},   {1, 2, 3, 16, 5, 2},
        /* wide rows: several register blocks per row, and rows that end in a partial block */
        {2, 13, 17, 40, 3, 1}, {1, 14, 19, 40, 3, 2}, {2, 12, 21, 72, 5, 1}, {1, 15, 23, 35, 5, 2},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) check_shape(&ts, &rng, shapes[i]);
    return t_finish(&ts, "test_dwconv_isa");
}
