/* batchnorm.cu: BatchNorm2d over [M][C] (train, eval, backward), optionally
 * fused with swish -- the CUDA twin of src/ops/batchnorm.c. Statistics use
 * the deterministic column reduction of reduce.cuh in double; the elementwise
 * passes use the same float expressions as the CPU op. Backward recomputes
 * bn(x) and the sigmoid instead of storing them (memory-efficient swish).
 * Activations (in, out, dout, din) are of the act type T (act.cuh).
 * The elementwise passes walk [M][C] in vectors of V channels (8 bf16/fp16
 * or 4 fp32 in one 16-byte access when C and the pointers allow, else 1)
 * with 32-bit indices and the channel carried, not divided
 * (ew_index.cuh, tested on the CPU by tests/test_kernel_index.c). Each
 * thread's work is an EFF_HD function, so bn_*_emulate (kernel_emu.h) run
 * them on the CPU (tests/gpu/test_kernel_emulate.c). */
#include "act.cuh"
#include "ew_launch.cuh"
#include "kernel_emu.h"
#include "reduce.cuh"

#include <math.h>
#include <stdlib.h>

namespace {

/* The statistics' quantities of row r, columns c0 .. c0 + V - 1 (al: 16-byte loads). */
template <typename T> struct StatsF {
    const T *in;
    int C, al;
    template <int V> EFF_HD void vec(int, long r, int c0, double *q0, double *q1) const {
        float x[V];
        eff_load_v<V, T>(x, in + (size_t)r * C + c0, al);
        for (int v = 0; v < V; v++) eff_stats_add(x[v], &q0[v], &q1[v]);
    }
};

/* Channel c's mean, rstd and running estimates from s = sum x, ss = sum x^2. */
EFF_HD inline void bn_stats_finalize(double s, double ss, int M, int c, float momentum, float eps, float *mean,
                                     float *rstd, float *running_mean, float *running_var) {
    const double unbias = M > 1 ? (double)M / (M - 1) : 1.0;
    const double mu = s / M;
    double var = ss / M - mu * mu;
    if (var < 0) var = 0;
    mean[c] = (float)mu;
    rstd[c] = (float)(1.0 / sqrt(var + eps));
    running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mu);
    running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * var * unbias);
}

__global__ void bn_finalize_train(const double *partial, int chunks, int M, int C, float momentum, float eps,
                                  float *mean, float *rstd, float *running_mean, float *running_var) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    const double s = eff_chunk_sum(partial, 0, chunks, 0, C, c), ss = eff_chunk_sum(partial, 0, chunks, 1, C, c);
    bn_stats_finalize(s, ss, M, c, momentum, eps, mean, rstd, running_mean, running_var);
}

/* The same from sums[2C] (sum x, then sum x^2: dwconv_forward_bnstats_cuda's). */
__global__ void bn_finalize_sums(const double *sums, int M, int C, float momentum, float eps, float *mean,
                                 float *rstd, float *running_mean, float *running_var) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    bn_stats_finalize(sums[c], sums[C + c], M, c, momentum, eps, mean, rstd, running_mean, running_var);
}

/* Per-channel parameters of the elementwise passes: train (mean, rstd),
 * eval (running mean, running var, eps), backward (mean, rstd, sums). */
struct BnPar {
    const float *gamma, *beta, *mean, *rstd, *rm, *rv;
    const double *sums; /* [0,C) sum dz, [C,2C) sum dz*xhat */
    int C, swish;
    float eps, invM;
};

/* bn(x) (+ swish) of channel c with the batch statistics: the one expression
 * of the train output pass, fused (BnPoolF) or not. */
EFF_HD inline float bn_train_z(float x, const BnPar &q, int c) {
    const float z = (x - q.mean[c]) * q.rstd[c] * q.gamma[c] + q.beta[c];
    return q.swish ? z * eff_sigmoid_hd(z) : z;
}

