/* batchnorm.c: BatchNorm2d (train and eval) over [M][C], optionally fused with
 * swish. Statistics are partial sums (double) over EFF_BN_CHUNKS fixed row
 * chunks, reduced in chunk order: deterministic for any thread count. */
#include "ops.h"
#include "fastmath.h"

#include <math.h>
#include <string.h>

static inline int nchunks(int M) { return M < EFF_BN_CHUNKS ? M : EFF_BN_CHUNKS; }

/* Add the nch chunks' two rows of C partial sums into chunk 0's, in chunk
 * order for every channel (a chunk sum is never -0, so starting from chunk
 * 0's value equals starting from 0). Channels in parallel blocks of 64, the
 * chunks in the inner loop over contiguous channels: vectorised, and on
 * every thread (the channel-outer serial loop it replaces was ~4% of the B0
 * 32 step, with the other thread waiting). */
static void reduce_chunks(double *restrict work, int nch, int C) {
    enum { CB = 64 };
    #pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < C; c0 += CB) {
        const int cn = C - c0 < CB ? C - c0 : CB;
        double *restrict s = work + c0, *restrict ss = work + C + c0;
        for (int k = 1; k < nch; k++) {
            const double *restrict ks = work + (size_t)2 * k * C + c0, *restrict kss = ks + C;
            for (int c = 0; c < cn; c++) { s[c] += ks[c]; ss[c] += kss[c]; }
        }
    }
}

/* d(swish(z))/dz = s + z*s*(1-s), s = sigmoid(z), with s = y / z taken from
 * the forward's output y = z*s instead of a second sigmoid (one division
 * against the exp polynomial and a division: the sigmoid bounds the fused
 * pass, docs/PERFORMANCE.md). y / z is within ~1 ulp of the forward's s;
 * for |z| < 2^-24, sigmoid(z) rounds to 0.5 and y / z could lose bits. */
static inline float swish_grad(float z, float y) {
    float s = fabsf(z) < 0x1p-24f ? 0.5f : y / z;
    return s * (1.0f + z * (1.0f - s));
}

/* One row of the train forward's output pass (and of train.recompute's
 * rebuild, which must match it bit for bit). */
static inline void bn_apply_row(float *restrict y, const float *restrict x, const float *restrict mean,
                                const float *restrict rstd, const float *restrict gamma, const float *restrict beta,
                                int C, int swish) {
    if (swish) {
        for (int c = 0; c < C; c++) {
            float z = (x[c] - mean[c]) * rstd[c] * gamma[c] + beta[c];
            y[c] = z * eff_sigmoidf(z);
        }
    } else {
        for (int c = 0; c < C; c++) y[c] = (x[c] - mean[c]) * rstd[c] * gamma[c] + beta[c];
    }
}

void batchnorm_forward_train_cpu(float *restrict out, float *restrict mean, float *restrict rstd,
                                 float *restrict running_mean, float *restrict running_var, double *restrict work,
                                 const float *restrict in, const float *restrict gamma,
                                 const float *restrict beta, int M, int C, float momentum, float eps, int swish) {
    const int nch = nchunks(M);
    #pragma omp parallel for schedule(static)
    for (int k = 0; k < nch; k++) {
        double *restrict s = work + (size_t)2 * k * C, *restrict ss = s + C;
        memset(s, 0, sizeof(double) * 2 * (size_t)C);
        const int m0 = (int)((long)M * k / nch), m1 = (int)((long)M * (k + 1) / nch);
        for (int m = m0; m < m1; m++) {
            const float *restrict x = in + (size_t)m * C;
            for (int c = 0; c < C; c++) { double v = x[c]; s[c] += v; ss[c] += v * v; }
        }
    }
    batchnorm_forward_train_sums_cpu(out, NULL, mean, rstd, running_mean, running_var, work, in, gamma, beta, 1, M, C,
                                     momentum, eps, swish);
}

/* out = bn(in) row by row; with pooled, image by image, each image's rows
 * also summed in order into pooled and scaled by 1/HW (gap_forward_cpu's
 * arithmetic), while they are in cache. */
static void bn_apply_pass(float *restrict out, float *restrict pooled, const float *restrict in,
                          const float *restrict mean, const float *restrict rstd, const float *restrict gamma,
                          const float *restrict beta, int N, int M, int C, int swish) {
    if (!pooled) {
        #pragma omp parallel for schedule(static)
        for (int m = 0; m < M; m++)
            bn_apply_row(out + (size_t)m * C, in + (size_t)m * C, mean, rstd, gamma, beta, C, swish);
        return;
    }
    const int HW = M / N;
    const float inv = 1.0f / (float)HW;
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *restrict o = pooled + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = 0.0f;
        for (int p = 0; p < HW; p++) {
            float *restrict y = out + ((size_t)n * HW + p) * C;
            bn_apply_row(y, in + ((size_t)n * HW + p) * C, mean, rstd, gamma, beta, C, swish);
            for (int c = 0; c < C; c++) o[c] += y[c];
        }
        for (int c = 0; c < C; c++) o[c] *= inv;
    }
}

