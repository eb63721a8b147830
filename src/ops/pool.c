/* pool.c: global average pooling over the spatial positions of NHWC. */
#include "ops.h"

void gap_forward_cpu(float *restrict out, const float *restrict in, int N, int HW, int C) {
    const float inv = 1.0f / (float)HW;
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *restrict o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = 0.0f;
        for (int p = 0; p < HW; p++) {
            const float *restrict x = in + ((size_t)n * HW + p) * C;
            for (int c = 0; c < C; c++) o[c] += x[c];
        }
        for (int c = 0; c < C; c++) o[c] *= inv;
    }
}

void gap_backward_cpu(float *restrict din, const float *restrict dout, int N, int HW, int C) {
    const float inv = 1.0f / (float)HW;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int p = 0; p < HW; p++) {
            float *restrict d = din + ((size_t)n * HW + p) * C;
            const float *restrict g = dout + (size_t)n * C;
            for (int c = 0; c < C; c++) d[c] = g[c] * inv;
        }
}
