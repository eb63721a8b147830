/* dropout.c: inverted dropout and stochastic depth with counter-based masks (see ops.h). */
#include "ops.h"
#include "../rng.h"

void dropout_forward_cpu(float *out, const float *in, size_t n, float p, uint64_t key) {
    if (p <= 0.0f) {
        if (out != in) for (size_t i = 0; i < n; i++) out[i] = in[i];
        return;
    }
    const float scale = 1.0f / (1.0f - p);
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = eff_uniform_at(key, i) < p ? 0.0f : in[i] * scale;
}

void dropout_backward_cpu(float *din, const float *dout, size_t n, float p, uint64_t key) {
    dropout_forward_cpu(din, dout, n, p, key); /* the same mask and scale */
}

void stochastic_depth_forward_cpu(float *out, const float *in, int N, size_t per, float p, uint64_t key) {
    const float scale = 1.0f / (1.0f - p);
    for (int n = 0; n < N; n++) {
        const float s = p <= 0.0f ? 1.0f : eff_uniform_at(key, (uint64_t)n) < p ? 0.0f : scale;
        const float *x = in + (size_t)n * per;
        float *y = out + (size_t)n * per; /* may alias x: elementwise */
        #pragma omp parallel for schedule(static)
        for (size_t i = 0; i < per; i++) y[i] = x[i] * s;
    }
}

void stochastic_depth_backward_cpu(float *din, const float *dout, int N, size_t per, float p, uint64_t key) {
    stochastic_depth_forward_cpu(din, dout, N, per, p, key); /* the same mask and scale */
}