/* The output pass fused with the SE squeeze, as a column reduction over each
 * image's HW rows: out = bn(in) (+ swish), q0 += the stored value (PoolF's
 * quantity, pool.cu). */
template <typename T> struct BnPoolF {
    T *out;
    const T *in;
    BnPar q;
    int HW, al;
    template <int V> EFF_HD void vec(int n, long r, int c0, double *q0, double *) const {
        const size_t i = ((size_t)n * HW + r) * q.C + c0;
        float x[V];
        eff_load_v<V, T>(x, in + i, al);
        for (int v = 0; v < V; v++) x[v] = bn_train_z(x[v], q, c0 + v);
        eff_store_v<V, T>(out + i, x, al);
        for (int v = 0; v < V; v++) q0[v] += eff_tof(eff_fromf<T>(x[v]));
    }
};

/* pooled[n][c] from the per-image partials: pool.cu's pool_finalize
 * expression; grid (ceil(C / EFF_BLOCK), images), no division. */
EFF_HD inline void bn_pool_finalize_one(float *pooled, const double *partial, int chunks, int C, float inv, int n,
                                        int c) {
    pooled[(size_t)n * C + c] = (float)eff_chunk_sum(partial, n, chunks, 0, C, c) * inv;
}
__global__ void bn_pool_finalize(float *pooled, const double *partial, int chunks, int N, int C, float inv) {
    const int c = (int)EFF_TID;
    if (c >= C) return;
    for (int n = blockIdx.y; n < N; n += gridDim.y) bn_pool_finalize_one(pooled, partial, chunks, C, inv, n, c);
}

/* out = bn(in) (+ swish) with the batch statistics, thread tid's vectors. */
template <int V, typename T>
EFF_HD inline void bn_apply_thread(T *out, const T *in, const BnPar &q, EffWalk wk, uint32_t tid) {
    uint32_t i, cg; /* vector i, channel group cg */
    for (eff_walk_first(&wk, tid, &i, &cg); i < wk.total; eff_walk_next(&wk, &i, &cg)) {
        float x[V];
        EffVec<V, T>::load(x, in + (size_t)i * V);
        EFF_UNROLL
        for (int v = 0; v < V; v++) {
            x[v] = bn_train_z(x[v], q, (int)cg * V + v);
        }
        EffVec<V, T>::store(out + (size_t)i * V, x);
    }
}

/* The same with the running statistics. */
template <int V, typename T>
EFF_HD inline void bn_eval_thread(T *out, const T *in, const BnPar &q, EffWalk wk, uint32_t tid) {
    uint32_t i, cg;
    for (eff_walk_first(&wk, tid, &i, &cg); i < wk.total; eff_walk_next(&wk, &i, &cg)) {
        float x[V];
        EffVec<V, T>::load(x, in + (size_t)i * V);
        EFF_UNROLL
        for (int v = 0; v < V; v++) {
            const int c = (int)cg * V + v;
            const float z = (x[v] - q.rm[c]) / sqrtf(q.rv[c] + q.eps) * q.gamma[c] + q.beta[c];
            x[v] = q.swish ? z * eff_sigmoid_hd(z) : z;
        }
        EffVec<V, T>::store(out + (size_t)i * V, x);
    }
}

/* dz = dout (times swish'(bn(x)) when fused), xhat = (x - mean) * rstd. */
template <typename T> struct BackF {
    const T *dout, *in;
    const float *mean, *rstd, *gamma, *beta;
    int C, swish;
    __device__ void operator()(int, long r, int c, double &q0, double &q1) const {
        const size_t i = (size_t)r * C + c;
        const float xh = (eff_ld(in[i]) - mean[c]) * rstd[c], g = eff_ld(dout[i]);
        const float dz = swish ? g * eff_swish_grad_d(xh * gamma[c] + beta[c]) : g;
        q0 += dz;
        q1 += (double)(dz * xh);
    }
};

