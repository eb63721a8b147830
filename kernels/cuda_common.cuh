/* cuda_common.cuh: device helpers shared by the kernels in kernels/. */
#ifndef EFFNET_CUDA_COMMON_CUH
#define EFFNET_CUDA_COMMON_CUH

#include "cuda_ops.h"

#include <stdint.h>

#define EFF_THREADS 256

/* Blocks for n elements at EFF_THREADS per block, capped: kernels use
 * grid-stride loops, so any grid size is correct. */
static inline unsigned eff_blocks(size_t n) {
    size_t b = (n + EFF_THREADS - 1) / EFF_THREADS;
    if (b < 1) b = 1;
    return (unsigned)(b > 65535u * 8u ? 65535u * 8u : b);
}

#define GRID_STRIDE(i, n) for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* The same functions as src/rng.h, for the device (dropout masks must match
 * the CPU bit for bit). */
__host__ __device__ static inline uint64_t eff_mix64_d(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}
__host__ __device__ static inline float eff_uniform_at_d(uint64_t key, uint64_t i) {
    return (float)(eff_mix64_d(key ^ (i * 0xD1B54A32D192ED03ull)) >> 40) * (1.0f / 16777216.0f);
}

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
