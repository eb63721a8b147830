/* xent.c: softmax cross-entropy, mean over the batch, with label smoothing as
 * torch.nn.CrossEntropyLoss(label_smoothing=eps) defines it:
 * loss = (1-eps) * (-log p_y) + eps * mean_k(-log p_k). */
#include "ops.h"

#include <math.h>

float softmax_xent_forward_cpu(float *probs, const float *logits, const int32_t *labels, int N, int K,
                               float smoothing) {
    double total = 0.0;
    for (int n = 0; n < N; n++) {
        const float *z = logits + (size_t)n * K;
        float *p = probs + (size_t)n * K;
        float zmax = z[0];
        for (int k = 1; k < K; k++) zmax = z[k] > zmax ? z[k] : zmax;
        double sum = 0.0;
        for (int k = 0; k < K; k++) sum += exp((double)z[k] - zmax);
        double lse = zmax + log(sum), mean_nll = 0.0;
        for (int k = 0; k < K; k++) {
            p[k] = (float)exp((double)z[k] - lse);
            mean_nll += lse - z[k];
        }
        mean_nll /= K;
        total += (1.0 - smoothing) * (lse - z[labels[n]]) + smoothing * mean_nll;
    }
    return (float)(total / N);
}

void softmax_xent_backward_cpu(float *dlogits, const float *probs, const int32_t *labels, int N, int K,
                               float smoothing, float scale) {
    const float s = scale / (float)N;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            float target = smoothing / (float)K + (k == labels[n] ? 1.0f - smoothing : 0.0f);
            dlogits[(size_t)n * K + k] = s * (probs[(size_t)n * K + k] - target);
        }
}
