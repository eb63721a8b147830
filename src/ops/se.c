/* se.c: squeeze-and-excitation (pool, fc1 [+ bias], ReLU or SiLU, fc2
 * [+ bias], sigmoid, scale). Without biases and with ReLU (the seed) every
 * loop below is the seed's, operation for operation. */
#include "ops.h"
#include "fastmath.h"

#include "backend/backend.h"
#include "ops/gemm.h"

void se_forward_cpu(float *restrict out, float *restrict pooled, float *restrict hidden, float *restrict gate,
                    const float *restrict in, const float *w1, const float *b1, const float *w2, const float *b2, int N,
                    int HW, int C, int Cse, int act) {
    gap_forward_cpu(pooled, in, N, HW, C);
    se_forward_pooled_cpu(out, pooled, hidden, gate, in, w1, b1, w2, b2, N, HW, C, Cse, act);
}

/* hidden [N][Cse] = act(hidden + b1); with SiLU its input is kept at hidden + N*Cse. */
static void hidden_act(float *restrict hidden, const float *b1, int N, int Cse, int act) {
    const size_t n = (size_t)N * Cse;
    if (b1)
        for (int i = 0; i < N; i++)
            for (int j = 0; j < Cse; j++) hidden[(size_t)i * Cse + j] += b1[j];
    if (act == EFF_SE_SILU) {
        float *restrict z = hidden + n;
        for (size_t i = 0; i < n; i++) {
            z[i] = hidden[i];
            hidden[i] = z[i] * eff_sigmoidf(z[i]);
        }
    } else {
        for (size_t i = 0; i < n; i++) hidden[i] = hidden[i] > 0.0f ? hidden[i] : 0.0f; /* saved post-ReLU */
    }
}

void se_forward_pooled_cpu(float *restrict out, const float *restrict pooled, float *restrict hidden,
                           float *restrict gate, const float *restrict in, const float *w1, const float *b1,
                           const float *w2, const float *b2, int N, int HW, int C, int Cse, int act) {
    eff_sgemm(0, 1, N, Cse, C, 1.0f, pooled, C, w1, C, 0.0f, hidden, Cse);
    hidden_act(hidden, b1, N, Cse, act);
    eff_sgemm(0, 1, N, C, Cse, 1.0f, hidden, Cse, w2, Cse, 0.0f, gate, C);
    if (b2)
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++) gate[(size_t)n * C + c] += b2[c];
    for (size_t i = 0; i < (size_t)N * C; i++) gate[i] = eff_sigmoidf(gate[i]);
    #pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int p = 0; p < HW; p++) {
            const float *restrict x = in + ((size_t)n * HW + p) * C;
            const float *restrict g = gate + (size_t)n * C;
            float *restrict y = out + ((size_t)n * HW + p) * C;
            for (int c = 0; c < C; c++) y[c] = x[c] * g[c];
        }
}

/* db[j] += sum over images of d[n][j] (images in order: deterministic). */
static void bias_grad(float *db, const float *d, int N, int K) {
    for (int j = 0; j < K; j++) {
        float s = 0.0f;
        for (int n = 0; n < N; n++) s += d[(size_t)n * K + j];
        db[j] += s;
    }
}

/* d(hidden) through the activation: ReLU from its output, SiLU from its input z
 * (d silu / dz = s (1 + z (1 - s)), s = sigmoid(z)). */
static void hidden_act_backward(float *restrict dhid, const float *restrict hidden, int N, int Cse, int act) {
    const size_t n = (size_t)N * Cse;
    if (act == EFF_SE_SILU) {
        const float *restrict z = hidden + n;
        for (size_t i = 0; i < n; i++) {
            const float s = eff_sigmoidf(z[i]);
            dhid[i] *= s * (1.0f + z[i] * (1.0f - s));
        }
    } else {
        for (size_t i = 0; i < n; i++) if (hidden[i] <= 0.0f) dhid[i] = 0.0f;
    }
}

void se_backward_cpu(float *din, float *dw1, float *db1, float *dw2, float *db2, float *work, const float *dout,
                     const float *in, const float *pooled, const float *hidden, const float *gate, const float *w1,
                     const float *w2, int N, int HW, int C, int Cse, int act) {
    float *dgate = work, *dpooled = work + (size_t)N * C, *dhid = work + (size_t)2 * N * C;
    /* d(gate) = sum over positions of dout * in; then through the sigmoid. */
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *restrict dg = dgate + (size_t)n * C;
        for (int c = 0; c < C; c++) dg[c] = 0.0f;
        for (int p = 0; p < HW; p++) {
            const float *restrict g = dout + ((size_t)n * HW + p) * C;
            const float *restrict x = in + ((size_t)n * HW + p) * C;
            for (int c = 0; c < C; c++) dg[c] += g[c] * x[c];
        }
        const float *restrict s = gate + (size_t)n * C;
        for (int c = 0; c < C; c++) dg[c] *= s[c] * (1.0f - s[c]);
    }
    if (db2) bias_grad(db2, dgate, N, C);
    eff_sgemm(1, 0, C, Cse, N, 1.0f, dgate, C, hidden, Cse, 1.0f, dw2, Cse);
    eff_sgemm(0, 0, N, Cse, C, 1.0f, dgate, C, w2, Cse, 0.0f, dhid, Cse);
    hidden_act_backward(dhid, hidden, N, Cse, act);
    if (db1) bias_grad(db1, dhid, N, Cse);
    eff_sgemm(1, 0, Cse, C, N, 1.0f, dhid, Cse, pooled, C, 1.0f, dw1, C);
    eff_sgemm(0, 0, N, C, Cse, 1.0f, dhid, Cse, w1, C, 0.0f, dpooled, C);
    const float inv = 1.0f / (float)HW;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int p = 0; p < HW; p++) {
            const float *g = dout + ((size_t)n * HW + p) * C;
            const float *s = gate + (size_t)n * C, *dp = dpooled + (size_t)n * C;
            float *d = din + ((size_t)n * HW + p) * C; /* may alias g: elementwise */
            for (int c = 0; c < C; c++) d[c] = g[c] * s[c] + dp[c] * inv;
        }
}
