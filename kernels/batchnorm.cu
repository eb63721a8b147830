/* batchnorm.cu: BatchNorm2d over [M][C] (train, eval, backward), optionally
 * fused with swish -- the CUDA twin of src/ops/batchnorm.c. Statistics use
 * the deterministic column reduction of reduce.cuh in double; the elementwise
 * passes use the same float expressions as the CPU op. Backward recomputes
 * bn(x) and the sigmoid instead of storing them (memory-efficient swish).
 * Activations (in, out, dout, din) are of the act type T (act.cuh). */
#include "act.cuh"
#include "reduce.cuh"

#include <math.h>

namespace {

template <typename T> struct StatsF {
    const T *in;
    int C;
    __device__ void operator()(int, long r, int c, double &q0, double &q1) const {
        double v = eff_ld(in[(size_t)r * C + c]);
        q0 += v;
        q1 += v * v;
    }
};

__global__ void bn_finalize_train(const double *partial, int chunks, int M, int C, float momentum, float eps,
                                  float *mean, float *rstd, float *running_mean, float *running_var) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    const double s = eff_chunk_sum(partial, 0, chunks, 0, C, c), ss = eff_chunk_sum(partial, 0, chunks, 1, C, c);
    const double unbias = M > 1 ? (double)M / (M - 1) : 1.0;
    const double mu = s / M;
    double var = ss / M - mu * mu;
    if (var < 0) var = 0;
    mean[c] = (float)mu;
    rstd[c] = (float)(1.0 / sqrt(var + eps));
    running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mu);
    running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * var * unbias);
}

template <typename T>
__global__ void bn_apply(T *out, const T *in, const float *mean, const float *rstd, const float *gamma,
                         const float *beta, size_t n, int C, int swish) {
    GRID_STRIDE(i, n) {
        const int c = (int)(i % C);
        const float z = (eff_ld(in[i]) - mean[c]) * rstd[c] * gamma[c] + beta[c];
        out[i] = eff_st<T>(swish ? z * eff_sigmoid_d(z) : z);
    }
}

template <typename T>
__global__ void bn_eval(T *out, const T *in, const float *gamma, const float *beta, const float *rm,
                        const float *rv, size_t n, int C, float eps, int swish) {
    GRID_STRIDE(i, n) {
        const int c = (int)(i % C);
        const float z = (eff_ld(in[i]) - rm[c]) / sqrtf(rv[c] + eps) * gamma[c] + beta[c];
        out[i] = eff_st<T>(swish ? z * eff_sigmoid_d(z) : z);
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

template <typename T>
__global__ void bn_back_apply(T *din, const T *dout, const T *in, const float *mean, const float *rstd,
                              const float *gamma, const float *beta, const double *sums, size_t n, int C,
                              float invM, int swish) {
    GRID_STRIDE(i, n) {
        const int c = (int)(i % C);
        const float xh = (eff_ld(in[i]) - mean[c]) * rstd[c], g = eff_ld(dout[i]);
        const float dz = swish ? g * eff_swish_grad_d(xh * gamma[c] + beta[c]) : g;
        din[i] = eff_st<T>(gamma[c] * rstd[c] * (dz - invM * (float)sums[c] - xh * invM * (float)sums[C + c]));
    }
}

} // namespace

template <typename T>
static void bn_train_t(EffCuda *cu, T *out, float *mean, float *rstd, float *running_mean, float *running_var,
                       const T *in, const float *gamma, const float *beta, int M, int C, float momentum, float eps,
                       int swish) {
    double *partial;
    const int chunks = eff_colreduce(cu, StatsF<T>{in, C}, 1, M, C, 0, &partial, NULL);
    bn_finalize_train<<<(C + 127) / 128, 128, 0, cu->stream>>>(partial, chunks, M, C, momentum, eps, mean, rstd,
                                                                running_mean, running_var);
    CUDA_LAUNCHED("bn_finalize_train");
    const size_t n = (size_t)M * C;
    bn_apply<T><<<eff_blocks(n), EFF_THREADS, 0, cu->stream>>>(out, in, mean, rstd, gamma, beta, n, C, swish);
    CUDA_LAUNCHED("bn_apply");
}

template <typename T>
static void bn_backward_t(EffCuda *cu, T *din, float *dgamma, float *dbeta, const T *dout, const T *in,
                          const float *mean, const float *rstd, const float *gamma, const float *beta, int M, int C,
                          int swish) {
    double *partial, *sums; /* sums: [0,C) sum dz, [C,2C) sum dz*xhat */
    const int chunks = eff_colreduce(cu, BackF<T>{dout, in, mean, rstd, gamma, beta, C, swish}, 1, M, C,
                                     2 * (size_t)C, &partial, &sums);
    bn_finalize_back<<<(C + 127) / 128, 128, 0, cu->stream>>>(partial, chunks, C, dgamma, dbeta, sums);
    CUDA_LAUNCHED("bn_finalize_back");
    if (!din) return;
    const size_t n = (size_t)M * C;
    bn_back_apply<T><<<eff_blocks(n), EFF_THREADS, 0, cu->stream>>>(din, dout, in, mean, rstd, gamma, beta, sums, n,
                                                                     C, 1.0f / (float)M, swish);
    CUDA_LAUNCHED("bn_back_apply");
}

extern "C" void batchnorm_forward_train_cuda(EffCuda *cu, void *out, float *mean, float *rstd, float *running_mean,
                                             float *running_var, const void *in, const float *gamma,
                                             const float *beta, int M, int C, float momentum, float eps, int swish) {
    EFF_ACT_DISPATCH(cu->precision, T, bn_train_t<T>(cu, (T *)out, mean, rstd, running_mean, running_var,
                                                      (const T *)in, gamma, beta, M, C, momentum, eps, swish));
}

extern "C" void batchnorm_forward_eval_cuda(EffCuda *cu, void *out, const void *in, const float *gamma,
                                            const float *beta, const float *running_mean, const float *running_var,
                                            int M, int C, float eps, int swish) {
    const size_t n = (size_t)M * C;
    EFF_ACT_DISPATCH(cu->precision, T,
                     bn_eval<T><<<eff_blocks(n), EFF_THREADS, 0, cu->stream>>>(
                         (T *)out, (const T *)in, gamma, beta, running_mean, running_var, n, C, eps, swish));
    CUDA_LAUNCHED("bn_eval");
}

extern "C" void batchnorm_backward_cuda(EffCuda *cu, void *din, float *dgamma, float *dbeta, const void *dout,
                                        const void *in, const float *mean, const float *rstd, const float *gamma,
                                        const float *beta, int M, int C, int swish) {
    EFF_ACT_DISPATCH(cu->precision, T, bn_backward_t<T>(cu, (T *)din, dgamma, dbeta, (const T *)dout, (const T *)in,
                                                         mean, rstd, gamma, beta, M, C, swish));
}