void batchnorm_forward_train_sums_cpu(float *restrict out, float *restrict pooled, float *restrict mean,
                                      float *restrict rstd, float *restrict running_mean,
                                      float *restrict running_var, double *restrict work,
                                      const float *restrict in, const float *restrict gamma,
                                      const float *restrict beta, int N, int M, int C, float momentum, float eps,
                                      int swish) {
    const int nch = nchunks(M);
    const double unbias = M > 1 ? (double)M / (M - 1) : 1.0;
    reduce_chunks(work, nch, C);
    for (int c = 0; c < C; c++) {
        const double s = work[c], ss = work[C + c];
        double mu = s / M, var = ss / M - mu * mu;
        if (var < 0) var = 0;
        mean[c] = (float)mu;
        rstd[c] = (float)(1.0 / sqrt(var + eps));
        running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mu);
        running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * var * unbias);
    }
    bn_apply_pass(out, pooled, in, mean, rstd, gamma, beta, N, M, C, swish);
}

/* The train forward's output pass, alone: train.recompute rebuilds a
 * BN+swish output in backward from the saved input and batch statistics
 * with exactly this arithmetic, so the result is bit-identical. */
void batchnorm_apply_cpu(float *restrict out, const float *restrict in, const float *restrict mean,
                         const float *restrict rstd, const float *restrict gamma, const float *restrict beta, int M,
                         int C, int swish) {
    bn_apply_pass(out, NULL, in, mean, rstd, gamma, beta, 1, M, C, swish);
}

void batchnorm_forward_eval_cpu(float *restrict out, const float *restrict in, const float *restrict gamma,
                                const float *restrict beta, const float *restrict running_mean,
                                const float *restrict running_var, int M, int C, float eps, int swish) {
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const float *restrict x = in + (size_t)m * C;
        float *restrict y = out + (size_t)m * C;
        for (int c = 0; c < C; c++) {
            float z = (x[c] - running_mean[c]) / sqrtf(running_var[c] + eps) * gamma[c] + beta[c];
            y[c] = swish ? z * eff_sigmoidf(z) : z;
        }
    }
}

void batchnorm_backward_cpu(float *restrict din, float *restrict dgamma, float *restrict dbeta,
                            double *restrict work, const float *restrict dout, const float *restrict in,
                            const float *restrict out, const float *restrict mean, const float *restrict rstd,
                            const float *restrict gamma, const float *restrict beta, int M, int C, int swish) {
    /* Pass 1: per-chunk sums of dz and dz*xhat, where dz = dout (times the
     * swish derivative when fused). With din given, dz is stored there so
     * pass 2 need not recompute the sigmoid. */
    const int nch = nchunks(M);
    #pragma omp parallel for schedule(static)
    for (int k = 0; k < nch; k++) {
        double *restrict s = work + (size_t)2 * k * C, *restrict sx = s + C;
        memset(s, 0, sizeof(double) * 2 * (size_t)C);
        const int m0 = (int)((long)M * k / nch), m1 = (int)((long)M * (k + 1) / nch);
        for (int m = m0; m < m1; m++) {
            const float *restrict x = in + (size_t)m * C;
            const float *restrict g = dout + (size_t)m * C;
            if (swish) {
                float *restrict dz_out = din ? din + (size_t)m * C : NULL;
                const float *restrict y = out + (size_t)m * C;
                for (int c = 0; c < C; c++) {
                    float xh = (x[c] - mean[c]) * rstd[c];
                    float dz = g[c] * swish_grad(xh * gamma[c] + beta[c], y[c]);
                    if (dz_out) dz_out[c] = dz;
                    s[c] += dz;
                    sx[c] += (double)(dz * xh);
                }
            } else {
                for (int c = 0; c < C; c++) {
                    float xh = (x[c] - mean[c]) * rstd[c];
                    s[c] += g[c];
                    sx[c] += (double)(g[c] * xh);
                }
            }
        }
    }
    /* Reduce the chunks into work's first row: [0,C) sum dz, [C,2C) sum dz*xhat. */
    reduce_chunks(work, nch, C);
    for (int c = 0; c < C; c++) {
        dbeta[c] += (float)work[c];
        dgamma[c] += (float)work[C + c];
    }
    if (!din) return;
    const double *sum_dz = work, *sum_dzx = work + C;
    const float invM = 1.0f / (float)M;
    /* Pass 2: dx = gamma*rstd*(dz - mean(dz) - xhat*mean(dz*xhat)). */
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const float *restrict x = in + (size_t)m * C;
        const float *restrict dz = swish ? din + (size_t)m * C : dout + (size_t)m * C;
        float *dx = din + (size_t)m * C; /* may equal dz: elementwise */
        for (int c = 0; c < C; c++) {
            float xh = (x[c] - mean[c]) * rstd[c];
            dx[c] = gamma[c] * rstd[c] * (dz[c] - invM * (float)sum_dz[c] - xh * invM * (float)sum_dzx[c]);
        }
    }
}
