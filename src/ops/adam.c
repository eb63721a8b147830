/* adam.c: torch.optim.Adam / AdamW, following torch 1.13's _single_tensor_adam
 * operation by operation so results agree to rounding. */
#include "ops.h"

#include <math.h>

void adam_step_cpu(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, size_t n,
                   float lr, float beta1, float beta2, float eps, float weight_decay, int decoupled, long t,
                   double *g_sumsq) {
    const double bc1 = 1.0 - pow(beta1, (double)t), bc2 = 1.0 - pow(beta2, (double)t);
    const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    const float decay = decoupled ? 1.0f - lr * weight_decay : 1.0f;
    const float l2 = decoupled ? 0.0f : weight_decay;
    double s = 0.0;
    #pragma omp parallel for simd schedule(static) reduction(+ : s)
    for (size_t i = 0; i < n; i++) {
        s += (double)g[i] * g[i];
        float pi = p[i] * decay;
        float gi = g[i] + l2 * pi;
        float mi = m[i] * beta1 + (1.0f - beta1) * gi;
        float vi = v[i] * beta2 + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = pi - step_size * (mi / denom);
    }
    if (g_sumsq) *g_sumsq = s;
}