__global__ void bn_finalize_back(const double *partial, int chunks, int C, float *dgamma, float *dbeta,
                                 double *sums) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    const double s = eff_chunk_sum(partial, 0, chunks, 0, C, c), sx = eff_chunk_sum(partial, 0, chunks, 1, C, c);
    sums[c] = s;
    sums[C + c] = sx;
    dbeta[c] += (float)s;
    dgamma[c] += (float)sx;
}

/* din = gamma rstd (dz - mean(dz) - xhat mean(dz xhat)), thread tid's vectors. */
template <int V, typename T>
EFF_HD inline void bn_back_apply_thread(T *din, const T *dout, const T *in, const BnPar &q, EffWalk wk,
                                        uint32_t tid) {
    uint32_t i, cg;
    for (eff_walk_first(&wk, tid, &i, &cg); i < wk.total; eff_walk_next(&wk, &i, &cg)) {
        float x[V], g[V];
        EffVec<V, T>::load(x, in + (size_t)i * V);
        EffVec<V, T>::load(g, dout + (size_t)i * V);
        EFF_UNROLL
        for (int v = 0; v < V; v++) {
            const int c = (int)cg * V + v;
            const float xh = (x[v] - q.mean[c]) * q.rstd[c];
            const float dz = q.swish ? g[v] * eff_swish_grad_hd(xh * q.gamma[c] + q.beta[c]) : g[v];
            x[v] = q.gamma[c] * q.rstd[c] * (dz - q.invM * (float)q.sums[c] - xh * q.invM * (float)q.sums[q.C + c]);
        }
        EffVec<V, T>::store(din + (size_t)i * V, x);
    }
}

template <int V, typename T> __global__ void bn_apply(T *out, const T *in, const BnPar q, EffWalk wk) {
    bn_apply_thread<V, T>(out, in, q, wk, EFF_TID);
}
template <int V, typename T> __global__ void bn_eval(T *out, const T *in, const BnPar q, EffWalk wk) {
    bn_eval_thread<V, T>(out, in, q, wk, EFF_TID);
}
template <int V, typename T>
__global__ void bn_back_apply(T *din, const T *dout, const T *in, const BnPar q, EffWalk wk) {
    bn_back_apply_thread<V, T>(din, dout, in, q, wk, EFF_TID);
}

/* run(blocks, walk, first element, EffInt<V>) over [M][C]: V from C and
 * alignment, row pieces of at most `limit` vectors. */
template <typename T, typename F> void bn_rows(int M, int C, int aligned, uint32_t limit, F run) {
    eff_with_vec<T>(eff_vec_width(C, sizeof(T), aligned), [&](auto v) {
        eff_rows_launch(
            M, C, decltype(v)::value, [&](uint32_t blocks, EffWalk wk, size_t e0) { run(blocks, wk, e0, v); }, limit);
    });
}

} // namespace

/* The train forward's output pass from batch statistics (also train.recompute's). */
template <typename T>
static void bn_apply_t(EffCuda *cu, T *out, const T *in, const float *mean, const float *rstd, const float *gamma,
                       const float *beta, int M, int C, int swish) {
    BnPar q = {};
    q.gamma = gamma, q.beta = beta, q.mean = mean, q.rstd = rstd, q.C = C, q.swish = swish;
    bn_rows<T>(M, C, eff_aligned16(out) && eff_aligned16(in), EFF_INDEX_MAX,
               [&](uint32_t blocks, EffWalk wk, size_t e0, auto v) {
                   bn_apply<decltype(v)::value, T><<<eff_grid1(cu, "bn_apply", blocks, EFF_BLOCK), EFF_BLOCK, 0,
                                                     cu->stream>>>(out + e0, in + e0, q, wk);
                   CUDA_LAUNCHED("bn_apply");
               });
}

