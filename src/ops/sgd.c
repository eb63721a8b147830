/* sgd.c: torch.optim.SGD (momentum, dampening 0, optional Nesterov, L2 decay). */
#include "ops.h"

void sgd_step_cpu(float *restrict p, const float *restrict g, float *restrict buf, size_t n, float lr,
                  float momentum, float weight_decay, int nesterov, int first, double *g_sumsq) {
    double s = 0.0;
    #pragma omp parallel for simd schedule(static) reduction(+ : s)
    for (size_t i = 0; i < n; i++) {
        s += (double)g[i] * g[i];
        float d = g[i] + weight_decay * p[i];
        if (momentum != 0.0f) {
            float b = first ? d : buf[i] * momentum + d;
            buf[i] = b;
            d = nesterov ? d + momentum * b : b;
        }
        p[i] -= lr * d;
    }
    if (g_sumsq) *g_sumsq = s;
}
