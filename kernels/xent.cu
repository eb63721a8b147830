/* xent.cu: softmax cross-entropy with label smoothing, mean over the batch --
 * the CUDA twin of src/ops/xent.c (same double arithmetic per row). The loss
 * stays on the device; per-row losses are summed in row order. */
#include "cuda_common.cuh"

#include <math.h>

namespace {
__global__ void xent_rows(float *probs, double *row_loss, const float *logits, const int32_t *labels, int N, int K,
                          float smoothing) {
    const int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N) return;
    const float *z = logits + (size_t)n * K;
    float *p = probs + (size_t)n * K;
    float zmax = z[0];
    for (int k = 1; k < K; k++) zmax = z[k] > zmax ? z[k] : zmax;
    double sum = 0.0;
    for (int k = 0; k < K; k++) sum += exp((double)z[k] - zmax);
    const double lse = zmax + log(sum);
    double mean_nll = 0.0;
    for (int k = 0; k < K; k++) {
        p[k] = (float)exp((double)z[k] - lse);
        mean_nll += lse - z[k];
    }
    mean_nll /= K;
    int y = labels[n];
    y = y < 0 ? 0 : (y >= K ? K - 1 : y); /* labels are validated on the host */
    row_loss[n] = (1.0 - smoothing) * (lse - z[y]) + smoothing * mean_nll;
}
__global__ void xent_total(float *loss, const double *row_loss, int N) {
    double t = 0.0;
    for (int n = 0; n < N; n++) t += row_loss[n];
    *loss = (float)(t / N);
}
/* s = scale / N; while a step is captured, scale is read from scale_dev. */
__global__ void xent_back(float *dlogits, const float *probs, const int32_t *labels, int N, int K, float smoothing,
                          float s, const uint64_t *scale_dev) {
    if (scale_dev) s = *(const float *)scale_dev / (float)N; /* the float is stored in the slot's first bytes */
    GRID_STRIDE(i, (size_t)N * K) {
        const int n = (int)(i / K), k = (int)(i % K);
        const float target = smoothing / (float)K + (k == labels[n] ? 1.0f - smoothing : 0.0f);
        dlogits[i] = s * (probs[i] - target);
    }
}
} // namespace

extern "C" void softmax_xent_forward_cuda(EffCuda *cu, float *probs, float *loss_dev, const float *logits,
                                          const int32_t *labels, int N, int K, float smoothing) {
    double *rows = eff_cuda_reduce_scratch(cu, (size_t)N);
    xent_rows<<<eff_grid1(cu, "xent_rows", (N + 127LL) / 128, 128), 128, 0, cu->stream>>>(probs, rows, logits, labels,
                                                                                        N, K, smoothing);
    CUDA_LAUNCHED("xent_rows");
    xent_total<<<1, 1, 0, cu->stream>>>(loss_dev, rows, N); /* launch-grid-ok: one thread */
    CUDA_LAUNCHED("xent_total");
}

extern "C" void softmax_xent_backward_cuda(EffCuda *cu, float *dlogits, const float *probs, const int32_t *labels,
                                           int N, int K, float smoothing, float scale) {
    const uint64_t *scale_dev = cu->capturing ? cu->step_dev + EFF_STEP_GRAD_SCALE : NULL;
    xent_back<<<eff_blocks((size_t)N * K), EFF_THREADS, 0, cu->stream>>>(dlogits, probs, labels, N, K, smoothing,
                                                                        scale / (float)N, scale_dev);
    CUDA_LAUNCHED("xent_back");
}
