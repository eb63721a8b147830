/* dwconv.cu: depthwise KxK conv, padding K/2, NHWC -- the CUDA twin of
 * src/ops/dwconv.c. w: [K][K][C]. Kernels are templates on K (3, 5) and the
 * stride S (1, 2), the only cases EfficientNet has, so tap loops unroll and
 * the one division by S per thread is a shift.
 *
 * Forward and the input gradient: one thread per V channels of one pixel
 * (V = 8 bf16/fp16 or 4 fp32 with 16-byte loads when C and the pointers
 * allow, else 1), images on grid.y. The input gradient gathers: input pixel
 * i receives the outputs o0 - j through taps r + j S (dw_index.cuh), so no
 * tap is tested with / or %. Taps are summed in the CPU op's order (kh, then
 * kw ascending) with fused multiply-adds in float.
 * Weight gradient: per (row chunk, 32 channels) block, each thread keeps the
 * K*K tap sums of its channel in registers (fp32, two-level: groups of
 * DW_WG_GROUP pixels) over the chunk's output pixels; chunk partials are then
 * added in chunk order, in groups (deterministic; the error bound is
 * dw_wgrad_depth's, tests/gpu/test_kernel_emulate.c). No fp64: Hopper
 * converts float to double at 1/8 of its FMA rate.
 *
 * All index math is in dw_index.cuh, and every thread's work is an EFF_HD
 * function, so dwconv_*_emulate (kernel_emu.h) run the kernels' own code on
 * the CPU: tests/test_kernel_index.c, tests/gpu/test_kernel_emulate.c. */
#include "act.cuh"
#include "dw_index.cuh"
#include "kernel_emu.h"
#include "reduce.cuh"
#include "vec.cuh"

#include <stdlib.h>

#define DW_TX 32
#define DW_TY 4
/* Blocks per SM the forward / input-gradient kernels must fit (registers).
 * 1: K = 5 uses 101-132 registers (ptxas, sm_90) without spills; 3 spills.
 * Unmeasured on a GPU: a tuning knob for the first run (-DDW_MIN_BLOCKS=2). */
#ifndef DW_MIN_BLOCKS
#define DW_MIN_BLOCKS 1
#endif

