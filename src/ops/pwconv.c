/* pwconv.c: 1x1 convolution in NHWC = one sgemm over the M = N*H*W rows. */
#include "ops.h"

#include <cblas.h>

void pwconv_forward_cpu(float *out, const float *in, const float *w, int M, int Cin, int Cout) {
    /* out[M][Cout] = in[M][Cin] . w[Cout][Cin]^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, Cout, Cin, 1.0f, in, Cin, w, Cin, 0.0f, out, Cout);
}

void pwconv_backward_cpu(float *din, float *dw, const float *dout, const float *in, const float *w,
                         int M, int Cin, int Cout) {
    /* dw[Cout][Cin] += dout^T . in */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Cout, Cin, M, 1.0f, dout, Cout, in, Cin, 1.0f, dw, Cin);
    /* din[M][Cin] = dout[M][Cout] . w[Cout][Cin] */
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, Cin, Cout, 1.0f, dout, Cout, w, Cin, 0.0f, din, Cin);
}
