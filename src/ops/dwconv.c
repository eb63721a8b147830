/* dwconv.c: depthwise KxK convolution (padding K/2), NHWC, vectorised over C.
 * Forward and din parallelise over output/input rows; dw parallelises over
 * channel blocks so that each weight is summed by one thread in a fixed order. */
#include "ops.h"

#include <string.h>

#define DW_MAXK 7

void dwconv_forward_cpu(float *restrict out, const float *restrict in, const float *restrict w,
                        int N, int H, int W, int C, int K, int stride) {
    const int pad = K / 2;
    const int Ho = conv_out_size(H, K, stride, pad), Wo = conv_out_size(W, K, stride, pad);
    #pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int oh = 0; oh < Ho; oh++) {
            float *restrict orow = out + ((size_t)(n * Ho + oh) * Wo) * C;
            for (int ow = 0; ow < Wo; ow++) {
                float *restrict op = orow + (size_t)ow * C;
                memset(op, 0, sizeof(float) * (size_t)C);
                for (int kh = 0; kh < K; kh++) {
                    const int ih = oh * stride - pad + kh;
                    if (ih < 0 || ih >= H) continue;
                    for (int kw = 0; kw < K; kw++) {
                        const int iw = ow * stride - pad + kw;
                        if (iw < 0 || iw >= W) continue;
                        const float *restrict ip = in + ((size_t)(n * H + ih) * W + iw) * C;
                        const float *restrict wp = w + (size_t)(kh * K + kw) * C;
                        for (int c = 0; c < C; c++) op[c] += ip[c] * wp[c];
                    }
                }
            }
        }
}

void dwconv_backward_cpu(float *restrict din, float *restrict dw, const float *restrict dout,
                         const float *restrict in, const float *restrict w,
                         int N, int H, int W, int C, int K, int stride) {
    const int pad = K / 2;
    const int Ho = conv_out_size(H, K, stride, pad), Wo = conv_out_size(W, K, stride, pad);
    if (din) {
        /* Gather form: each input pixel sums the outputs it fed; no write races. */
        #pragma omp parallel for collapse(2) schedule(static)
        for (int n = 0; n < N; n++)
            for (int ih = 0; ih < H; ih++) {
                for (int iw = 0; iw < W; iw++) {
                    float *restrict dp = din + ((size_t)(n * H + ih) * W + iw) * C;
                    memset(dp, 0, sizeof(float) * (size_t)C);
                    for (int kh = 0; kh < K; kh++) {
                        const int t = ih + pad - kh;
                        if (t < 0 || t % stride) continue;
                        const int oh = t / stride;
                        if (oh >= Ho) continue;
                        for (int kw = 0; kw < K; kw++) {
                            const int u = iw + pad - kw;
                            if (u < 0 || u % stride) continue;
                            const int ow = u / stride;
                            if (ow >= Wo) continue;
                            const float *restrict gp = dout + ((size_t)(n * Ho + oh) * Wo + ow) * C;
                            const float *restrict wp = w + (size_t)(kh * K + kw) * C;
                            for (int c = 0; c < C; c++) dp[c] += gp[c] * wp[c];
                        }
                    }
                }
            }
    }
    /* dw: one channel block per task, partial sums in a local tile. */
    enum { CB = 16 };
    const int nblk = (C + CB - 1) / CB;
    #pragma omp parallel for schedule(dynamic, 1)
    for (int b = 0; b < nblk; b++) {
        const int c0 = b * CB, cn = (C - c0) < CB ? (C - c0) : CB;
        float acc[DW_MAXK * DW_MAXK][CB];
        memset(acc, 0, sizeof(acc));
        for (int n = 0; n < N; n++)
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++) {
                    const float *restrict gp = dout + ((size_t)(n * Ho + oh) * Wo + ow) * C + c0;
                    for (int kh = 0; kh < K; kh++) {
                        const int ih = oh * stride - pad + kh;
                        if (ih < 0 || ih >= H) continue;
                        for (int kw = 0; kw < K; kw++) {
                            const int iw = ow * stride - pad + kw;
                            if (iw < 0 || iw >= W) continue;
                            const float *restrict ip = in + ((size_t)(n * H + ih) * W + iw) * C + c0;
                            float *restrict a = acc[kh * K + kw];
                            if (cn == CB) {
                                for (int c = 0; c < CB; c++) a[c] += gp[c] * ip[c];
                            } else {
                                for (int c = 0; c < cn; c++) a[c] += gp[c] * ip[c];
                            }
                        }
                    }
                }
        for (int kk = 0; kk < K * K; kk++)
            for (int c = 0; c < cn; c++) dw[(size_t)kk * C + c0 + c] += acc[kk][c];
    }
}