template <typename T>
static void bn_train_t(EffCuda *cu, T *out, float *mean, float *rstd, float *running_mean, float *running_var,
                       const T *in, const float *gamma, const float *beta, int M, int C, float momentum, float eps,
                       int swish) {
    double *partial;
    int chunks = 0;
    eff_with_vec<T>(eff_red_width<T>(C), [&](auto v) {
        chunks = eff_colreduce_v<decltype(v)::value>(cu, StatsF<T>{in, C, eff_aligned16(in)}, 1, M, C, 0, &partial,
                                                     NULL);
    });
    bn_finalize_train<<<eff_grid1(cu, "bn_finalize_train", (C + 127LL) / 128, 128), 128, 0, cu->stream>>>(
        partial, chunks, M, C, momentum, eps, mean, rstd, running_mean, running_var);
    CUDA_LAUNCHED("bn_finalize_train");
    bn_apply_t<T>(cu, out, in, mean, rstd, gamma, beta, M, C, swish);
}

/* The output pass fused with the SE squeeze: pooled [N][C] = the per-image
 * means of out, bit for bit gap_forward_f32out_cuda(out) (the same reduction,
 * quantity and finalize expression). */
template <typename T>
static void bn_apply_pool_t(EffCuda *cu, T *out, float *pooled, const T *in, const BnPar &q, int N, int HW) {
    double *partial;
    int chunks = 0;
    const BnPoolF<T> f = {out, in, q, HW, eff_aligned16(out) && eff_aligned16(in)};
    eff_with_vec<T>(eff_red_width<T>(q.C), [&](auto v) {
        chunks = eff_colreduce_v<decltype(v)::value>(cu, f, N, HW, q.C, 0, &partial, NULL);
    });
    bn_pool_finalize<<<eff_grid3(cu, "bn_pool_finalize", ((long long)q.C + EFF_BLOCK - 1) / EFF_BLOCK, eff_grid_y(N),
                                 1, EFF_BLOCK), EFF_BLOCK, 0, cu->stream>>>(pooled, partial, chunks, N, q.C,
                                                                            1.0f / (float)HW);
    CUDA_LAUNCHED("bn_pool_finalize");
}

/* The train forward from the statistics' sums [2C] (bn_work), then the output
 * pass, with the SE squeeze into pooled when given. */
template <typename T>
static void bn_train_sums_t(EffCuda *cu, T *out, float *pooled, float *mean, float *rstd, float *running_mean,
                            float *running_var, const double *sums, const T *in, const float *gamma,
                            const float *beta, int N, int M, int C, float momentum, float eps, int swish) {
    bn_finalize_sums<<<eff_grid1(cu, "bn_finalize_sums", (C + 127LL) / 128, 128), 128, 0, cu->stream>>>(
        sums, M, C, momentum, eps, mean, rstd, running_mean, running_var);
    CUDA_LAUNCHED("bn_finalize_sums");
    if (!pooled) {
        bn_apply_t<T>(cu, out, in, mean, rstd, gamma, beta, M, C, swish);
        return;
    }
    if (N < 1 || M % N) eff_cuda_fail("batchnorm_forward_train_sums_cuda", "rows not a multiple of the images",
                                      __FILE__, __LINE__);
    BnPar q = {};
    q.gamma = gamma, q.beta = beta, q.mean = mean, q.rstd = rstd, q.C = C, q.swish = swish;
    bn_apply_pool_t<T>(cu, out, pooled, in, q, N, M / N);
}

