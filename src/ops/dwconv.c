/* dwconv.c: depthwise KxK convolution (padding K/2), NHWC.
 *
 * The loops live in dwconv_isa.h, compiled here for AVX-512, AVX2 and plain
 * C; each call runs the widest the CPU supports (runtime dispatch, so one
 * binary runs everywhere). All three add in the same order, so they agree bit
 * for bit with each other and on any thread count (tests/test_dwconv_isa.c).
 * Forward and din parallelise over output/input rows; dw over channel
 * vectors, so that each weight is summed by one thread in a fixed order. */
#include "ops.h"

#include <string.h>

#define DW_MAXK 7
#define DW_R 4 /* output pixels per register block (dwconv_isa.h) */

/* The weight gradient of one channel, in the tiles' order: the tail of C
 * past the last full vector, and K other than 3 and 5. */
static void dw_wgrad_scalar(float *restrict dw, const float *restrict dout, const float *restrict in, int N, int H,
                            int W, int C, int K, int stride, int c) {
    const int pad = K / 2;
    const int Ho = conv_out_size(H, K, stride, pad), Wo = conv_out_size(W, K, stride, pad);
    float acc[DW_MAXK * DW_MAXK] = {0};
    for (int n = 0; n < N; n++)
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++) {
                const float g = dout[((size_t)(n * Ho + oh) * Wo + ow) * C + c];
                for (int kh = 0; kh < K; kh++) {
                    const int ih = oh * stride - pad + kh;
                    if (ih < 0 || ih >= H) continue;
                    for (int kw = 0; kw < K; kw++) {
                        const int iw = ow * stride - pad + kw;
                        if (iw < 0 || iw >= W) continue;
                        acc[kh * K + kw] += g * in[((size_t)(n * H + ih) * W + iw) * C + c];
                    }
                }
            }
    for (int t = 0; t < K * K; t++) dw[(size_t)t * C + c] += acc[t];
}

static inline int dw_nchunks(int M) { return M < EFF_BN_CHUNKS ? M : EFF_BN_CHUNKS; }

/* The valid taps of the output pixel whose window starts at (ih0, iw0) of
 * image n, in (kh, kw) order: their input rows and weight rows. */
static inline int dw_forward_taps(const float **src, const float **wt, const float *in, const float *w, int n,
                                  int ih0, int iw0, int H, int W, int C, int K) {
    int nt = 0;
    for (int kh = 0; kh < K; kh++) {
        if (ih0 + kh < 0 || ih0 + kh >= H) continue;
        for (int kw = 0; kw < K; kw++) {
            if (iw0 + kw < 0 || iw0 + kw >= W) continue;
            src[nt] = in + ((size_t)(n * H + ih0 + kh) * W + iw0 + kw) * C;
            wt[nt++] = w + (size_t)(kh * K + kw) * C;
        }
    }
    return nt;
}

#define DW_SUFFIX scalar
#define DW_ATTR
#define DW_VW 1
#include "dwconv_isa.h"
#undef DW_SUFFIX
#undef DW_ATTR
#undef DW_VW

#if defined(__x86_64__) && defined(__GNUC__)
#define DW_SUFFIX avx2
#define DW_ATTR __attribute__((target("avx2")))
#define DW_VW 8
#include "dwconv_isa.h"
#undef DW_SUFFIX
#undef DW_ATTR
#undef DW_VW

#define DW_SUFFIX avx512
#define DW_ATTR __attribute__((target("avx512f")))
#define DW_VW 16
#include "dwconv_isa.h"
#undef DW_SUFFIX
#undef DW_ATTR
#undef DW_VW
#endif

int dwconv_isa_best(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return EFF_ISA_AVX512;
    if (__builtin_cpu_supports("avx2")) return EFF_ISA_AVX2;
#endif
    return EFF_ISA_SCALAR;
}

const char *dwconv_isa_name(int isa) {
    return isa == EFF_ISA_AVX512 ? "avx512" : isa == EFF_ISA_AVX2 ? "avx2" : "scalar";
}

void dwconv_forward_isa(int isa, float *out, double *bn_work, const float *in, const float *w, int N, int H, int W,
                        int C, int K, int stride) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (isa == EFF_ISA_AVX512) { dw_forward_avx512(out, bn_work, in, w, N, H, W, C, K, stride); return; }
    if (isa == EFF_ISA_AVX2) { dw_forward_avx2(out, bn_work, in, w, N, H, W, C, K, stride); return; }
#endif
    (void)isa;
    dw_forward_scalar(out, bn_work, in, w, N, H, W, C, K, stride);
}

void dwconv_backward_isa(int isa, float *din, float *dw, const float *dout, const float *in, const float *w, int N,
                         int H, int W, int C, int K, int stride) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (isa == EFF_ISA_AVX512) {
        if (din) dw_backward_input_avx512(din, dout, w, N, H, W, C, K, stride);
        dw_backward_weight_avx512(dw, dout, in, N, H, W, C, K, stride);
        return;
    }
    if (isa == EFF_ISA_AVX2) {
        if (din) dw_backward_input_avx2(din, dout, w, N, H, W, C, K, stride);
        dw_backward_weight_avx2(dw, dout, in, N, H, W, C, K, stride);
        return;
    }
#endif
    (void)isa;
    if (din) dw_backward_input_scalar(din, dout, w, N, H, W, C, K, stride);
    dw_backward_weight_scalar(dw, dout, in, N, H, W, C, K, stride);
}

void dwconv_forward_cpu(float *restrict out, const float *restrict in, const float *restrict w,
                        int N, int H, int W, int C, int K, int stride) {
    dwconv_forward_isa(dwconv_isa_best(), out, NULL, in, w, N, H, W, C, K, stride);
}

void dwconv_forward_bnstats_cpu(float *restrict out, double *restrict bn_work, const float *restrict in,
                                const float *restrict w, int N, int H, int W, int C, int K, int stride) {
    dwconv_forward_isa(dwconv_isa_best(), out, bn_work, in, w, N, H, W, C, K, stride);
}

void dwconv_backward_cpu(float *restrict din, float *restrict dw, const float *restrict dout,
                         const float *restrict in, const float *restrict w,
                         int N, int H, int W, int C, int K, int stride) {
    dwconv_backward_isa(dwconv_isa_best(), din, dw, dout, in, w, N, H, W, C, K, stride);
}
