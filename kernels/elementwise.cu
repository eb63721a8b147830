/* elementwise.cu: the residual add y += x on activations -- the CUDA twin of
 * src/ops/elementwise.c (swish is fused into BN: batchnorm.cu) -- and x *= a
 * on fp32 gradients (unscaling fp16 gradients). */
#include "act.cuh"

namespace {
template <typename T> __global__ void add_k(T *y, const T *x, size_t n) {
    GRID_STRIDE(i, n) y[i] = eff_st<T>(eff_ld(y[i]) + eff_ld(x[i]));
}
__global__ void scale_k(float *x, size_t n, float a) { GRID_STRIDE(i, n) x[i] *= a; }
} // namespace

extern "C" void add_inplace_cuda(EffCuda *cu, void *y, const void *x, size_t n) {
    EFF_ACT_DISPATCH(cu->precision, T,
                     add_k<T><<<eff_blocks(n), EFF_THREADS, 0, cu->stream>>>((T *)y, (const T *)x, n));
    CUDA_LAUNCHED("add_inplace");
}

extern "C" void scale_inplace_cuda(EffCuda *cu, float *x, size_t n, float alpha) {
    scale_k<<<eff_blocks(n), EFF_THREADS, 0, cu->stream>>>(x, n, alpha);
    CUDA_LAUNCHED("scale_inplace");
}