template <typename T>
static void bn_backward_t(EffCuda *cu, T *din, float *dgamma, float *dbeta, const T *dout, const T *in,
                          const float *mean, const float *rstd, const float *gamma, const float *beta, int M, int C,
                          int swish) {
    double *partial, *sums; /* sums: [0,C) sum dz, [C,2C) sum dz*xhat */
    const int chunks = eff_colreduce(cu, BackF<T>{dout, in, mean, rstd, gamma, beta, C, swish}, 1, M, C,
                                     2 * (size_t)C, &partial, &sums);
    bn_finalize_back<<<eff_grid1(cu, "bn_finalize_back", (C + 127LL) / 128, 128), 128, 0, cu->stream>>>(
        partial, chunks, C, dgamma, dbeta, sums);
    CUDA_LAUNCHED("bn_finalize_back");
    if (!din) return;
    BnPar q = {};
    q.gamma = gamma, q.beta = beta, q.mean = mean, q.rstd = rstd, q.sums = sums, q.C = C, q.swish = swish;
    q.invM = 1.0f / (float)M;
    bn_rows<T>(M, C, eff_aligned16(din) && eff_aligned16(dout) && eff_aligned16(in), EFF_INDEX_MAX,
               [&](uint32_t blocks, EffWalk wk, size_t e0, auto v) {
                   bn_back_apply<decltype(v)::value, T>
                       <<<eff_grid1(cu, "bn_back_apply", blocks, EFF_BLOCK), EFF_BLOCK, 0, cu->stream>>>(
                           din + e0, dout + e0, in + e0, q, wk);
                   CUDA_LAUNCHED("bn_back_apply");
               });
}

extern "C" void batchnorm_forward_train_cuda(EffCuda *cu, void *out, float *mean, float *rstd, float *running_mean,
                                             float *running_var, const void *in, const float *gamma,
                                             const float *beta, int M, int C, float momentum, float eps, int swish) {
    EFF_ACT_DISPATCH(cu->precision, T, bn_train_t<T>(cu, (T *)out, mean, rstd, running_mean, running_var,
                                                      (const T *)in, gamma, beta, M, C, momentum, eps, swish));
}

extern "C" void batchnorm_forward_train_sums_cuda(EffCuda *cu, void *out, float *pooled, float *mean, float *rstd,
                                                  float *running_mean, float *running_var, const double *sums,
                                                  const void *in, const float *gamma, const float *beta, int N, int M,
                                                  int C, float momentum, float eps, int swish) {
    EFF_ACT_DISPATCH(cu->precision, T, bn_train_sums_t<T>(cu, (T *)out, pooled, mean, rstd, running_mean, running_var,
                                                           sums, (const T *)in, gamma, beta, N, M, C, momentum, eps,
                                                           swish));
}

extern "C" void batchnorm_apply_cuda(EffCuda *cu, void *out, const void *in, const float *mean, const float *rstd,
                                     const float *gamma, const float *beta, int M, int C, int swish) {
    EFF_ACT_DISPATCH(cu->precision, T, bn_apply_t<T>(cu, (T *)out, (const T *)in, mean, rstd, gamma, beta, M, C, swish));
}

template <typename T>
static void bn_eval_t(EffCuda *cu, T *out, const T *in, const float *gamma, const float *beta, const float *rm,
                      const float *rv, int M, int C, float eps, int swish) {
    BnPar q = {};
    q.gamma = gamma, q.beta = beta, q.rm = rm, q.rv = rv, q.C = C, q.swish = swish, q.eps = eps;
    bn_rows<T>(M, C, eff_aligned16(out) && eff_aligned16(in), EFF_INDEX_MAX,
               [&](uint32_t blocks, EffWalk wk, size_t e0, auto v) {
                   bn_eval<decltype(v)::value, T><<<eff_grid1(cu, "bn_eval", blocks, EFF_BLOCK), EFF_BLOCK, 0,
                                                    cu->stream>>>(out + e0, in + e0, q, wk);
                   CUDA_LAUNCHED("bn_eval");
               });
}

extern "C" void batchnorm_forward_eval_cuda(EffCuda *cu, void *out, const void *in, const float *gamma,
                                            const float *beta, const float *running_mean, const float *running_var,
                                            int M, int C, float eps, int swish) {
    EFF_ACT_DISPATCH(cu->precision, T, bn_eval_t<T>(cu, (T *)out, (const T *)in, gamma, beta, running_mean,
                                                     running_var, M, C, eps, swish));
}

