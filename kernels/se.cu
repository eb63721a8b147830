/* se.cu: squeeze-and-excitation -- the CUDA twin of src/ops/se.c (the
 * torchvision variant's biases and SiLU are compiled but have not yet run on
 * a GPU; tests/gpu/test_cuda_ops.c compares them with the CPU). Pooling
 * and the gate gradient use the deterministic reduction of reduce.cuh; the
 * two small FCs, their biases and activations are one kernel forward and
 * two backward (below); the channel scale is one fused pass.
 * in/out/dout/din are activations (act type T); pooled, hidden and the gate
 * are small fp32 per-image vectors, so the FCs run in fp32.
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
/* ---- the excitation, fused (issue 24, section 4): one launch for the two
 * FCs, their biases and activations forward, one for the gate's sigmoid, the
 * two FCs' input gradients and the activation's mask backward, and one for
 * the four parameter gradients; the cuBLAS GEMMs and elementwise kernels
 * they replace were 5 launches per SE forward and 8-10 backward. A block
 * takes SE_IMGS images, so each weight row is read once per SE_IMGS images.
 * Every dot product is one thread's serial float sum in index order (no
 * atomics, no shuffles): deterministic, and the thread functions are EFF_HD,
 * so se_excite*_emulate run them on the CPU. Between the phases of a block
 * the values pass through global memory after __syncthreads (plain loads,
 * never the read-only path: these buffers are written in the same kernel). */
enum { SE_IMGS = 4 };

EFF_HD inline int se_count(int N, int n0) { return N - n0 < SE_IMGS ? N - n0 : SE_IMGS; }

/* acc[i] = sum_k x[n0 + i][k] w[k ws] for the cnt images from n0 (x rows of
 * ldx floats): the serial sum, in k order, of every dot product below. */
EFF_HD inline void se_dots(float acc[SE_IMGS], const float *x, size_t ldx, int n0, int cnt, const float *w, size_t ws,
                           int K) {
    EFF_UNROLL
    for (int i = 0; i < SE_IMGS; i++) acc[i] = 0.0f;
    for (int k = 0; k < K; k++) {
        const float wk = w[(size_t)k * ws];
        EFF_UNROLL
        for (int i = 0; i < SE_IMGS; i++)
            if (i < cnt) acc[i] += x[(size_t)(n0 + i) * ldx + k] * wk;
    }
}

/* Phase 1, thread j: hidden[n][j] = act(sum_c pooled[n][c] w1[j][c] + b1[j])
 * for images n0 .. n0 + cnt - 1; with SiLU its input is kept at hidden + N Cse. */
EFF_HD inline void se_excite_hidden_thread(float *hidden, const float *pooled, const float *w1, const float *b1,
                                           int N, int C, int Cse, int act, int n0, int j) {
    const int cnt = se_count(N, n0);
    float acc[SE_IMGS];
    se_dots(acc, pooled, (size_t)C, n0, cnt, w1 + (size_t)j * C, 1, C);
    for (int i = 0; i < cnt; i++) {
        const size_t at = (size_t)(n0 + i) * Cse + j;
        float h = acc[i] + (b1 ? b1[j] : 0.0f);
        if (act == EFF_SE_SILU) {
            hidden[(size_t)N * Cse + at] = h;
            h = h * eff_sigmoid_hd(h);
        } else {
            h = h > 0.0f ? h : 0.0f;
        }
        hidden[at] = h;
    }
}

/* Phase 2, thread c: gate[n][c] = sigmoid(sum_j hidden[n][j] w2[c][j] + b2[c]). */
EFF_HD inline void se_excite_gate_thread(float *gate, const float *hidden, const float *w2, const float *b2, int N,
                                         int C, int Cse, int n0, int c) {
    const int cnt = se_count(N, n0);
    float acc[SE_IMGS];
    se_dots(acc, hidden, (size_t)Cse, n0, cnt, w2 + (size_t)c * Cse, 1, Cse);
    for (int i = 0; i < cnt; i++) gate[(size_t)(n0 + i) * C + c] = eff_sigmoid_hd(acc[i] + (b2 ? b2[c] : 0.0f));
}

/* grid.x: groups of SE_IMGS images (looped); one block runs both phases. */
__global__ void se_excite(float *hidden, float *gate, const float *pooled, const float *w1, const float *b1,
                          const float *w2, const float *b2, int N, int C, int Cse, int act) {
    for (int n0 = blockIdx.x * SE_IMGS; n0 < N; n0 += gridDim.x * SE_IMGS) {
        for (int j = threadIdx.x; j < Cse; j += blockDim.x)
            se_excite_hidden_thread(hidden, pooled, w1, b1, N, C, Cse, act, n0, j);
        __syncthreads();
        for (int c = threadIdx.x; c < C; c += blockDim.x) se_excite_gate_thread(gate, hidden, w2, b2, N, C, Cse, n0, c);
        __syncthreads();
    }
}

