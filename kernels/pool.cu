/* pool.cu: global average pooling over the positions of NHWC -- the CUDA twin
 * of src/ops/pool.c. Sums use the deterministic reduction of reduce.cuh.
 * The head pools activations into activations; SE pools into fp32. */
#include "act.cuh"
#include "kernel_emu.h"
#include "reduce.cuh"
#include "vec.cuh"

#include <stdlib.h>

namespace {
template <typename T> struct PoolF {
    const T *in;
    int HW, C;
    int al; /* 16-byte loads */
    template <int V> EFF_HD void vec(int n, long p, int c0, double *q0, double *) const {
        float x[V];
        eff_load_v<V, T>(x, in + ((size_t)n * HW + p) * C + c0, al);
        for (int v = 0; v < V; v++) q0[v] += x[v];
    }
};

/* The mean of column c of image n from the partials. */
EFF_HD inline float pool_mean(const double *partial, int chunks, int C, float inv, int n, int c) {
    return (float)eff_chunk_sum(partial, n, chunks, 0, C, c) * inv;
}

template <typename O>
__global__ void pool_finalize(O *out, const double *partial, int chunks, int N, int C, float inv) {
    GRID_STRIDE(i, (size_t)N * C) {
        const int n = (int)(i / C), c = (int)(i % C);
        out[i] = eff_st<O>(pool_mean(partial, chunks, C, inv, n, c));
    }
}

template <typename T>
__global__ void gap_back(T *din, const T *dout, size_t total, int HW, int C, float inv) {
    GRID_STRIDE(i, total) {
        const size_t n = i / ((size_t)HW * C);
        din[i] = eff_st<T>(eff_ld(dout[n * C + i % C]) * inv);
    }
}

template <typename T, typename O> void gap_t(EffCuda *cu, O *out, const T *in, int N, int HW, int C) {
    double *partial;
    int chunks = 0;
    eff_with_vec<T>(eff_red_width<T>(C), [&](auto v) {
        chunks = eff_colreduce_v<decltype(v)::value>(cu, PoolF<T>{in, HW, C, eff_aligned16(in)}, N, HW, C, 0, &partial,
                                                     NULL);
    });
    pool_finalize<O><<<eff_blocks((size_t)N * C), EFF_THREADS, 0, cu->stream>>>(out, partial, chunks, N, C,
                                                                                1.0f / (float)HW);
    CUDA_LAUNCHED("pool_finalize");
}
} // namespace

extern "C" void gap_forward_cuda(EffCuda *cu, void *out, const void *in, int N, int HW, int C) {
    EFF_ACT_DISPATCH(cu->precision, T, gap_t<T, T>(cu, (T *)out, (const T *)in, N, HW, C));
}

extern "C" void gap_forward_f32out_cuda(EffCuda *cu, float *out, const void *in, int N, int HW, int C) {
    EFF_ACT_DISPATCH(cu->precision, T, gap_t<T, float>(cu, out, (const T *)in, N, HW, C));
}

extern "C" void gap_backward_cuda(EffCuda *cu, void *din, const void *dout, int N, int HW, int C) {
    const size_t total = (size_t)N * HW * C;
    EFF_ACT_DISPATCH(cu->precision, T,
                     gap_back<T><<<eff_blocks(total), EFF_THREADS, 0, cu->stream>>>(
                         (T *)din, (const T *)dout, total, HW, C, 1.0f / (float)HW));
    CUDA_LAUNCHED("gap_back");
}

/* gap_forward_f32out_cuda on the host (kernel_emu.h): PoolF over the launch
 * grid, then pool_finalize's expression. */
template <typename T> static int gap_f32_emu(float *out, const T *in, int N, int HW, int C) {
    EffRedGeom g;
    char why[256];
    const int V = eff_red_width<T>(C);
    if (eff_red_geom(&g, N, HW, C, V, why, sizeof why)) return 0;
    double *partial = (double *)malloc((size_t)N * g.chunks * 2 * C * sizeof(double));
    eff_with_vec<T>(V, [&](auto v) {
        constexpr int Vc = decltype(v)::value;
        const PoolF<T> f = {in, HW, C, eff_aligned16(in)};
        eff_colreduce_emulate<Vc>(EffRows<Vc, PoolF<T>>{f}, N, HW, C, g, 65535, partial);
    });
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) out[(size_t)n * C + c] = pool_mean(partial, g.chunks, C, 1.0f / (float)HW, n, c);
    free(partial);
    return 1;
}

extern "C" int gap_f32_emulate(int prec, float *out, const void *in, int N, int HW, int C) {
    int ok = 0;
    EFF_ACT_DISPATCH(prec, T, ok = gap_f32_emu<T>(out, (const T *)in, N, HW, C));
    return ok;
}
