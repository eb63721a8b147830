/* dropout.c: inverted dropout with a counter-based mask (see ops.h). */
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