namespace {

/* Output pixel (n, ho, wo), channels c0 .. c0 + V - 1, before the store's
 * rounding: the taps, their order and one FMA per lane, shared by the plain
 * forward and the fused one (dwconv_forward_bnstats); al: 16-byte loads. */
template <int K, int S, int V, typename T>
EFF_HD inline void dw_pixel(float *acc, const T *in, const float *w, const DwGeom &g, int n, int ho, int wo, int c0,
                            int al) {
    const DwSpan sh = dw_fwd_span(ho, K, S, g.H), sw = dw_fwd_span(wo, K, S, g.W);
    const T *img = in + (size_t)n * g.in_img + c0;
    EFF_UNROLL
    for (int v = 0; v < V; v++) acc[v] = 0.0f;
    EFF_UNROLL
    for (int kh = 0; kh < K; kh++) {
        if (kh < sh.k0 || kh >= sh.k1) continue;
        EFF_UNROLL
        for (int kw = 0; kw < K; kw++) {
            if (kw < sw.k0 || kw >= sw.k1) continue;
            float x[V], wt[V];
            eff_load_v<V, T>(x, img + dw_off(sh.i0 + kh, sw.i0 + kw, g.W, g.C), al);
            eff_load_v<V, float>(wt, w + dw_woff(kh, kw, K, g.C) + c0, al);
            EFF_UNROLL
            for (int v = 0; v < V; v++) acc[v] = eff_fmaf(x[v], wt[v], acc[v]);
        }
    }
}

/* Forward: V channels of output pixel tid, for images n0, n0 + nstep, ... */
template <int K, int S, int V, typename T>
EFF_HD inline void dw_forward_thread(T *out, const T *in, const float *w, const DwGeom &g, uint32_t tid, int n0,
                                     int nstep) {
    if (tid >= g.work_fwd) return;
    const DwPix p = dw_decode(g.cv, g.wo, V, tid);
    for (int n = n0; n < g.N; n += nstep) {
        float acc[V];
        dw_pixel<K, S, V, T>(acc, in, w, g, n, p.h, p.w, p.c0, 1);
        EffVec<V, T>::store(out + (size_t)n * g.out_img + (size_t)tid * V, acc);
    }
}

/* Input gradient: V channels of input pixel tid, for images n0, n0 + nstep, ... */
template <int K, int S, int V, typename T>
EFF_HD inline void dw_backward_input_thread(T *din, const T *dout, const float *w, const DwGeom &g, uint32_t tid,
                                            int n0, int nstep) {
    if (tid >= g.work_bwd) return;
    const DwPix p = dw_decode(g.cv, g.wi, V, tid);
    const DwTaps th = dw_bwd_taps(p.h, K, S, g.Ho), tw = dw_bwd_taps(p.w, K, S, g.Wo);
    constexpr int J = DW_JMAX(K, S);
    for (int n = n0; n < g.N; n += nstep) {
        const T *img = dout + (size_t)n * g.out_img + p.c0;
        float acc[V];
        EFF_UNROLL
        for (int v = 0; v < V; v++) acc[v] = 0.0f;
        EFF_UNROLL
        for (int jh = 0; jh < J; jh++) {
            if (jh < th.j0 || jh >= th.j1) continue;
            EFF_UNROLL
            for (int jw = 0; jw < J; jw++) {
                if (jw < tw.j0 || jw >= tw.j1) continue;
                float gv[V], wt[V];
                EffVec<V, T>::load(gv, img + dw_off(th.o0 - jh, tw.o0 - jw, g.Wo, g.C));
                EffVec<V, float>::load(wt, w + dw_woff(th.r + jh * S, tw.r + jw * S, K, g.C) + p.c0);
                EFF_UNROLL
                for (int v = 0; v < V; v++) acc[v] = eff_fmaf(gv[v], wt[v], acc[v]);
            }
        }
        EffVec<V, T>::store(din + (size_t)n * g.in_img + (size_t)tid * V, acc);
    }
}

/* Weight gradient, thread (c, ty) of chunk k: acc[tap] over the chunk's
 * output pixels p = start + ty, + DW_TY, ...: fp32 FMAs into a group sum,
 * added to acc every DW_WG_GROUP pixels (dw_wgrad_depth bounds the error). */
template <int K, int S, typename T>
EFF_HD inline void dw_wgrad_thread(float *acc, const T *dout, const T *in, const DwGeom &g, int chunks, int k, int c,
                                   int ty) {
    float grp[K * K];
    EFF_UNROLL
    for (int j = 0; j < K * K; j++) acc[j] = 0.0f, grp[j] = 0.0f;
    const uint32_t p1 = dw_chunk_start(g.P, k + 1, chunks);
    uint32_t p = dw_chunk_start(g.P, k, chunks) + (uint32_t)ty;
    if (c >= g.C || p >= p1) return;
    DwWalk at = dw_walk_start(&g, p);
    for (int m = 1; p < p1; p += DW_TY, dw_walk_next(&at, DW_TY, g.Ho, g.Wo), m++) {
        const float gv = eff_tof(dout[(size_t)p * g.C + c]);
        const DwSpan sh = dw_fwd_span(at.ho, K, S, g.H), sw = dw_fwd_span(at.wo, K, S, g.W);
        const T *img = in + (size_t)at.n * g.in_img + c;
        EFF_UNROLL
        for (int kh = 0; kh < K; kh++) {
            if (kh < sh.k0 || kh >= sh.k1) continue;
            EFF_UNROLL
            for (int kw = 0; kw < K; kw++) {
                if (kw < sw.k0 || kw >= sw.k1) continue;
                const int j = kh * K + kw;
                grp[j] = eff_fmaf(gv, eff_tof(img[dw_off(sh.i0 + kh, sw.i0 + kw, g.W, g.C)]), grp[j]);
            }
        }
        if (m == DW_WG_GROUP) {
            m = 0;
            EFF_UNROLL
            for (int j = 0; j < K * K; j++) acc[j] += grp[j], grp[j] = 0.0f;
        }
    }
    EFF_UNROLL
    for (int j = 0; j < K * K; j++) acc[j] += grp[j];
}

/* Tap j of channel c: the DW_TY partials of a block column, in order. */
EFF_HD inline float dw_block_sum(const float (*col)[DW_TX], int tx) {
    float s = 0.0f;
    for (int r = 0; r < DW_TY; r++) s += col[r][tx];
    return s;
}

/* Element i of dw (tap-major [K*K][C]): the chunk partials in chunk order,
 * in groups of DW_WG_GROUP. */
EFF_HD inline float dw_chunks_sum(const float *partial, int chunks, size_t KKC, size_t i) {
    float s = 0.0f;
    for (int k0 = 0; k0 < chunks; k0 += DW_WG_GROUP) {
        float grp = 0.0f;
        const int k1 = k0 + DW_WG_GROUP < chunks ? k0 + DW_WG_GROUP : chunks;
        for (int k = k0; k < k1; k++) grp += partial[(size_t)k * KKC + i];
        s += grp;
    }
    return s;
}

/* The forward fused with the statistics of the BN after it: a thread of the
 * column reduction (reduce.cuh, V channels) over the P output pixels as rows
 * -- pixels r0 + ty, + RY, ... of chunk k, walked by carries -- storing each
 * and adding StatsF's quantities of the stored values (batchnorm.cu). */
template <int K, int S, int V, typename T> struct DwStatsTh {
    T *out;
    const T *in;
    const float *w;
    DwGeom g;
    int al;
    EFF_HD void operator()(int, int rows, int chunks, int k, int j, int live, int ty, int RY, double *q0,
                           double *q1) const {
        long r0, r1;
        eff_chunk_rows(rows, k, chunks, &r0, &r1);
        for (int v = 0; v < V; v++) q0[v] = 0.0, q1[v] = 0.0;
        if (!live || r0 + ty >= r1) return;
        const int c0 = j * V;
        uint32_t p = (uint32_t)(r0 + ty);
        DwWalk at = dw_walk_start(&g, p);
        EFF_NO_UNROLL /* stride RY: no trip-count division */
        for (; p < (uint32_t)r1; p += (uint32_t)RY, dw_walk_next(&at, RY, g.Ho, g.Wo)) {
            float y[V];
            dw_pixel<K, S, V, T>(y, in, w, g, at.n, at.ho, at.wo, c0, al);
            eff_store_v<V, T>(out + (size_t)p * g.C + c0, y, al);
            EFF_UNROLL
            for (int v = 0; v < V; v++) eff_stats_add(eff_tof(eff_fromf<T>(y[v])), &q0[v], &q1[v]);
        }
    }
};

/* sums[c] = sum x, sums[C + c] = sum x^2 over the chunks, in order (bn_finalize_train's). */
EFF_HD inline void dw_stats_sum_one(double *sums, const double *partial, int chunks, int C, int c) {
    sums[c] = eff_chunk_sum(partial, 0, chunks, 0, C, c);
    sums[C + c] = eff_chunk_sum(partial, 0, chunks, 1, C, c);
}
__global__ void dw_stats_sum_k(double *sums, const double *partial, int chunks, int C) {
    const int c = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (c < C) dw_stats_sum_one(sums, partial, chunks, C, c);
}

template <int K, int S, int V, typename T>
__global__ void __launch_bounds__(EFF_BLOCK, DW_MIN_BLOCKS)
    dw_forward_k(T *out, const T *__restrict__ in, const float *__restrict__ w, const DwGeom g) {
    dw_forward_thread<K, S, V, T>(out, in, w, g, blockIdx.x * EFF_BLOCK + threadIdx.x, blockIdx.y, gridDim.y);
}

template <int K, int S, int V, typename T>
__global__ void __launch_bounds__(EFF_BLOCK, DW_MIN_BLOCKS)
    dw_backward_input_k(T *din, const T *__restrict__ dout, const float *__restrict__ w, const DwGeom g) {
    dw_backward_input_thread<K, S, V, T>(din, dout, w, g, blockIdx.x * EFF_BLOCK + threadIdx.x, blockIdx.y,
                                         gridDim.y);
}

template <int K, int S, typename T>
__global__ void __launch_bounds__(DW_TX *DW_TY)
    dw_wgrad_partial_k(float *partial, const T *__restrict__ dout, const T *__restrict__ in, const DwGeom g,
                       int chunks) {
    __shared__ float sh[DW_TY][DW_TX];
    const int tx = threadIdx.x, ty = threadIdx.y, k = blockIdx.x;
    /* channel tiles blockIdx.y, + gridDim.y, ... (dw_wgrad_grid): one unless C > 65535 DW_TX */
    for (uint32_t c0 = blockIdx.y * DW_TX; c0 < (uint32_t)g.C; c0 += gridDim.y * DW_TX) {
        const int c = dw_tile_channel(c0, tx, g.C);
        float acc[K * K];
        dw_wgrad_thread<K, S, T>(acc, dout, in, g, chunks, k, c, ty);
#pragma unroll
        for (int j = 0; j < K * K; j++) {
            sh[ty][tx] = acc[j];
            __syncthreads();
            if (ty == 0 && c < g.C) partial[dw_partial_index(k, j, K * K, g.C, c)] = dw_block_sum(sh, tx);
            __syncthreads();
        }
    }
}

__global__ void dw_wgrad_finalize_k(float *dw, const float *partial, int chunks, size_t KKC) {
    GRID_STRIDE(i, KKC) dw[i] += dw_chunks_sum(partial, chunks, KKC, i);
}

/* f(EffInt<K>, EffInt<S>, EffInt<V>) for the runtime K, S (checked: 3/5,
 * 1/2) and V (1 or T's 16-byte width). */
template <typename T, typename F> void dw_dispatch(int K, int S, int V, F f) {
    auto with_ks = [&](auto k, auto s) { eff_with_vec<T>(V, [&](auto v) { f(k, s, v); }); };
    if (K == 3)
        S == 1 ? with_ks(EffInt<3>(), EffInt<1>()) : with_ks(EffInt<3>(), EffInt<2>());
    else
        S == 1 ? with_ks(EffInt<5>(), EffInt<1>()) : with_ks(EffInt<5>(), EffInt<2>());
}

} // namespace

