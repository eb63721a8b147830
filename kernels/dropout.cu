/* dropout.cu: inverted dropout and stochastic depth with the counter-based
 * masks of src/rng.h -- the CUDA twin of src/ops/dropout.c; masks are
 * bit-identical to the CPU's (stochastic depth: compiled, not yet run on a GPU).
 * Backward is the same call (same mask, same scale). The mask key is
 * eff_drop_key(step_key, layer); while a step is captured into a CUDA graph
 * the step key is read from device memory (cu->step_dev), so each replay
 * draws that step's masks. */
#include "act.cuh"
#include "index_math.cuh" /* eff_grid_y */

namespace {
template <typename T>
__global__ void dropout_k(T *out, const T *in, size_t n, float p, float scale, uint64_t step_key,
                          const uint64_t *step_key_dev, uint64_t layer) {
    const uint64_t key = eff_drop_key(step_key_dev ? *step_key_dev : step_key, layer);
    GRID_STRIDE(i, n) out[i] = eff_uniform_at(key, i) < p ? eff_st<T>(0.0f) : eff_st<T>(eff_ld(in[i]) * scale);
}
template <typename T> __global__ void copy_k(T *out, const T *in, size_t n) { GRID_STRIDE(i, n) out[i] = in[i]; }
/* Stochastic depth: images on grid.y (looped beyond its limit), one draw per
 * image, its per elements grid-strided on x; no division per element. */
template <typename T>
__global__ void stochastic_depth_k(T *out, const T *in, int N, size_t per, float p, float scale, uint64_t step_key,
                                   const uint64_t *step_key_dev, uint64_t layer) {
    const uint64_t key = eff_sd_key(step_key_dev ? *step_key_dev : step_key, layer);
    for (int n = blockIdx.y; n < N; n += gridDim.y) {
        const float s = eff_uniform_at(key, (uint64_t)n) < p ? 0.0f : scale;
        const size_t e0 = (size_t)n * per;
        GRID_STRIDE(i, per) out[e0 + i] = eff_st<T>(eff_ld(in[e0 + i]) * s);
    }
}
} // namespace

/* p = 0: the identity (a copy unless the op runs in place). */
static void copy_unless_in_place(EffCuda *cu, void *out, const void *in, size_t n) {
    if (out != in)
        EFF_ACT_DISPATCH(cu->precision, T,
                         copy_k<T><<<eff_blocks(n), EFF_THREADS, 0, cu->stream>>>((T *)out, (const T *)in, n));
}

extern "C" void dropout_forward_cuda(EffCuda *cu, void *out, const void *in, size_t n, float p, uint64_t step_key,
                                     uint64_t layer) {
    const uint64_t *key_dev = cu->capturing ? cu->step_dev + EFF_STEP_DROP_KEY : NULL;
    if (p <= 0.0f) {
        copy_unless_in_place(cu, out, in, n);
    } else {
        EFF_ACT_DISPATCH(cu->precision, T,
                         dropout_k<T><<<eff_blocks(n), EFF_THREADS, 0, cu->stream>>>(
                             (T *)out, (const T *)in, n, p, 1.0f / (1.0f - p), step_key, key_dev, layer));
    }
    CUDA_LAUNCHED("dropout");
}

extern "C" void stochastic_depth_forward_cuda(EffCuda *cu, void *out, const void *in, int N, size_t per, float p,
                                              uint64_t step_key, uint64_t layer) {
    const uint64_t *key_dev = cu->capturing ? cu->step_dev + EFF_STEP_DROP_KEY : NULL;
    const size_t n = (size_t)N * per;
    if (p <= 0.0f) {
        copy_unless_in_place(cu, out, in, n);
    } else {
        EFF_ACT_DISPATCH(cu->precision, T,
                         stochastic_depth_k<T><<<eff_grid3(cu, "stochastic_depth", eff_blocks(per), eff_grid_y(N), 1,
                                                           EFF_THREADS), EFF_THREADS, 0, cu->stream>>>(
                             (T *)out, (const T *)in, N, per, p, 1.0f / (1.0f - p), step_key, key_dev, layer));
    }
    CUDA_LAUNCHED("stochastic_depth");
}
