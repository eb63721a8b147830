/* pwconv.cu: 1x1 conv as one GEMM over the M = N*H*W pixel rows -- the CUDA
 * twin of src/ops/pwconv.c. w: [Cout][Cin], fp32.
 *
 * cuBLAS cublasGemmEx. In fp32 mode everything is fp32 (eff_cuda_gemm_rm). In
 * bf16/fp16 mode the activations are 16-bit: the fp32 weights are converted
 * into scratch once per call (Cin*Cout elements, small next to M*Cin), the
 * GEMMs take 16-bit A and B with fp32 accumulation, the outputs are 16-bit,
 * and the weight gradient is accumulated in fp32 (C = fp32, beta = 1). */
#include "act.cuh"

namespace {
template <typename T> const T *weights_as(EffCuda *cu, const float *w, size_t n) {
    T *wt = (T *)eff_cuda_scratch(cu, EFF_SCR_WEIGHT, n * sizeof(T));
    eff_convert_k<T, float><<<eff_blocks(n), EFF_THREADS, 0, cu->stream>>>(wt, w, n);
    CUDA_LAUNCHED("weights_as");
    return wt;
}

template <typename T> void forward_t(EffCuda *cu, T *out, const T *in, const float *w, int M, int Cin, int Cout) {
    const int ty = EffActType<T>::cuda;
    const T *wt = weights_as<T>(cu, w, (size_t)Cin * Cout);
    eff_cuda_gemm_rm_ex(cu, 0, 1, M, Cout, Cin, 1.0f, in, ty, Cin, wt, Cin, 0.0f, out, ty, Cout); /* out = in . w^T */
}

template <typename T>
void backward_t(EffCuda *cu, T *din, float *dw, const T *dout, const T *in, const float *w, int M, int Cin, int Cout) {
    const int ty = EffActType<T>::cuda;
    /* dw += dout^T . in, accumulated into the fp32 gradient */
    eff_cuda_gemm_rm_ex(cu, 1, 0, Cout, Cin, M, 1.0f, dout, ty, Cout, in, Cin, 1.0f, dw, CUDA_R_32F, Cin);
    if (!din) return;
    const T *wt = weights_as<T>(cu, w, (size_t)Cin * Cout);
    eff_cuda_gemm_rm_ex(cu, 0, 0, M, Cin, Cout, 1.0f, dout, ty, Cout, wt, Cin, 0.0f, din, ty, Cin); /* din = dout . w */
}
} // namespace

extern "C" void pwconv_forward_cuda(EffCuda *cu, void *out, const void *in, const float *w, int M, int Cin,
                                    int Cout) {
    if (cu->precision == 0) { /* no weight copy in fp32 */
        eff_cuda_gemm_rm(cu, 0, 1, M, Cout, Cin, 1.0f, (const float *)in, Cin, w, Cin, 0.0f, (float *)out, Cout);
        return;
    }
    EFF_ACT_DISPATCH(cu->precision, T, forward_t<T>(cu, (T *)out, (const T *)in, w, M, Cin, Cout));
}

extern "C" void pwconv_backward_cuda(EffCuda *cu, void *din, float *dw, const void *dout, const void *in,
                                     const float *w, int M, int Cin, int Cout) {
    if (cu->precision == 0) {
        const float *dy = (const float *)dout, *x = (const float *)in;
        eff_cuda_gemm_rm(cu, 1, 0, Cout, Cin, M, 1.0f, dy, Cout, x, Cin, 1.0f, dw, Cin);
        if (din) eff_cuda_gemm_rm(cu, 0, 0, M, Cin, Cout, 1.0f, dy, Cout, w, Cin, 0.0f, (float *)din, Cin);
        return;
    }
    EFF_ACT_DISPATCH(cu->precision, T,
                     backward_t<T>(cu, (T *)din, dw, (const T *)dout, (const T *)in, w, M, Cin, Cout));
}