/* The geometry of a launch; a shape the kernels cannot take is fatal. */
static DwGeom dw_geom_or_die(const char *what, int N, int H, int W, int C, int K, int S, int V) {
    DwGeom g;
    const char *why = dw_geom_init(&g, N, H, W, C, K, S, V);
    if (why) eff_cuda_fail(what, why, __FILE__, __LINE__);
    return g;
}

template <typename T>
static void dw_forward_t(EffCuda *cu, T *out, const T *in, const float *w, int N, int H, int W, int C, int K,
                         int S) {
    const int V = eff_vec_width(C, sizeof(T), eff_aligned16(out) && eff_aligned16(in) && eff_aligned16(w));
    const DwGeom g = dw_geom_or_die("dwconv_forward_cuda", N, H, W, C, K, S, V);
    uint32_t gx, gy;
    dw_grid(&g, 0, &gx, &gy);
    dw_dispatch<T>(K, S, V, [&](auto k, auto s, auto v) {
        dw_forward_k<decltype(k)::value, decltype(s)::value, decltype(v)::value, T>
            <<<eff_grid3(cu, "dw_forward", gx, gy, 1, EFF_BLOCK), EFF_BLOCK, 0, cu->stream>>>(out, in, w, g);
    });
    CUDA_LAUNCHED("dw_forward");
}