extern "C" void batchnorm_backward_cuda(EffCuda *cu, void *din, float *dgamma, float *dbeta, const void *dout,
                                        const void *in, const float *mean, const float *rstd, const float *gamma,
                                        const float *beta, int M, int C, int swish) {
    EFF_ACT_DISPATCH(cu->precision, T, bn_backward_t<T>(cu, (T *)din, dgamma, dbeta, (const T *)dout, (const T *)in,
                                                         mean, rstd, gamma, beta, M, C, swish));
}

/* ---- host emulation (kernel_emu.h): the thread functions above for every
 * thread of the launchers' grids ------------------------------------------- */

static uint32_t emu_limit(unsigned limit) { return limit ? limit : EFF_INDEX_MAX; }

template <typename T>
static int bn_apply_emu(int scalar, unsigned limit, T *out, const T *in, const BnPar &q, int M, int eval) {
    int V = 1;
    bn_rows<T>(M, q.C, !scalar && eff_aligned16(out) && eff_aligned16(in), emu_limit(limit),
               [&](uint32_t blocks, EffWalk wk, size_t e0, auto v) {
                   V = decltype(v)::value;
                   eff_emulate_grid(blocks, [&](uint32_t t) {
                       if (eval) bn_eval_thread<decltype(v)::value, T>(out + e0, in + e0, q, wk, t);
                       else bn_apply_thread<decltype(v)::value, T>(out + e0, in + e0, q, wk, t);
                   });
               });
    return V;
}

extern "C" int bn_apply_emulate(int prec, int scalar, unsigned limit, void *out, const void *in, const float *mean,
                                const float *rstd, const float *gamma, const float *beta, int M, int C, int swish) {
    BnPar q = {};
    q.gamma = gamma, q.beta = beta, q.mean = mean, q.rstd = rstd, q.C = C, q.swish = swish;
    int V = 0;
    EFF_ACT_DISPATCH(prec, T, V = bn_apply_emu<T>(scalar, limit, (T *)out, (const T *)in, q, M, 0));
    return V;
}

extern "C" int bn_eval_emulate(int prec, int scalar, unsigned limit, void *out, const void *in, const float *gamma,
                               const float *beta, const float *rm, const float *rv, int M, int C, float eps,
                               int swish) {
    BnPar q = {};
    q.gamma = gamma, q.beta = beta, q.rm = rm, q.rv = rv, q.C = C, q.swish = swish, q.eps = eps;
    int V = 0;
    EFF_ACT_DISPATCH(prec, T, V = bn_apply_emu<T>(scalar, limit, (T *)out, (const T *)in, q, M, 1));
    return V;
}

template <typename T>
static int bn_back_emu(int scalar, unsigned limit, T *din, const T *dout, const T *in, const BnPar &q, int M) {
    int V = 1;
    bn_rows<T>(M, q.C, !scalar && eff_aligned16(din) && eff_aligned16(dout) && eff_aligned16(in), emu_limit(limit),
               [&](uint32_t blocks, EffWalk wk, size_t e0, auto v) {
                   V = decltype(v)::value;
                   eff_emulate_grid(blocks, [&](uint32_t t) {
                       bn_back_apply_thread<decltype(v)::value, T>(din + e0, dout + e0, in + e0, q, wk, t);
                   });
               });
    return V;
}

extern "C" int bn_back_apply_emulate(int prec, int scalar, unsigned limit, void *din, const void *dout,
                                     const void *in, const float *mean, const float *rstd, const float *gamma,
                                     const float *beta, const double *sums, int M, int C, int swish) {
    BnPar q = {};
    q.gamma = gamma, q.beta = beta, q.mean = mean, q.rstd = rstd, q.sums = sums, q.C = C, q.swish = swish;
    q.invM = 1.0f / (float)M;
    int V = 0;
    EFF_ACT_DISPATCH(prec, T, V = bn_back_emu<T>(scalar, limit, (T *)din, (const T *)dout, (const T *)in, q, M));
    return V;
}

