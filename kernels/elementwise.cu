/* elementwise.cu: the residual add y += x -- the CUDA twin of
 * src/ops/elementwise.c (swish is fused into BN: batchnorm.cu) -- and x *= a
 * (unscaling fp16 gradients). */
#include "cuda_common.cuh"

namespace {
__global__ void add_k(float *y, const float *x, size_t n) { GRID_STRIDE(i, n) y[i] += x[i]; }
__global__ void scale_k(float *x, size_t n, float a) { GRID_STRIDE(i, n) x[i] *= a; }
} // namespace

extern "C" void add_inplace_cuda(EffCuda *cu, float *y, const float *x, size_t n) {
    add_k<<<eff_blocks(n), EFF_THREADS, 0, cu->stream>>>(y, x, n);
    CUDA_LAUNCHED("add_inplace");
}

extern "C" void scale_inplace_cuda(EffCuda *cu, float *x, size_t n, float alpha) {
    scale_k<<<eff_blocks(n), EFF_THREADS, 0, cu->stream>>>(x, n, alpha);
    CUDA_LAUNCHED("scale_inplace");
}
