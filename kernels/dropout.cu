/* dropout.cu: inverted dropout with the counter-based mask of src/rng.h --
 * the CUDA twin of src/ops/dropout.c; masks are bit-identical to the CPU's.
 * Backward is the same call (same mask, same scale). The mask key is
 * eff_drop_key(step_key, layer); while a step is captured into a CUDA graph
 * the step key is read from device memory (cu->step_dev), so each replay
 * draws that step's masks. */
#include "act.cuh"

namespace {
template <typename T>
__global__ void dropout_k(T *out, const T *in, size_t n, float p, float scale, uint64_t step_key,
                          const uint64_t *step_key_dev, uint64_t layer) {
    const uint64_t key = eff_drop_key(step_key_dev ? *step_key_dev : step_key, layer);
    GRID_STRIDE(i, n) out[i] = eff_uniform_at(key, i) < p ? eff_st<T>(0.0f) : eff_st<T>(eff_ld(in[i]) * scale);
}
template <typename T> __global__ void copy_k(T *out, const T *in, size_t n) { GRID_STRIDE(i, n) out[i] = in[i]; }
} // namespace

extern "C" void dropout_forward_cuda(EffCuda *cu, void *out, const void *in, size_t n, float p, uint64_t step_key,
                                     uint64_t layer) {
    const uint64_t *key_dev = cu->capturing ? cu->step_dev + EFF_STEP_DROP_KEY : NULL;
    if (p <= 0.0f) {
        if (out != in)
            EFF_ACT_DISPATCH(cu->precision, T,
                             copy_k<T><<<eff_blocks(n), EFF_THREADS, 0, cu->stream>>>((T *)out, (const T *)in, n));
    } else {
        EFF_ACT_DISPATCH(cu->precision, T,
                         dropout_k<T><<<eff_blocks(n), EFF_THREADS, 0, cu->stream>>>(
                             (T *)out, (const T *)in, n, p, 1.0f / (1.0f - p), step_key, key_dev, layer));
    }
    CUDA_LAUNCHED("dropout");
}
