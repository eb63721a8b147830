/* ew_launch.cuh: launch loops of the elementwise kernels (batchnorm.cu,
 * se.cu, elementwise.cu) over the 32-bit walks of ew_index.cuh. CUDA C++. */
#ifndef EFFNET_EW_LAUNCH_CUH
#define EFFNET_EW_LAUNCH_CUH

#include "ew_index.cuh"
#include "vec.cuh"

/* launch(blocks, walk, first element) for [M][C] in vectors of V channels,
 * in row pieces of at most `limit` vectors (EFF_INDEX_MAX: one piece unless
 * M C / V >= 2^31; the host emulations test smaller limits). */
template <typename F> inline void eff_rows_launch(long M, int C, int V, F launch, uint32_t limit = EFF_INDEX_MAX) {
    const int cv = C / V;
    const long per = eff_rows_per_piece(cv, limit);
    for (long r0 = 0; r0 < M; r0 += per) {
        const long rows = M - r0 < per ? M - r0 : per;
        uint32_t blocks;
        const EffWalk wk = eff_walk_for((uint32_t)(rows * cv), cv, &blocks);
        launch(blocks, wk, (size_t)r0 * C);
    }
}

/* launch(blocks, n vectors, first element, EffInt<V>) for the flat range
 * [0, n): V-vectors in pieces of at most `limit`, then the n % V elements
 * left one by one. */
template <int V, typename F> inline void eff_flat_launch(size_t n, F launch, uint32_t limit = EFF_INDEX_MAX) {
    const size_t nv = n / V;
    for (size_t v0 = 0; v0 < nv; v0 += limit) {
        const uint32_t m = (uint32_t)(nv - v0 < limit ? nv - v0 : limit);
        launch(eff_grid_x(m, EFF_GRID_X_CAP), m, v0 * V, EffInt<V>());
    }
    if (V > 1 && n > nv * V) {
        const uint32_t m = (uint32_t)(n - nv * V);
        launch(eff_grid_x(m, EFF_GRID_X_CAP), m, nv * V, EffInt<1>());
    }
}

/* Every thread of a 1D grid, run on the host: thread(tid). */
template <typename F> inline void eff_emulate_grid(uint32_t blocks, F thread) {
    for (uint32_t t = 0; t < blocks * EFF_BLOCK; t++) thread(t);
}

/* The device's sigmoid and swish derivative (cuda_common.cuh), on both sides. */
EFF_HD inline float eff_sigmoid_hd(float x) { return 1.0f / (1.0f + expf(-x)); }
EFF_HD inline float eff_swish_grad_hd(float z) {
    const float s = eff_sigmoid_hd(z);
    return s * (1.0f + z * (1.0f - s));
}

/* The thread's index in a 1D grid of EFF_BLOCK-thread blocks (< 2^27). */
#define EFF_TID (blockIdx.x * EFF_BLOCK + threadIdx.x)

#endif
