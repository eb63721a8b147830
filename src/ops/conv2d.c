/* conv2d.c: dense KxK convolution (the stem) via im2col + sgemm, NHWC. */
#include "ops.h"

#include "ops/gemm.h"
#include <string.h>

void conv2d_forward_cpu(float *out, float *col, const float *in, const float *w,
                        int N, int H, int W, int Cin, int Cout, int K, int stride, int pad) {
    const int Ho = conv_out_size(H, K, stride, pad), Wo = conv_out_size(W, K, stride, pad);
    const int KKC = K * K * Cin;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++) {
                float *row = col + ((size_t)(n * Ho + oh) * Wo + ow) * KKC;
                for (int kh = 0; kh < K; kh++) {
                    int ih = oh * stride - pad + kh;
                    for (int kw = 0; kw < K; kw++) {
                        int iw = ow * stride - pad + kw;
                        float *dst = row + (kh * K + kw) * Cin;
                        if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
                            memset(dst, 0, sizeof(float) * (size_t)Cin);
                        } else {
                            memcpy(dst, in + ((size_t)(n * H + ih) * W + iw) * Cin, sizeof(float) * (size_t)Cin);
                        }
                    }
                }
            }
    const int M = N * Ho * Wo;
    eff_sgemm(0, 0, M, Cout, KKC, 1.0f, col, KKC, w, Cout, 0.0f, out, Cout);
}

void conv2d_backward_cpu(float *din, float *dw, float *col, const float *dout, const float *w,
                         int N, int H, int W, int Cin, int Cout, int K, int stride, int pad) {
    const int Ho = conv_out_size(H, K, stride, pad), Wo = conv_out_size(W, K, stride, pad);
    const int KKC = K * K * Cin, M = N * Ho * Wo;
    eff_sgemm(1, 0, KKC, Cout, M, 1.0f, col, KKC, dout, Cout, 1.0f, dw, Cout);
    if (!din) return;
    /* dcol = dout . w^T, written over col (no longer needed), then col2im. */
    eff_sgemm(0, 1, M, KKC, Cout, 1.0f, dout, Cout, w, Cout, 0.0f, col, KKC);
    memset(din, 0, sizeof(float) * (size_t)N * H * W * Cin);
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++) {
                const float *row = col + ((size_t)(n * Ho + oh) * Wo + ow) * KKC;
                for (int kh = 0; kh < K; kh++) {
                    int ih = oh * stride - pad + kh;
                    if (ih < 0 || ih >= H) continue;
                    for (int kw = 0; kw < K; kw++) {
                        int iw = ow * stride - pad + kw;
                        if (iw < 0 || iw >= W) continue;
                        float *dst = din + ((size_t)(n * H + ih) * W + iw) * Cin;
                        const float *src = row + (kh * K + kw) * Cin;
                        for (int c = 0; c < Cin; c++) dst[c] += src[c];
                    }
                }
            }
}
