/* se.cu: squeeze-and-excitation -- the CUDA twin of src/ops/se.c. Pooling
 * and the gate gradient use the deterministic reduction of reduce.cuh; the
 * two small FCs are cuBLAS GEMMs; the channel scale is one fused pass.
 * in/out/dout/din are activations (act type T); pooled, hidden and the gate
 * are small fp32 per-image vectors, so the FCs are fp32 GEMMs.
 * The channel passes put images on grid.y and walk each image's [HW][C] in
 * vectors of V channels with 32-bit indices and the channel carried, not
 * divided (ew_index.cuh); 16-byte accesses where C and the pointers allow.
 * Their thread functions are EFF_HD: se_*_emulate (kernel_emu.h) run them
 * on the CPU. */
#include "act.cuh"
#include "ew_launch.cuh"
#include "kernel_emu.h"
#include "reduce.cuh"

namespace {
__global__ void relu_inplace(float *x, size_t n) {
    GRID_STRIDE(i, n) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
__global__ void sigmoid_inplace(float *x, size_t n) {
    GRID_STRIDE(i, n) x[i] = eff_sigmoid_d(x[i]);
}
/* out[n][p][c] = in[n][p][c] * gate[n][c] for images n0, n0 + nstep, ...;
 * wk walks one image (HW C / V vectors). */
template <int V, typename T>
EFF_HD inline void se_scale_thread(T *out, const T *in, const float *gate, EffWalk wk, int N, int C, int n0, int nstep,
                                   uint32_t tid) {
    for (int n = n0; n < N; n += nstep) {
        const size_t e0 = (size_t)n * wk.total * V;
        const float *g = gate + (size_t)n * C;
        uint32_t i, cg; /* vector i of image n, channel group cg */
        for (eff_walk_first(&wk, tid, &i, &cg); i < wk.total; eff_walk_next(&wk, &i, &cg)) {
            float x[V];
            EffVec<V, T>::load(x, in + e0 + (size_t)i * V);
            EFF_UNROLL
            for (int v = 0; v < V; v++) x[v] = x[v] * g[(int)cg * V + v];
            EffVec<V, T>::store(out + e0 + (size_t)i * V, x);
        }
    }
}
template <int V, typename T>
__global__ void se_scale(T *out, const T *in, const float *gate, EffWalk wk, int N, int C) {
    se_scale_thread<V, T>(out, in, gate, wk, N, C, blockIdx.y, gridDim.y, EFF_TID);
}
template <typename T> struct DGateF {
    const T *dout, *in;
    int HW, C;
    __device__ void operator()(int n, long p, int c, double &q0, double &) const {
        const size_t i = ((size_t)n * HW + p) * C + c;
        q0 += (double)(eff_ld(dout[i]) * eff_ld(in[i]));
    }
};
/* grid (ceil(C / EFF_BLOCK), images): one thread per (n, c) */
__global__ void dgate_finalize(float *dgate, const double *partial, int chunks, const float *gate, int N, int C) {
    const int c = (int)EFF_TID;
    if (c >= C) return;
    for (int n = blockIdx.y; n < N; n += gridDim.y) {
        const size_t i = (size_t)n * C + c;
        const float s = gate[i];
        dgate[i] = (float)eff_chunk_sum(partial, n, chunks, 0, C, c) * (s * (1.0f - s));
    }
}
__global__ void relu_mask(float *dh, const float *hidden, size_t n) {
    GRID_STRIDE(i, n) if (hidden[i] <= 0.0f) dh[i] = 0.0f;
}
/* din = dout * gate + dpooled / HW (din may alias dout: elementwise) */
template <int V, typename T>
EFF_HD inline void se_back_apply_thread(T *din, const T *dout, const float *gate, const float *dpooled, EffWalk wk,
                                        int N, int C, float inv, int n0, int nstep, uint32_t tid) {
    for (int n = n0; n < N; n += nstep) {
        const size_t e0 = (size_t)n * wk.total * V;
        const float *g = gate + (size_t)n * C, *dp = dpooled + (size_t)n * C;
        uint32_t i, cg;
        for (eff_walk_first(&wk, tid, &i, &cg); i < wk.total; eff_walk_next(&wk, &i, &cg)) {
            float d[V];
            EffVec<V, T>::load(d, dout + e0 + (size_t)i * V);
            EFF_UNROLL
            for (int v = 0; v < V; v++) {
                const int c = (int)cg * V + v;
                d[v] = d[v] * g[c] + dp[c] * inv;
            }
            EffVec<V, T>::store(din + e0 + (size_t)i * V, d);
        }
    }
}
template <int V, typename T>
__global__ void se_back_apply(T *din, const T *dout, const float *gate, const float *dpooled, EffWalk wk, int N,
                              int C, float inv) {
    se_back_apply_thread<V, T>(din, dout, gate, dpooled, wk, N, C, inv, blockIdx.y, gridDim.y, EFF_TID);
}

/* launch(grid, walk, EffInt<V>) over each image's [HW][C], images on grid.y;
 * 0 (nothing launched) when an image exceeds 32-bit indexing. */
template <typename T, typename F> int se_images(int N, int HW, int C, int aligned, F launch) {
    const int V = eff_vec_width(C, sizeof(T), aligned);
    if ((uint64_t)HW * C > EFF_INDEX_MAX) return 0;
    eff_with_vec<T>(V, [&](auto v) {
        constexpr int Vc = decltype(v)::value;
        uint32_t blocks;
        const EffWalk wk = eff_walk_for((uint32_t)HW * (uint32_t)(C / Vc), C / Vc, &blocks);
        launch(dim3(blocks, eff_grid_y(N)), wk, v);
    });
    return 1;
}

void se_too_big() { eff_cuda_fail("se (CUDA)", "one image exceeds 2^31-1 elements", __FILE__, __LINE__); }

} // namespace

template <typename T>
static void se_scale_t(EffCuda *cu, T *out, const T *in, const float *gate, int N, int HW, int C) {
    const int ok = se_images<T>(N, HW, C, eff_aligned16(out) && eff_aligned16(in), [&](dim3 grid, EffWalk wk, auto v) {
        se_scale<decltype(v)::value, T><<<eff_grid3(cu, "se_scale", grid.x, grid.y, 1, EFF_BLOCK), EFF_BLOCK, 0,
                                          cu->stream>>>(out, in, gate, wk, N, C);
        CUDA_LAUNCHED("se_scale");
    });
    if (!ok) se_too_big();
}

template <typename T>
static void se_back_apply_t(EffCuda *cu, T *din, const T *dout, const float *gate, const float *dpooled, int N,
                            int HW, int C) {
    const int aligned = eff_aligned16(din) && eff_aligned16(dout);
    const int ok = se_images<T>(N, HW, C, aligned, [&](dim3 grid, EffWalk wk, auto v) {
        se_back_apply<decltype(v)::value, T>
            <<<eff_grid3(cu, "se_back_apply", grid.x, grid.y, 1, EFF_BLOCK), EFF_BLOCK, 0, cu->stream>>>(
                din, dout, gate, dpooled, wk, N, C, 1.0f / (float)HW);
        CUDA_LAUNCHED("se_back_apply");
    });
    if (!ok) se_too_big();
}

extern "C" void se_forward_cuda(EffCuda *cu, void *out, float *pooled, float *hidden, float *gate, const void *in,
                                const float *w1, const float *w2, int N, int HW, int C, int Cse) {
    gap_forward_f32out_cuda(cu, pooled, in, N, HW, C);
    eff_cuda_gemm_rm(cu, 0, 1, N, Cse, C, 1.0f, pooled, C, w1, C, 0.0f, hidden, Cse);
    relu_inplace<<<eff_blocks((size_t)N * Cse), EFF_THREADS, 0, cu->stream>>>(hidden, (size_t)N * Cse);
    CUDA_LAUNCHED("relu_inplace");
    eff_cuda_gemm_rm(cu, 0, 1, N, C, Cse, 1.0f, hidden, Cse, w2, Cse, 0.0f, gate, C);
    sigmoid_inplace<<<eff_blocks((size_t)N * C), EFF_THREADS, 0, cu->stream>>>(gate, (size_t)N * C);
    CUDA_LAUNCHED("sigmoid_inplace");
    EFF_ACT_DISPATCH(cu->precision, T, se_scale_t<T>(cu, (T *)out, (const T *)in, gate, N, HW, C));
}

extern "C" void se_backward_cuda(EffCuda *cu, void *din, float *dw1, float *dw2, float *work, const void *dout,
                                 const void *in, const float *pooled, const float *hidden, const float *gate,
                                 const float *w1, const float *w2, int N, int HW, int C, int Cse) {
    float *dgate = work, *dpooled = work + (size_t)N * C, *dhid = work + (size_t)2 * N * C;
    double *partial;
    int chunks = 0;
    EFF_ACT_DISPATCH(cu->precision, T,
                     chunks = eff_colreduce(cu, DGateF<T>{(const T *)dout, (const T *)in, HW, C}, N, HW, C, 0,
                                            &partial, NULL));
    /* channels on x, images on y (looped beyond 65535) */
    dgate_finalize<<<eff_grid3(cu, "dgate_finalize", ((long long)C + EFF_BLOCK - 1) / EFF_BLOCK, eff_grid_y(N), 1,
                               EFF_BLOCK), EFF_BLOCK, 0, cu->stream>>>(dgate, partial, chunks, gate, N, C);
    CUDA_LAUNCHED("dgate_finalize");
    eff_cuda_gemm_rm(cu, 1, 0, C, Cse, N, 1.0f, dgate, C, hidden, Cse, 1.0f, dw2, Cse);
    eff_cuda_gemm_rm(cu, 0, 0, N, Cse, C, 1.0f, dgate, C, w2, Cse, 0.0f, dhid, Cse);
    relu_mask<<<eff_blocks((size_t)N * Cse), EFF_THREADS, 0, cu->stream>>>(dhid, hidden, (size_t)N * Cse);
    CUDA_LAUNCHED("relu_mask");
    eff_cuda_gemm_rm(cu, 1, 0, Cse, C, N, 1.0f, dhid, Cse, pooled, C, 1.0f, dw1, C);
    eff_cuda_gemm_rm(cu, 0, 0, N, C, Cse, 1.0f, dhid, Cse, w1, C, 0.0f, dpooled, C);
    EFF_ACT_DISPATCH(cu->precision, T, se_back_apply_t<T>(cu, (T *)din, (const T *)dout, gate, dpooled, N, HW, C));
}

/* ---- host emulation (kernel_emu.h): the thread functions above for every
 * thread of the launchers' grids ------------------------------------------- */

template <typename T, typename F> static int se_emu(int N, int HW, int C, int aligned, F thread) {
    int V = 0;
    se_images<T>(N, HW, C, aligned, [&](dim3 grid, EffWalk wk, auto v) {
        V = decltype(v)::value;
        for (uint32_t by = 0; by < grid.y; by++)
            eff_emulate_grid(grid.x, [&](uint32_t t) { thread(wk, v, (int)by, (int)grid.y, t); });
    });
    return V;
}

extern "C" int se_scale_emulate(int prec, int scalar, void *out, const void *in, const float *gate, int N, int HW,
                                int C) {
    int V = 0;
    EFF_ACT_DISPATCH(prec, T,
                     V = se_emu<T>(N, HW, C, !scalar && eff_aligned16(out) && eff_aligned16(in),
                                   [&](EffWalk wk, auto v, int n0, int nstep, uint32_t t) {
                                       se_scale_thread<decltype(v)::value, T>((T *)out, (const T *)in, gate, wk, N, C,
                                                                              n0, nstep, t);
                                   }));
    return V;
}

extern "C" int se_back_apply_emulate(int prec, int scalar, void *din, const void *dout, const float *gate,
                                     const float *dpooled, int N, int HW, int C) {
    int V = 0;
    EFF_ACT_DISPATCH(prec, T,
                     V = se_emu<T>(N, HW, C, !scalar && eff_aligned16(din) && eff_aligned16(dout),
                                   [&](EffWalk wk, auto v, int n0, int nstep, uint32_t t) {
                                       se_back_apply_thread<decltype(v)::value, T>(
                                           (T *)din, (const T *)dout, gate, dpooled, wk, N, C, 1.0f / (float)HW, n0,
                                           nstep, t);
                                   }));
    return V;
}
