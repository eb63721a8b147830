/* elementwise.cu: the residual add y += x on activations -- the CUDA twin of
 * src/ops/elementwise.c (swish is fused into BN: batchnorm.cu) -- and x *= a
 * on fp32 gradients (unscaling fp16 gradients). 32-bit grid-stride loops over
 * 16-byte vectors (8 bf16/fp16, 4 fp32) when the pointers are aligned, the
 * n % V elements left one by one; pieces of at most 2^31-1 vectors
 * (ew_launch.cuh). The thread functions are EFF_HD: *_inplace_emulate
 * (kernel_emu.h) run them on the CPU. */
#include "act.cuh"
#include "ew_launch.cuh"
#include "kernel_emu.h"

namespace {
/* Vectors tid, tid + step, ... below n. */
template <int V, typename T> EFF_HD inline void add_thread(T *y, const T *x, uint32_t n, uint32_t tid, uint32_t step) {
    for (uint32_t i = tid; i < n; i += step) {
        float a[V], b[V];
        EffVec<V, T>::load(a, y + (size_t)i * V);
        EffVec<V, T>::load(b, x + (size_t)i * V);
        EFF_UNROLL
        for (int v = 0; v < V; v++) a[v] = a[v] + b[v];
        EffVec<V, T>::store(y + (size_t)i * V, a);
    }
}
template <int V> EFF_HD inline void scale_thread(float *x, uint32_t n, float alpha, uint32_t tid, uint32_t step) {
    for (uint32_t i = tid; i < n; i += step) {
        float a[V];
        EffVec<V, float>::load(a, x + (size_t)i * V);
        EFF_UNROLL
        for (int v = 0; v < V; v++) a[v] *= alpha;
        EffVec<V, float>::store(x + (size_t)i * V, a);
    }
}
template <int V, typename T> __global__ void add_k(T *y, const T *x, uint32_t n) {
    add_thread<V, T>(y, x, n, EFF_TID, gridDim.x * EFF_BLOCK);
}
template <int V> __global__ void scale_k(float *x, uint32_t n, float alpha) {
    scale_thread<V>(x, n, alpha, EFF_TID, gridDim.x * EFF_BLOCK);
}

/* run(blocks, vectors, first element, EffInt<V>) over [0, n). */
template <typename T, typename F> int flat(size_t n, int aligned, uint32_t limit, F run) {
    const int V = aligned ? EffVecW<T>::value : 1;
    eff_with_vec<T>(V, [&](auto vw) { eff_flat_launch<decltype(vw)::value>(n, run, limit); });
    return V;
}
} // namespace

template <typename T> static void add_t(EffCuda *cu, T *y, const T *x, size_t n) {
    flat<T>(n, eff_aligned16(y) && eff_aligned16(x), EFF_INDEX_MAX,
            [&](uint32_t blocks, uint32_t m, size_t e0, auto v) {
                add_k<decltype(v)::value, T><<<eff_grid1(cu, "add_k", blocks, EFF_BLOCK), EFF_BLOCK, 0, cu->stream>>>(
                    y + e0, x + e0, m);
                CUDA_LAUNCHED("add_inplace");
            });
}

extern "C" void add_inplace_cuda(EffCuda *cu, void *y, const void *x, size_t n) {
    EFF_ACT_DISPATCH(cu->precision, T, add_t<T>(cu, (T *)y, (const T *)x, n));
}

extern "C" void scale_inplace_cuda(EffCuda *cu, float *x, size_t n, float alpha) {
    flat<float>(n, eff_aligned16(x), EFF_INDEX_MAX, [&](uint32_t blocks, uint32_t m, size_t e0, auto v) {
        scale_k<decltype(v)::value><<<eff_grid1(cu, "scale_k", blocks, EFF_BLOCK), EFF_BLOCK, 0, cu->stream>>>(
            x + e0, m, alpha);
        CUDA_LAUNCHED("scale_inplace");
    });
}

/* ---- host emulation (kernel_emu.h) ---- */

template <typename T> static int add_emu(int scalar, unsigned limit, T *y, const T *x, size_t n) {
    return flat<T>(n, !scalar && eff_aligned16(y) && eff_aligned16(x), limit ? limit : EFF_INDEX_MAX,
                   [&](uint32_t blocks, uint32_t m, size_t e0, auto v) {
                       eff_emulate_grid(blocks, [&](uint32_t t) {
                           add_thread<decltype(v)::value, T>(y + e0, x + e0, m, t, blocks * EFF_BLOCK);
                       });
                   });
}

extern "C" int add_inplace_emulate(int prec, int scalar, unsigned limit, void *y, const void *x, size_t n) {
    int V = 0;
    EFF_ACT_DISPATCH(prec, T, V = add_emu<T>(scalar, limit, (T *)y, (const T *)x, n));
    return V;
}

extern "C" int scale_inplace_emulate(int scalar, unsigned limit, float *x, size_t n, float alpha) {
    return flat<float>(n, !scalar && eff_aligned16(x), limit ? limit : EFF_INDEX_MAX,
                       [&](uint32_t blocks, uint32_t m, size_t e0, auto v) {
                           eff_emulate_grid(blocks, [&](uint32_t t) {
                               scale_thread<decltype(v)::value>(x + e0, m, alpha, t, blocks * EFF_BLOCK);
                           });
                       });
}
