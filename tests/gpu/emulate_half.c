/* emulate_half.c: the error bounds of test_cuda_ops, measured without a GPU (issue 14).
 *
 *   emulate_half bf16|fp16 [SEEDS]        worst scaled error per case
 *   emulate_half fp32 SEEDS --dump FILE   the fp32 CPU results, raw
 *
 * bf16/fp16: the CPU ops run with inputs, weights and outputs rounded where
 * the CUDA kernels round them (kernels/conv2d.cu, pwconv.cu, linear.cu; fp32
 * accumulation; bf16 mode's fp32-input GEMMs round their inputs,
 * CUBLAS_COMPUTE_32F_FAST_16BF), against the fp32 CPU reference, over
 * test_cuda_ops' shapes: the error a correct GPU implementation would have,
 * but for fp32 summation order (~1e-6). fp32: dump under two OpenBLAS kernels
 * (OPENBLAS_CORETYPE unset and =Haswell) and compare the files record by
 * record (each record: "op|what|n\n", n floats, "\n") with max|a-b|/max|b|.
 * Built with the GPU tests; not a test itself. */
#include "backend/backend.h"
#include "common.h"
#include "half.h"
#include "ops/ops.h"
#include "rng.h"
#include "test_util.h"
#include <stdlib.h>
#include <string.h>
static int P; static EffRng rng; static double worst_g = 0, worst_o = 0;
static double serr(const float *a, const float *b, size_t n) { double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) { double d = fabs((double)a[i] - b[i]); if (d > num) num = d; if (fabs(b[i]) > den) den = fabs(b[i]); }
    return den > 0 ? num / den : num; }
static float *hr(size_t n, double s) { float *x = malloc(n * 4 + 16); t_fill_normal(&rng, x, n, s); return x; }
static void R(float *x, size_t n) { for (size_t i = 0; i < n; i++) x[i] = eff_round_act(x[i], P); }
static float *hrA(size_t n, double s) { float *x = hr(n, s); R(x, n); return x; }
static float *cp(const float *x, size_t n) { float *y = malloc(n * 4 + 16); memcpy(y, x, n * 4); return y; }
static float *Rc(const float *x, size_t n) { float *y = cp(x, n); R(y, n); return y; }
/* fp32-input GEMMs: bf16 mode rounds the inputs (CUBLAS_COMPUTE_32F_FAST_16BF), fp16 mode keeps fp32 */
static float *Rf(const float *x, size_t n) { return P == 1 ? Rc(x, n) : cp(x, n); }
static FILE *dumpf;
static void rep(const char *op, const char *what, const float *emu, const float *ref, size_t n, int gemm) {
    if (dumpf) { fprintf(dumpf, "%s|%s|%zu\n", op, what, n); fwrite(ref, 4, n, dumpf); fputc('\n', dumpf); }
    double e = serr(emu, ref, n); printf("  %-28s %-10s %.2e%s\n", op, what, e, gemm ? "  (GEMM)" : "");
    if (gemm) worst_g = fmax(worst_g, e); else worst_o = fmax(worst_o, e); }
