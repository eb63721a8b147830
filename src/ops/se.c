/* se.c: squeeze-and-excitation (pool, fc1, ReLU, fc2, sigmoid, scale). */
#include "ops.h"
#include "fastmath.h"

#include "ops/gemm.h"

void se_forward_cpu(float *restrict out, float *restrict pooled, float *restrict hidden, float *restrict gate,
                    const float *restrict in, const float *w1, const float *w2, int N, int HW, int C, int Cse) {
    gap_forward_cpu(pooled, in, N, HW, C);
    se_forward_pooled_cpu(out, pooled, hidden, gate, in, w1, w2, N, HW, C, Cse);
}

void se_forward_pooled_cpu(float *restrict out, const float *restrict pooled, float *restrict hidden,
                           float *restrict gate, const float *restrict in, const float *w1, const float *w2, int N,
                           int HW, int C, int Cse) {
    eff_sgemm(0, 1, N, Cse, C, 1.0f, pooled, C, w1, C, 0.0f, hidden, Cse);
    for (size_t i = 0; i < (size_t)N * Cse; i++) hidden[i] = hidden[i] > 0.0f ? hidden[i] : 0.0f; /* saved post-ReLU */
    eff_sgemm(0, 1, N, C, Cse, 1.0f, hidden, Cse, w2, Cse, 0.0f, gate, C);
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

void se_backward_cpu(float *din, float *dw1, float *dw2, float *work, const float *dout, const float *in,
                     const float *pooled, const float *hidden, const float *gate,
                     const float *w1, const float *w2, int N, int HW, int C, int Cse) {
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
    eff_sgemm(1, 0, C, Cse, N, 1.0f, dgate, C, hidden, Cse, 1.0f, dw2, Cse);
    eff_sgemm(0, 0, N, Cse, C, 1.0f, dgate, C, w2, Cse, 0.0f, dhid, Cse);
    for (size_t i = 0; i < (size_t)N * Cse; i++) if (hidden[i] <= 0.0f) dhid[i] = 0.0f;
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
