/* reduce.cu: the sum of squares of the gradient buffer (the NaN/Inf check and
 * the gradient norm), in double, in a fixed order. */
#include "cuda_common.cuh"

#define SQ_BLOCKS 1024

namespace {
/* Block b sums its contiguous slice with a fixed-shape tree. */
__global__ void sumsq_partial(double *partial, const float *x, size_t n) {
    __shared__ double sh[EFF_THREADS];
    const size_t b0 = n * blockIdx.x / gridDim.x, b1 = n * (blockIdx.x + 1) / gridDim.x;
    double s = 0.0;
    for (size_t i = b0 + threadIdx.x; i < b1; i += blockDim.x) s += (double)x[i] * x[i];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int w = EFF_THREADS / 2; w > 0; w /= 2) {
        if ((int)threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = sh[0];
}
__global__ void sumsq_total(double *out, const double *partial, int nb) {
    double s = 0.0;
    for (int b = 0; b < nb; b++) s += partial[b];
    *out = s;
}
} // namespace

extern "C" void sumsq_cuda(EffCuda *cu, double *out_dev, const float *x, size_t n) {
    double *partial = eff_cuda_reduce_scratch(cu, SQ_BLOCKS);
    sumsq_partial<<<eff_grid1(cu, "sumsq_partial", SQ_BLOCKS, EFF_THREADS), EFF_THREADS, 0, cu->stream>>>(
        partial, x, n);
    CUDA_LAUNCHED("sumsq_partial");
    sumsq_total<<<1, 1, 0, cu->stream>>>(out_dev, partial, SQ_BLOCKS); /* launch-grid-ok: one thread */
    CUDA_LAUNCHED("sumsq_total");
}
