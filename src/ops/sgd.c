/* sgd.c: torch.optim.SGD (momentum, dampening 0, optional Nesterov, L2 decay). */
#include "ops.h"

void sgd_step_cpu(float *restrict p, const float *restrict g, float *restrict buf, size_t n, float lr,
                  float momentum, float weight_decay, int nesterov, int first) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float d = g[i] + weight_decay * p[i];
        if (momentum != 0.0f) {
            float b = first ? d : buf[i] * momentum + d;
            buf[i] = b;
            d = nesterov ? d + momentum * b : b;
        }
        p[i] -= lr * d;
    }
}