template <typename T>
static void dw_backward_t(EffCuda *cu, T *din, float *dw, const T *dout, const T *in, const float *w, int N, int H,
                          int W, int C, int K, int S) {
    const int aligned = !din || (eff_aligned16(din) && eff_aligned16(dout) && eff_aligned16(w));
    const int V = din ? eff_vec_width(C, sizeof(T), aligned) : 1;
    const DwGeom g = dw_geom_or_die("dwconv_backward_cuda", N, H, W, C, K, S, V);
    const int chunks = eff_row_chunks((long)g.P, 256, 512);
    /* float partials in the (double) reduction scratch */
    float *partial = (float *)eff_cuda_reduce_scratch(cu, ((size_t)chunks * K * K * C + 1) / 2);
    uint32_t wx, wy;
    dw_wgrad_grid(chunks, C, DW_TX, EFF_GRID_Y_MAX, &wx, &wy);
    const dim3 wblock(DW_TX, DW_TY);
    dw_dispatch<T>(K, S, 1, [&](auto k, auto s, auto) {
        dw_wgrad_partial_k<decltype(k)::value, decltype(s)::value, T>
            <<<eff_grid3(cu, "dw_wgrad_partial", wx, wy, 1, wblock), wblock, 0, cu->stream>>>(
                partial, dout, in, g, chunks);
    });
    CUDA_LAUNCHED("dw_wgrad_partial");
    const size_t KKC = (size_t)K * K * C;
    dw_wgrad_finalize_k<<<eff_blocks(KKC), EFF_THREADS, 0, cu->stream>>>(dw, partial, chunks, KKC);
    CUDA_LAUNCHED("dw_wgrad_finalize");
    if (!din) return;
    uint32_t gx, gy;
    dw_grid(&g, 1, &gx, &gy);
    dw_dispatch<T>(K, S, V, [&](auto k, auto s, auto v) {
        dw_backward_input_k<decltype(k)::value, decltype(s)::value, decltype(v)::value, T>
            <<<eff_grid3(cu, "dw_backward_input", gx, gy, 1, EFF_BLOCK), EFF_BLOCK, 0, cu->stream>>>(din, dout, w, g);
    });
    CUDA_LAUNCHED("dw_backward_input");
}

