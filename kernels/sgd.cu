/* sgd.cu: torch.optim.SGD (momentum, dampening 0, optional Nesterov, L2) --
 * the CUDA twin of src/ops/sgd.c. */
#include "cuda_common.cuh"

namespace {
__global__ void sgd_k(float *p, const float *g, float *buf, size_t n, float lr, float momentum, float wd,
                      int nesterov, int first) {
    GRID_STRIDE(i, n) {
        float d = g[i] + wd * p[i];
        if (momentum != 0.0f) {
            const float b = first ? d : buf[i] * momentum + d;
            buf[i] = b;
            d = nesterov ? d + momentum * b : b;
        }
        p[i] -= lr * d;
    }
}
} // namespace

extern "C" void sgd_step_cuda(EffCuda *cu, float *p, const float *g, float *buf, size_t n, float lr, float momentum,
                              float weight_decay, int nesterov, int first) {
    sgd_k<<<eff_blocks(n), EFF_THREADS, 0, cu->stream>>>(p, g, buf, n, lr, momentum, weight_decay, nesterov, first);
    CUDA_LAUNCHED("sgd");
}
