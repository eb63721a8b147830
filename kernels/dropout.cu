/* dropout.cu: inverted dropout with the counter-based mask of src/rng.h --
 * the CUDA twin of src/ops/dropout.c; masks are bit-identical to the CPU's.
 * Backward is the same call (same mask, same scale). */
#include "cuda_common.cuh"

namespace {
__global__ void dropout_k(float *out, const float *in, size_t n, float p, float scale, uint64_t key) {
    GRID_STRIDE(i, n) out[i] = eff_uniform_at(key, i) < p ? 0.0f : in[i] * scale;
}
__global__ void copy_k(float *out, const float *in, size_t n) { GRID_STRIDE(i, n) out[i] = in[i]; }
} // namespace

extern "C" void dropout_forward_cuda(EffCuda *cu, float *out, const float *in, size_t n, float p, uint64_t key) {
    if (p <= 0.0f) {
        if (out != in) copy_k<<<eff_blocks(n), EFF_THREADS, 0, cu->stream>>>(out, in, n);
    } else {
        dropout_k<<<eff_blocks(n), EFF_THREADS, 0, cu->stream>>>(out, in, n, p, 1.0f / (1.0f - p), key);
    }
    CUDA_LAUNCHED("dropout");
}
