/* cuda_common.cuh: device helpers shared by the kernels in kernels/. */
#ifndef EFFNET_CUDA_COMMON_CUH
#define EFFNET_CUDA_COMMON_CUH

#include "cuda_ops.h"
#include "rng.h" /* eff_uniform_at: host and device (mix64.h) */

#include <stdint.h>

#define EFF_THREADS 256

/* Blocks for n elements at EFF_THREADS per block, capped at EFF_BLOCKS_CAP
 * (launch_geom.h asserts the cap fits every device): kernels use grid-stride
 * loops, so any grid size is correct. */
static inline unsigned eff_blocks(size_t n) {
    size_t b = (n + EFF_THREADS - 1) / EFF_THREADS;
    if (b < 1) b = 1;
    return (unsigned)(b > (size_t)EFF_BLOCKS_CAP ? (size_t)EFF_BLOCKS_CAP : b);
}

/* The grid of every launch whose size follows a shape, checked against this
 * device's limits (cu->limits) BEFORE the values are narrowed to dim3's
 * unsigned: a grid that cannot launch stops with the kernel, the dimension,
 * the value and the limit, instead of a bare "invalid configuration". */
static inline dim3 eff_grid3(const EffCuda *cu, const char *kernel, long long x, long long y, long long z,
                             dim3 block) {
    const long long g[3] = {x, y, z}, b[3] = {block.x, block.y, block.z};
    char why[400];
    if (eff_launch_check(kernel, g, b, &cu->limits, why, sizeof why))
        eff_cuda_fail(kernel, why, __FILE__, __LINE__);
    return dim3((unsigned)x, (unsigned)y, (unsigned)z);
}
static inline dim3 eff_grid1(const EffCuda *cu, const char *kernel, long long x, unsigned threads) {
    return eff_grid3(cu, kernel, x, 1, 1, dim3(threads));
}

#define GRID_STRIDE(i, n) for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* IEEE expf (not __expf) so fp32 results stay within a few ulp of the CPU. */
__device__ static inline float eff_sigmoid_d(float x) { return 1.0f / (1.0f + expf(-x)); }
__device__ static inline float eff_swish_grad_d(float z) {
    float s = eff_sigmoid_d(z);
    return s * (1.0f + z * (1.0f - s));
}

/* Number of row chunks for the column reductions (BN, SE pooling, dwconv
 * weight gradients): a function of the row count only, so the summation
 * order never depends on the device. */
static inline int eff_row_chunks(long rows, int rows_per_chunk, int max_chunks) {
    long c = (rows + rows_per_chunk - 1) / rows_per_chunk;
    if (c < 1) c = 1;
    return (int)(c > max_chunks ? max_chunks : c);
}

#endif