static void conv2d(int N, int H, int Cout, int K, int s, int pad) {
    const int Cin = 3, Ho = conv_out_size(H, K, s, pad); size_t nx = (size_t)N*H*H*Cin, ny = (size_t)N*Ho*Ho*Cout, nw = (size_t)K*K*Cin*Cout;
    float *x = hr(nx, 1), *w = hr(nw, .3), *dy = hrA(ny, 1), *dw0 = hr(nw, .1);
    float *y = calloc(ny, 4), *col = calloc((size_t)N*Ho*Ho*K*K*Cin + nx, 4), *dw = cp(dw0, nw), *dx = calloc(nx, 4);
    conv2d_forward_cpu(y, col, x, w, N, H, H, Cin, Cout, K, s, pad);
    conv2d_backward_cpu(dx, dw, col, dy, w, N, H, H, Cin, Cout, K, s, pad);
    float *xr = Rc(x, nx), *wr = Rc(w, nw), *ye = calloc(ny, 4), *dwk = calloc(nw, 4), *dxe = calloc(nx, 4);
    conv2d_forward_cpu(ye, col, xr, wr, N, H, H, Cin, Cout, K, s, pad); R(ye, ny);
    conv2d_backward_cpu(dxe, dwk, col, dy, wr, N, H, H, Cin, Cout, K, s, pad); R(dxe, nx); R(dwk, nw);
    for (size_t i = 0; i < nw; i++) dwk[i] += dw0[i];
    char nm[64]; snprintf(nm, 64, "conv2d N%d H%d C%d K%d s%d", N, H, Cout, K, s);
    rep(nm, "out", ye, y, ny, 1); rep(nm, "din", dxe, dx, nx, 1); rep(nm, "dw(+=)", dwk, dw, nw, 1);
}
static void pwconv(int M, int Cin, int Cout) {
    size_t nx = (size_t)M*Cin, ny = (size_t)M*Cout, nw = (size_t)Cin*Cout;
    float *x = hrA(nx, 1), *w = hr(nw, .2), *dy = hrA(ny, 1), *dw0 = hr(nw, .1);
    float *y = calloc(ny, 4), *dx = calloc(nx, 4), *dw = cp(dw0, nw);
    pwconv_forward_cpu(y, x, w, M, Cin, Cout); pwconv_backward_cpu(dx, dw, dy, x, w, M, Cin, Cout);
    float *wr = Rc(w, nw), *ye = calloc(ny, 4), *dxe = calloc(nx, 4), *dwe = cp(dw0, nw);
    pwconv_forward_cpu(ye, x, wr, M, Cin, Cout); R(ye, ny);
    pwconv_backward_cpu(dxe, dwe, dy, x, wr, M, Cin, Cout); R(dxe, nx);
    char nm[64]; snprintf(nm, 64, "pwconv M%d %d->%d", M, Cin, Cout);
    rep(nm, "out", ye, y, ny, 1); rep(nm, "din", dxe, dx, nx, 1); rep(nm, "dw(+=)", dwe, dw, nw, 1);
}
static void dwconv(int N, int H, int C, int K, int s) {
    const int Ho = conv_out_size(H, K, s, K / 2); size_t nx = (size_t)N*H*H*C, ny = (size_t)N*Ho*Ho*C, nw = (size_t)K*K*C;
    float *x = hrA(nx, 1), *w = hr(nw, .3), *dy = hrA(ny, 1), *dw0 = hr(nw, .1);
    float *y = calloc(ny, 4), *dx = calloc(nx, 4), *dw = cp(dw0, nw);
    dwconv_forward_cpu(y, x, w, N, H, H, C, K, s); dwconv_backward_cpu(dx, dw, dy, x, w, N, H, H, C, K, s);
    char nm[64]; snprintf(nm, 64, "dwconv N%d H%d C%d K%d s%d", N, H, C, K, s);
    float *ye = Rc(y, ny), *dxe = Rc(dx, nx);
    rep(nm, "out", ye, y, ny, 0); rep(nm, "din", dxe, dx, nx, 0);
}
static void head(int N, int HW, int C, int K) {
    size_t nc = (size_t)N*C;
    float *x = hrA((size_t)N*HW*C, 1), *pool = calloc(nc, 4);
    gap_forward_cpu(pool, x, N, HW, C); float *poolr = Rc(pool, nc);
    float *w = hr((size_t)K*C, .2), *b = hr(K, .1), *lo = calloc((size_t)N*K, 4), *loe = calloc((size_t)N*K, 4);
    linear_forward_cpu(lo, poolr, w, b, N, C, K);
    float *wr = Rf(w, (size_t)K*C); linear_forward_cpu(loe, poolr, wr, b, N, C, K);
    float *dl = hr((size_t)N*K, .1), *dp = calloc(nc, 4), *dpe = calloc(nc, 4), *dw = calloc((size_t)K*C, 4), *dwe = calloc((size_t)K*C, 4), *db = calloc(K, 4);
    linear_backward_cpu(dp, dw, db, dl, poolr, w, N, C, K);
    float *dlr = Rf(dl, (size_t)N*K); memset(db, 0, K * 4);
    linear_backward_cpu(dpe, dwe, db, dlr, poolr, wr, N, C, K); R(dpe, nc);
    char nm[64]; snprintf(nm, 64, "head N%d HW%d C%d K%d", N, HW, C, K);
    rep(nm, "gap", poolr, pool, nc, 0); rep(nm, "logits", loe, lo, (size_t)N*K, 1);
    rep(nm, "lin din", dpe, dp, nc, 1); rep(nm, "lin dw", dwe, dw, (size_t)K*C, 1);
}
int main(int argc, char **argv) {
    P = eff_precision_parse(argc > 1 ? argv[1] : "bf16");
    if (argc > 4 && !strcmp(argv[3], "--dump")) dumpf = fopen(argv[4], "wb");
    for (int seed = 42; seed < 42 + (argc > 2 ? atoi(argv[2]) : 1); seed++) {
        eff_rng_seed(&rng, (uint64_t)seed);
        printf("%s seed %d\n", argc > 1 ? argv[1] : "bf16", seed);
        conv2d(2, 17, 8, 3, 2, 1); conv2d(4, 32, 32, 3, 2, 1); conv2d(1, 64, 40, 3, 2, 1);
        pwconv(37, 16, 24); pwconv(200, 96, 40); pwconv(1024, 320, 1280);
        dwconv(2, 9, 24, 3, 1); dwconv(2, 16, 40, 5, 2); dwconv(3, 14, 144, 5, 1); dwconv(2, 15, 96, 3, 2);
        head(4, 49, 64, 10); head(16, 16, 1280, 10);
    }
    if (dumpf) fclose(dumpf);
    printf("worst: GEMM-type %.2e, rounded-output-only %.2e\n", worst_g, worst_o);
}
