/* pwconv.c: 1x1 convolution in NHWC = one sgemm over the M = N*H*W rows. */
#include "ops.h"

#include "ops/gemm.h"

void pwconv_forward_cpu(float *out, const float *in, const float *w, int M, int Cin, int Cout) {
    /* out[M][Cout] = in[M][Cin] . w[Cout][Cin]^T */
    eff_sgemm(0, 1, M, Cout, Cin, 1.0f, in, Cin, w, Cin, 0.0f, out, Cout);
}

void pwconv_backward_cpu(float *din, float *dw, const float *dout, const float *in, const float *w,
                         int M, int Cin, int Cout) {
    /* dw[Cout][Cin] += dout^T . in */
    eff_sgemm(1, 0, Cout, Cin, M, 1.0f, dout, Cout, in, Cin, 1.0f, dw, Cin);
    /* din[M][Cin] = dout[M][Cout] . w[Cout][Cin] */
    if (din)
        eff_sgemm(0, 0, M, Cin, Cout, 1.0f, dout, Cout, w, Cin, 0.0f, din, Cin);
}