/* Backward phase 1, thread c: dgate[n][c] = (the chunk partials' sum of
 * dout x in over the image) s (1 - s), s = gate[n][c]. */
EFF_HD inline void se_dgate_thread(float *dgate, const double *partial, int chunks, const float *gate, int N, int C,
                                   int n0, int c) {
    for (int i = 0; i < se_count(N, n0); i++) {
        const size_t at = (size_t)(n0 + i) * C + c;
        const float s = gate[at];
        dgate[at] = (float)eff_chunk_sum(partial, n0 + i, chunks, 0, C, c) * (s * (1.0f - s));
    }
}

/* Backward phase 2, thread j: dhid[n][j] = sum_c dgate[n][c] w2[c][j], through
 * ReLU (from its output) or SiLU (from its input z: s (1 + z (1 - s))). */
EFF_HD inline void se_dhid_thread(float *dhid, const float *dgate, const float *hidden, const float *w2, int N,
                                  int C, int Cse, int act, int n0, int j) {
    const int cnt = se_count(N, n0);
    float acc[SE_IMGS];
    se_dots(acc, dgate, (size_t)C, n0, cnt, w2 + j, (size_t)Cse, C);
    for (int i = 0; i < cnt; i++) {
        const size_t at = (size_t)(n0 + i) * Cse + j;
        float d = acc[i];
        if (act == EFF_SE_SILU) {
            const float z = hidden[(size_t)N * Cse + at], s = eff_sigmoid_hd(z);
            d *= s * (1.0f + z * (1.0f - s));
        } else if (hidden[at] <= 0.0f) {
            d = 0.0f;
        }
        dhid[at] = d;
    }
}

/* Backward phase 3, thread c: dpooled[n][c] = sum_j dhid[n][j] w1[j][c]. */
EFF_HD inline void se_dpooled_thread(float *dpooled, const float *dhid, const float *w1, int N, int C, int Cse,
                                     int n0, int c) {
    const int cnt = se_count(N, n0);
    float acc[SE_IMGS];
    se_dots(acc, dhid, (size_t)Cse, n0, cnt, w1 + c, (size_t)C, Cse);
    for (int i = 0; i < cnt; i++) dpooled[(size_t)(n0 + i) * C + c] = acc[i];
}

__global__ void se_excite_backward(float *dgate, float *dhid, float *dpooled, const double *partial, int chunks,
                                   const float *gate, const float *hidden, const float *w1, const float *w2, int N,
                                   int C, int Cse, int act) {
    for (int n0 = blockIdx.x * SE_IMGS; n0 < N; n0 += gridDim.x * SE_IMGS) {
        for (int c = threadIdx.x; c < C; c += blockDim.x) se_dgate_thread(dgate, partial, chunks, gate, N, C, n0, c);
        __syncthreads();
        for (int j = threadIdx.x; j < Cse; j += blockDim.x)
            se_dhid_thread(dhid, dgate, hidden, w2, N, C, Cse, act, n0, j);
        __syncthreads();
        for (int c = threadIdx.x; c < C; c += blockDim.x) se_dpooled_thread(dpooled, dhid, w1, N, C, Cse, n0, c);
        __syncthreads();
    }
}

/* The parameter gradients (accumulated, images in order: the CPU's bias_grad
 * order exactly). Row r of grid.y (looped): r < C: dw2[r][j] for j = t, +
 * blockDim, ...; C <= r < C + Cse: dw1[r - C][c]; r = C + Cse: db2[c] and
 * db1[j] (either may be NULL). */
EFF_HD inline void se_param_grads_thread(float *dw1, float *db1, float *dw2, float *db2, const float *dgate,
                                         const float *dhid, const float *hidden, const float *pooled, int N, int C,
                                         int Cse, int r, int t, int nthreads) {
    if (r < C) {
        EFF_NO_UNROLL /* stride nthreads: no trip-count division */
        for (int j = t; j < Cse; j += nthreads) {
            float s = 0.0f;
            for (int n = 0; n < N; n++) s += dgate[(size_t)n * C + r] * hidden[(size_t)n * Cse + j];
            dw2[(size_t)r * Cse + j] += s;
        }
    } else if (r < C + Cse) {
        const int j = r - C;
        EFF_NO_UNROLL /* stride nthreads: no trip-count division */
        for (int c = t; c < C; c += nthreads) {
            float s = 0.0f;
            for (int n = 0; n < N; n++) s += dhid[(size_t)n * Cse + j] * pooled[(size_t)n * C + c];
            dw1[(size_t)j * C + c] += s;
        }
    } else {
        EFF_NO_UNROLL /* stride nthreads: no trip-count division */
        for (int c = t; db2 && c < C; c += nthreads) {
            float s = 0.0f;
            for (int n = 0; n < N; n++) s += dgate[(size_t)n * C + c];
            db2[c] += s;
        }
        EFF_NO_UNROLL /* stride nthreads: no trip-count division */
        for (int j = t; db1 && j < Cse; j += nthreads) {
            float s = 0.0f;
            for (int n = 0; n < N; n++) s += dhid[(size_t)n * Cse + j];
            db1[j] += s;
        }
    }
}