/* The forward + the BN statistics of its output into sums [2C] (bn_work):
 * out bit for bit dwconv_forward_cuda's, sums bit for bit the statistics
 * pass of batchnorm_forward_train_cuda on it (the same reduction). */
template <typename T>
static void dw_forward_bnstats_t(EffCuda *cu, T *out, double *sums, const T *in, const float *w, int N, int H, int W,
                                 int C, int K, int S) {
    const DwGeom g = dw_geom_or_die("dwconv_forward_bnstats_cuda", N, H, W, C, K, S, 1);
    const int al = eff_aligned16(out) && eff_aligned16(in) && eff_aligned16(w);
    double *partial = NULL;
    int chunks = 0;
    dw_dispatch<T>(K, S, eff_red_width<T>(C), [&](auto k, auto s, auto v) {
        constexpr int Vc = decltype(v)::value;
        const DwStatsTh<decltype(k)::value, decltype(s)::value, Vc, T> th = {out, in, w, g, al};
        chunks = eff_colreduce_th<Vc>(cu, th, 1, (long)g.P, C, 0, &partial, NULL);
    });
    dw_stats_sum_k<<<eff_grid1(cu, "dw_stats_sum", ((long long)C + EFF_BLOCK - 1) / EFF_BLOCK, EFF_BLOCK), EFF_BLOCK, 0,
                     cu->stream>>>(sums, partial, chunks, C);
    CUDA_LAUNCHED("dw_stats_sum");
}

extern "C" void dwconv_forward_bnstats_cuda(EffCuda *cu, void *out, double *bn_work, const void *in, const float *w,
                                            int N, int H, int W, int C, int K, int stride) {
    EFF_ACT_DISPATCH(cu->precision, T,
                     dw_forward_bnstats_t<T>(cu, (T *)out, bn_work, (const T *)in, w, N, H, W, C, K, stride));
}

extern "C" void dwconv_forward_cuda(EffCuda *cu, void *out, const void *in, const float *w, int N, int H, int W,
                                    int C, int K, int stride) {
    EFF_ACT_DISPATCH(cu->precision, T, dw_forward_t<T>(cu, (T *)out, (const T *)in, w, N, H, W, C, K, stride));
}

