/* elementwise.c: swish and the residual add. */
#include "ops.h"
#include "fastmath.h"

void swish_forward_cpu(float *restrict out, const float *restrict in, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = in[i] * eff_sigmoidf(in[i]);
}

void swish_backward_cpu(float *restrict din, const float *restrict dout, const float *restrict in, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float s = eff_sigmoidf(in[i]);
        din[i] = dout[i] * s * (1.0f + in[i] * (1.0f - s));
    }
}

void add_inplace_cpu(float *restrict y, const float *restrict x, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}
