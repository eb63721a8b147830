/* se.cu: squeeze-and-excitation -- the CUDA twin of src/ops/se.c (the
 * torchvision variant's biases and SiLU are compiled but have not yet run on
 * a GPU; tests/gpu/test_cuda_ops.c compares them with the CPU). Pooling
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
/* torchvision variant (compiled, not yet run on a GPU). Grid (ceil(Cse /
 * EFF_BLOCK), images), as dgate_finalize: one thread per (n, j), no division.
 * hidden [N][Cse] += b1 (NULL: none), then ReLU, or SiLU with its input kept
 * at hidden + N * Cse. */
__global__ void se_hidden_act(float *hidden, const float *b1, int N, int Cse, int act) {
    const int j = (int)EFF_TID;
    if (j >= Cse) return;
    const size_t nh = (size_t)N * Cse;
    for (int n = blockIdx.y; n < N; n += gridDim.y) {
        const size_t i = (size_t)n * Cse + j;
        float h = hidden[i] + (b1 ? b1[j] : 0.0f);
        if (act == EFF_SE_SILU) {
            hidden[nh + i] = h;
            h = h * eff_sigmoid_d(h);
        } else {
            h = h > 0.0f ? h : 0.0f;
        }
        hidden[i] = h;
    }
}
/* gate [N][C] = sigmoid(gate + b2); grid (ceil(C / EFF_BLOCK), images) */
__global__ void se_gate_bias(float *gate, const float *b2, int N, int C) {
    const int c = (int)EFF_TID;
    if (c >= C) return;
    for (int n = blockIdx.y; n < N; n += gridDim.y) gate[(size_t)n * C + c] = eff_sigmoid_d(gate[(size_t)n * C + c] + b2[c]);
}
/* db[j] += sum over the N images of d[n][j], images in order (deterministic) */
__global__ void se_bias_grad(float *db, const float *d, int N, int K) {
    GRID_STRIDE(j, (size_t)K) {
        float s = 0.0f;
        for (int n = 0; n < N; n++) s += d[(size_t)n * K + j];
        db[j] += s;
    }
}
/* d(hidden) through SiLU from its input z: s (1 + z (1 - s)), s = sigmoid(z) */
__global__ void silu_mask(float *dh, const float *z, size_t n) {
    GRID_STRIDE(i, n) {
        const float s = eff_sigmoid_d(z[i]);
        dh[i] *= s * (1.0f + z[i] * (1.0f - s));
    }
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
                                const float *w1, const float *b1, const float *w2, const float *b2, int N, int HW,
                                int C, int Cse, int act) {
    gap_forward_f32out_cuda(cu, pooled, in, N, HW, C);
    se_forward_pooled_cuda(cu, out, pooled, hidden, gate, in, w1, b1, w2, b2, N, HW, C, Cse, act);
}

extern "C" void se_forward_pooled_cuda(EffCuda *cu, void *out, const float *pooled, float *hidden, float *gate,
                                       const void *in, const float *w1, const float *b1, const float *w2,
                                       const float *b2, int N, int HW, int C, int Cse, int act) {
    const size_t nh = (size_t)N * Cse, ng = (size_t)N * C;
    eff_cuda_gemm_rm(cu, 0, 1, N, Cse, C, 1.0f, pooled, C, w1, C, 0.0f, hidden, Cse);
    if (!b1 && act == EFF_SE_RELU) { /* the seed */
        relu_inplace<<<eff_blocks(nh), EFF_THREADS, 0, cu->stream>>>(hidden, nh);
        CUDA_LAUNCHED("relu_inplace");
    } else {
        se_hidden_act<<<eff_grid3(cu, "se_hidden_act", ((long long)Cse + EFF_BLOCK - 1) / EFF_BLOCK, eff_grid_y(N), 1,
                                  EFF_BLOCK), EFF_BLOCK, 0, cu->stream>>>(hidden, b1, N, Cse, act);
        CUDA_LAUNCHED("se_hidden_act");
    }
    eff_cuda_gemm_rm(cu, 0, 1, N, C, Cse, 1.0f, hidden, Cse, w2, Cse, 0.0f, gate, C);
    if (!b2) {
        sigmoid_inplace<<<eff_blocks(ng), EFF_THREADS, 0, cu->stream>>>(gate, ng);
        CUDA_LAUNCHED("sigmoid_inplace");
    } else {
        se_gate_bias<<<eff_grid3(cu, "se_gate_bias", ((long long)C + EFF_BLOCK - 1) / EFF_BLOCK, eff_grid_y(N), 1,
                                 EFF_BLOCK), EFF_BLOCK, 0, cu->stream>>>(gate, b2, N, C);
        CUDA_LAUNCHED("se_gate_bias");
    }
    EFF_ACT_DISPATCH(cu->precision, T, se_scale_t<T>(cu, (T *)out, (const T *)in, gate, N, HW, C));
}

extern "C" void se_backward_cuda(EffCuda *cu, void *din, float *dw1, float *db1, float *dw2, float *db2, float *work,
                                 const void *dout, const void *in, const float *pooled, const float *hidden,
                                 const float *gate, const float *w1, const float *w2, int N, int HW, int C, int Cse,
                                 int act) {
    float *dgate = work, *dpooled = work + (size_t)N * C, *dhid = work + (size_t)2 * N * C;
    const size_t nh = (size_t)N * Cse;
    double *partial;
    int chunks = 0;
    EFF_ACT_DISPATCH(cu->precision, T,
                     chunks = eff_colreduce(cu, DGateF<T>{(const T *)dout, (const T *)in, HW, C}, N, HW, C, 0,
                                            &partial, NULL));
    /* channels on x, images on y (looped beyond 65535) */
    dgate_finalize<<<eff_grid3(cu, "dgate_finalize", ((long long)C + EFF_BLOCK - 1) / EFF_BLOCK, eff_grid_y(N), 1,
                               EFF_BLOCK), EFF_BLOCK, 0, cu->stream>>>(dgate, partial, chunks, gate, N, C);
    CUDA_LAUNCHED("dgate_finalize");
    if (db2) {
        se_bias_grad<<<eff_blocks((size_t)C), EFF_THREADS, 0, cu->stream>>>(db2, dgate, N, C);
        CUDA_LAUNCHED("se_bias_grad");
    }
    eff_cuda_gemm_rm(cu, 1, 0, C, Cse, N, 1.0f, dgate, C, hidden, Cse, 1.0f, dw2, Cse);
    eff_cuda_gemm_rm(cu, 0, 0, N, Cse, C, 1.0f, dgate, C, w2, Cse, 0.0f, dhid, Cse);
    if (act == EFF_SE_SILU) {
        silu_mask<<<eff_blocks(nh), EFF_THREADS, 0, cu->stream>>>(dhid, hidden + nh, nh);
        CUDA_LAUNCHED("silu_mask");
    } else {
        relu_mask<<<eff_blocks(nh), EFF_THREADS, 0, cu->stream>>>(dhid, hidden, nh);
        CUDA_LAUNCHED("relu_mask");
    }
    if (db1) {
        se_bias_grad<<<eff_blocks((size_t)Cse), EFF_THREADS, 0, cu->stream>>>(db1, dhid, N, Cse);
        CUDA_LAUNCHED("se_bias_grad");
    }
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
