/* adam.cu: one step of torch.optim.Adam / AdamW on the flat parameter
 * buffer -- the CUDA twin of src/ops/adam.c (same float operations, the bias
 * corrections computed on the host in double exactly as there). */
#include "cuda_common.cuh"

#include <math.h>

namespace {
__global__ void adam_k(float *p, const float *g, float *m, float *v, size_t n, float beta1, float beta2, float eps,
                       float step_size, float bc2_sqrt, float decay, float l2) {
    GRID_STRIDE(i, n) {
        const float pi = p[i] * decay;
        const float gi = g[i] + l2 * pi;
        const float mi = m[i] * beta1 + (1.0f - beta1) * gi;
        const float vi = v[i] * beta2 + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        const float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = pi - step_size * (mi / denom);
    }
}
} // namespace

extern "C" void adam_step_cuda(EffCuda *cu, float *p, const float *g, float *m, float *v, size_t n, float lr,
                               float beta1, float beta2, float eps, float weight_decay, int decoupled, long t) {
    const double bc1 = 1.0 - pow(beta1, (double)t), bc2 = 1.0 - pow(beta2, (double)t);
    const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    const float decay = decoupled ? 1.0f - lr * weight_decay : 1.0f;
    const float l2 = decoupled ? 0.0f : weight_decay;
    adam_k<<<eff_blocks(n), EFF_THREADS, 0, cu->stream>>>(p, g, m, v, n, beta1, beta2, eps, step_size, bc2_sqrt, decay,
                                                          l2);
    CUDA_LAUNCHED("adam");
}