__global__ void se_param_grads(float *dw1, float *db1, float *dw2, float *db2, const float *dgate, const float *dhid,
                               const float *hidden, const float *pooled, int N, int C, int Cse) {
    for (int r = blockIdx.y; r <= C + Cse; r += gridDim.y)
        se_param_grads_thread(dw1, db1, dw2, db2, dgate, dhid, hidden, pooled, N, C, Cse, r, threadIdx.x, blockDim.x);
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

static long long se_groups(int N) { return ((long long)N + SE_IMGS - 1) / SE_IMGS; }

extern "C" void se_forward_pooled_cuda(EffCuda *cu, void *out, const float *pooled, float *hidden, float *gate,
                                       const void *in, const float *w1, const float *b1, const float *w2,
                                       const float *b2, int N, int HW, int C, int Cse, int act) {
    se_excite<<<eff_grid1(cu, "se_excite", se_groups(N), EFF_BLOCK), EFF_BLOCK, 0, cu->stream>>>(
        hidden, gate, pooled, w1, b1, w2, b2, N, C, Cse, act);
    CUDA_LAUNCHED("se_excite");
    EFF_ACT_DISPATCH(cu->precision, T, se_scale_t<T>(cu, (T *)out, (const T *)in, gate, N, HW, C));
}

extern "C" void se_backward_cuda(EffCuda *cu, void *din, float *dw1, float *db1, float *dw2, float *db2, float *work,
                                 const void *dout, const void *in, const float *pooled, const float *hidden,
                                 const float *gate, const float *w1, const float *w2, int N, int HW, int C, int Cse,
                                 int act) {
    float *dgate = work, *dpooled = work + (size_t)N * C, *dhid = work + (size_t)2 * N * C;
    double *partial;
    int chunks = 0;
    EFF_ACT_DISPATCH(cu->precision, T,
                     chunks = eff_colreduce(cu, DGateF<T>{(const T *)dout, (const T *)in, HW, C}, N, HW, C, 0,
                                            &partial, NULL));
    se_excite_backward<<<eff_grid1(cu, "se_excite_backward", se_groups(N), EFF_BLOCK), EFF_BLOCK, 0, cu->stream>>>(
        dgate, dhid, dpooled, partial, chunks, gate, hidden, w1, w2, N, C, Cse, act);
    CUDA_LAUNCHED("se_excite_backward");
    const long long rows = (long long)C + Cse + 1;
    se_param_grads<<<eff_grid3(cu, "se_param_grads", 1, rows > EFF_GRID_Y_MAX ? EFF_GRID_Y_MAX : rows, 1, EFF_BLOCK),
                     EFF_BLOCK, 0, cu->stream>>>(dw1, db1, dw2, db2, dgate, dhid, hidden, pooled, N, C, Cse);
    CUDA_LAUNCHED("se_param_grads");
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

/* The excitation's kernels as their launchers run them: for each block (a
 * group of SE_IMGS images) every thread of one phase, then the next. */
extern "C" void se_excite_emulate(float *hidden, float *gate, const float *pooled, const float *w1, const float *b1,
                                  const float *w2, const float *b2, int N, int C, int Cse, int act) {
    for (int n0 = 0; n0 < N; n0 += SE_IMGS) {
        for (int j = 0; j < Cse; j++) se_excite_hidden_thread(hidden, pooled, w1, b1, N, C, Cse, act, n0, j);
        for (int c = 0; c < C; c++) se_excite_gate_thread(gate, hidden, w2, b2, N, C, Cse, n0, c);
    }
}

extern "C" void se_excite_backward_emulate(float *dw1, float *db1, float *dw2, float *db2, float *dgate, float *dhid,
                                           float *dpooled, const double *partial, int chunks, const float *gate,
                                           const float *hidden, const float *pooled, const float *w1,
                                           const float *w2, int N, int C, int Cse, int act) {
    for (int n0 = 0; n0 < N; n0 += SE_IMGS) {
        for (int c = 0; c < C; c++) se_dgate_thread(dgate, partial, chunks, gate, N, C, n0, c);
        for (int j = 0; j < Cse; j++) se_dhid_thread(dhid, dgate, hidden, w2, N, C, Cse, act, n0, j);
        for (int c = 0; c < C; c++) se_dpooled_thread(dpooled, dhid, w1, N, C, Cse, n0, c);
    }
    for (int r = 0; r <= C + Cse; r++)
        for (int t = 0; t < (int)EFF_BLOCK; t++)
            se_param_grads_thread(dw1, db1, dw2, db2, dgate, dhid, hidden, pooled, N, C, Cse, r, t, (int)EFF_BLOCK);
}