extern "C" void dwconv_backward_cuda(EffCuda *cu, void *din, float *dw, const void *dout, const void *in,
                                     const float *w, int N, int H, int W, int C, int K, int stride) {
    EFF_ACT_DISPATCH(cu->precision, T, dw_backward_t<T>(cu, (T *)din, dw, (const T *)dout, (const T *)in, w, N, H, W,
                                                         C, K, stride));
}

/* ---- host emulation (kernel_emu.h): the thread functions above, run on the
 * CPU for every thread of the launchers' grids -------------------------------- */

template <typename T>
static int dw_forward_emu(int scalar, T *out, const T *in, const float *w, int N, int H, int W, int C, int K, int S) {
    const int aligned = eff_aligned16(out) && eff_aligned16(in) && eff_aligned16(w);
    const int V = scalar ? 1 : eff_vec_width(C, sizeof(T), aligned);
    DwGeom g;
    if (dw_geom_init(&g, N, H, W, C, K, S, V)) return 0;
    uint32_t gx, gy;
    dw_grid(&g, 0, &gx, &gy);
    dw_dispatch<T>(K, S, V, [&](auto k, auto s, auto v) {
        for (uint32_t by = 0; by < gy; by++)
            for (uint32_t t = 0; t < gx * EFF_BLOCK; t++)
                dw_forward_thread<decltype(k)::value, decltype(s)::value, decltype(v)::value, T>(out, in, w, g, t,
                                                                                                 (int)by, (int)gy);
    });
    return V;
}

/* The weight-gradient kernels: every block's threads over its channel tiles
 * (grid.y capped at ycap, as dw_wgrad_grid), then its column sums in the
 * kernel's order, then the chunks in order. The partials start as NaN, so a
 * tile the loop misses shows in dw. */
template <typename T> static void dw_wgrad_emu(float *dw, const T *dout, const T *in, const DwGeom &g, uint32_t ycap) {
    const int chunks = eff_row_chunks((long)g.P, 256, 512), KK = g.K * g.K;
    uint32_t gx, gy;
    dw_wgrad_grid(chunks, g.C, DW_TX, ycap, &gx, &gy);
    const size_t KKC = (size_t)KK * g.C;
    float *partial = (float *)malloc(chunks * KKC * sizeof(float));
    for (size_t i = 0; i < chunks * KKC; i++) partial[i] = NAN;
    dw_dispatch<T>(g.K, g.S, 1, [&](auto k, auto s, auto) {
        constexpr int Kc = decltype(k)::value;
        float acc[DW_TY][Kc * Kc], sh[DW_TY][DW_TX];
        for (uint32_t ck = 0; ck < gx; ck++)
            for (uint32_t by = 0; by < gy; by++)
                for (uint32_t c0 = by * DW_TX; c0 < (uint32_t)g.C; c0 += gy * DW_TX)
                    for (int tx = 0; tx < DW_TX; tx++) {
                        const int c = dw_tile_channel(c0, tx, g.C);
                        for (int ty = 0; ty < DW_TY; ty++)
                            dw_wgrad_thread<Kc, decltype(s)::value, T>(acc[ty], dout, in, g, chunks, (int)ck, c, ty);
                        for (int j = 0; j < Kc * Kc && c < g.C; j++) {
                            for (int ty = 0; ty < DW_TY; ty++) sh[ty][tx] = acc[ty][j];
                            partial[dw_partial_index((int)ck, j, Kc * Kc, g.C, c)] = dw_block_sum(sh, tx);
                        }
                    }
    });
    for (size_t i = 0; i < KKC; i++) dw[i] += dw_chunks_sum(partial, chunks, KKC, i);
    free(partial);
}

