/* pwconv.cu: 1x1 conv as one GEMM over the M = N*H*W pixel rows -- the CUDA
 * twin of src/ops/pwconv.c. w: [Cout][Cin]. cuBLAS, with the math set by the
 * backend precision (eff_cuda_gemm_rm in common.cu). */
#include "cuda_common.cuh"

extern "C" void pwconv_forward_cuda(EffCuda *cu, float *out, const float *in, const float *w, int M, int Cin,
                                    int Cout) {
    eff_cuda_gemm_rm(cu, 0, 1, M, Cout, Cin, 1.0f, in, Cin, w, Cin, 0.0f, out, Cout); /* out = in . w^T */
}

extern "C" void pwconv_backward_cuda(EffCuda *cu, float *din, float *dw, const float *dout, const float *in,
                                     const float *w, int M, int Cin, int Cout) {
    eff_cuda_gemm_rm(cu, 1, 0, Cout, Cin, M, 1.0f, dout, Cout, in, Cin, 1.0f, dw, Cin); /* dw += dout^T . in */
    if (din) eff_cuda_gemm_rm(cu, 0, 0, M, Cin, Cout, 1.0f, dout, Cout, w, Cin, 0.0f, din, Cin); /* din = dout . w */
}