/* The statistics pass of batchnorm_forward_train_cuda (StatsF over the
 * launch grid) and its chunk sums: sums[2C] = sum x, sum x^2. */
template <typename T> static int bn_stats_emu(double *sums, const T *in, int M, int C, unsigned ycap) {
    EffRedGeom g;
    char why[256];
    const int V = eff_red_width<T>(C);
    if (eff_red_geom(&g, 1, M, C, V, why, sizeof why)) return 0;
    double *partial = (double *)malloc((size_t)g.chunks * 2 * C * sizeof(double));
    for (size_t i = 0; i < (size_t)g.chunks * 2 * C; i++) partial[i] = NAN; /* a missed column shows */
    eff_with_vec<T>(V, [&](auto v) {
        constexpr int Vc = decltype(v)::value;
        const StatsF<T> f = {in, C, eff_aligned16(in)};
        eff_colreduce_emulate<Vc>(EffRows<Vc, StatsF<T>>{f}, 1, M, C, g, ycap, partial);
    });
    for (int c = 0; c < C; c++)
        sums[c] = eff_chunk_sum(partial, 0, g.chunks, 0, C, c), sums[C + c] = eff_chunk_sum(partial, 0, g.chunks, 1, C, c);
    free(partial);
    return V;
}

extern "C" int bn_stats_emulate(int prec, unsigned ycap, double *sums, const void *in, int M, int C) {
    int ok = 0;
    EFF_ACT_DISPATCH(prec, T, ok = bn_stats_emu<T>(sums, (const T *)in, M, C, ycap ? ycap : 65535u));
    return ok;
}

/* batchnorm_forward_train_sums_cuda: the finalize, then the output pass
 * (fused with the squeeze when pooled is given). */
template <typename T>
static int bn_train_sums_emu(T *out, float *pooled, const BnPar &q, float *rm, float *rv, const double *sums,
                             const T *in, int N, int M, float momentum, float eps) {
    for (int c = 0; c < q.C; c++)
        bn_stats_finalize(sums[c], sums[q.C + c], M, c, momentum, eps, (float *)q.mean, (float *)q.rstd, rm, rv);
    if (!pooled) return bn_apply_emu<T>(0, 0, out, in, q, M, 0);
    if (N < 1 || M % N) return 0;
    const int HW = M / N, V = eff_red_width<T>(q.C);
    EffRedGeom g;
    char why[256];
    if (eff_red_geom(&g, N, HW, q.C, V, why, sizeof why)) return 0;
    double *partial = (double *)malloc((size_t)N * g.chunks * 2 * q.C * sizeof(double));
    const BnPoolF<T> f = {out, in, q, HW, eff_aligned16(out) && eff_aligned16(in)};
    eff_with_vec<T>(V, [&](auto v) {
        constexpr int Vc = decltype(v)::value;
        eff_colreduce_emulate<Vc>(EffRows<Vc, BnPoolF<T>>{f}, N, HW, q.C, g, 65535, partial);
    });
    for (int n = 0; n < N; n++)
        for (int c = 0; c < q.C; c++) bn_pool_finalize_one(pooled, partial, g.chunks, q.C, 1.0f / (float)HW, n, c);
    free(partial);
    return V;
}

extern "C" int bn_train_sums_emulate(int prec, void *out, float *pooled, float *mean, float *rstd, float *rm,
                                     float *rv, const double *sums, const void *in, const float *gamma,
                                     const float *beta, int N, int M, int C, float momentum, float eps, int swish) {
    BnPar q = {};
    q.gamma = gamma, q.beta = beta, q.mean = mean, q.rstd = rstd, q.C = C, q.swish = swish;
    int V = 0;
    EFF_ACT_DISPATCH(prec, T, V = bn_train_sums_emu<T>((T *)out, pooled, q, rm, rv, sums, (const T *)in, N, M,
                                                       momentum, eps));
    return V;
}