template <typename T>
static int dw_backward_emu(int scalar, T *din, float *dw, const T *dout, const T *in, const float *w, int N, int H,
                           int W, int C, int K, int S) {
    const int aligned = !din || (eff_aligned16(din) && eff_aligned16(dout) && eff_aligned16(w));
    const int V = scalar || !din ? 1 : eff_vec_width(C, sizeof(T), aligned);
    DwGeom g;
    if (dw_geom_init(&g, N, H, W, C, K, S, V)) return 0;
    dw_wgrad_emu<T>(dw, dout, in, g, EFF_GRID_Y_MAX);
    if (!din) return V;
    uint32_t gx, gy;
    dw_grid(&g, 1, &gx, &gy);
    dw_dispatch<T>(K, S, V, [&](auto k, auto s, auto v) {
        for (uint32_t by = 0; by < gy; by++)
            for (uint32_t t = 0; t < gx * EFF_BLOCK; t++)
                dw_backward_input_thread<decltype(k)::value, decltype(s)::value, decltype(v)::value, T>(
                    din, dout, w, g, t, (int)by, (int)gy);
    });
    return V;
}

extern "C" int dwconv_forward_emulate(int prec, int scalar, void *out, const void *in, const float *w, int N, int H,
                                      int W, int C, int K, int stride) {
    int V = 0;
    EFF_ACT_DISPATCH(prec, T, V = dw_forward_emu<T>(scalar, (T *)out, (const T *)in, w, N, H, W, C, K, stride));
    return V;
}

extern "C" int dwconv_backward_emulate(int prec, int scalar, void *din, float *dw, const void *dout, const void *in,
                                       const float *w, int N, int H, int W, int C, int K, int stride) {
    int V = 0;
    EFF_ACT_DISPATCH(prec, T, V = dw_backward_emu<T>(scalar, (T *)din, dw, (const T *)dout, (const T *)in, w, N, H, W,
                                                      C, K, stride));
    return V;
}

extern "C" int dwconv_wgrad_depth(int N, int H, int W, int C, int K, int stride) {
    DwGeom g;
    if (dw_geom_init(&g, N, H, W, C, K, stride, 1)) return 0;
    return dw_wgrad_depth(g.P, eff_row_chunks((long)g.P, 256, 512), DW_TY);
}

extern "C" int dwconv_wgrad_emulate(int prec, unsigned ycap, float *dw, const void *dout, const void *in, int N,
                                    int H, int W, int C, int K, int stride) {
    DwGeom g;
    if (ycap < 1 || dw_geom_init(&g, N, H, W, C, K, stride, 1)) return 0;
    EFF_ACT_DISPATCH(prec, T, dw_wgrad_emu<T>(dw, (const T *)dout, (const T *)in, g, ycap));
    return 1;
}

/* dwconv_forward_bnstats_cuda on the host: the fused thread over the launch
 * grid, then the chunk sums; 1, or 0 for a rejected shape. */
template <typename T>
static int dw_bnstats_emu(T *out, double *sums, const T *in, const float *w, int N, int H, int W, int C, int K,
                          int S) {
    DwGeom g;
    EffRedGeom rg;
    char why[256];
    const int V = eff_red_width<T>(C), al = eff_aligned16(out) && eff_aligned16(in) && eff_aligned16(w);
    if (dw_geom_init(&g, N, H, W, C, K, S, 1) || eff_red_geom(&rg, 1, g.P, C, V, why, sizeof why)) return 0;
    double *partial = (double *)malloc((size_t)rg.chunks * 2 * C * sizeof(double));
    dw_dispatch<T>(K, S, V, [&](auto k, auto s, auto v) {
        constexpr int Vc = decltype(v)::value;
        const DwStatsTh<decltype(k)::value, decltype(s)::value, Vc, T> th = {out, in, w, g, al};
        eff_colreduce_emulate<Vc>(th, 1, (int)g.P, C, rg, 65535, partial);
    });
    for (int c = 0; c < C; c++) dw_stats_sum_one(sums, partial, rg.chunks, C, c);
    free(partial);
    return V;
}

extern "C" int dwconv_bnstats_emulate(int prec, void *out, double *sums, const void *in, const float *w, int N, int H,
                                      int W, int C, int K, int stride) {
    int ok = 0;
    EFF_ACT_DISPATCH(prec, T, ok = dw_bnstats_emu<T>((T *)out, sums, (const T *)in, w, N, H, W, C, K, stride));
    return ok;
}
