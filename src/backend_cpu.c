/* backend_cpu.c: the CPU backend's op table: src/ops/ plus host memory. */
#include "backend.h"
#include "common.h"
#include "context.h"
#include "ops/ops.h"

#include <omp.h>
#include <string.h>

static void *cpu_alloc(size_t bytes, const char *what) { return eff_alloc_aligned(bytes, what); }
static void cpu_release(void *p) { eff_free(p); }
static void cpu_zero(void *p, size_t bytes) { memset(p, 0, bytes); }
static void cpu_copy(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }
static void cpu_sync(void) {}

static double sumsq_cpu(const float *x, size_t n) {
    double s = 0.0;
    #pragma omp parallel for reduction(+ : s) schedule(static)
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

static const EffBackend cpu_backend = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .release = cpu_release,
    .zero = cpu_zero,
    .upload = cpu_copy,
    .download = cpu_copy,
    .synchronize = cpu_sync,
    .conv2d_forward = conv2d_forward_cpu,
    .conv2d_backward = conv2d_backward_cpu,
    .pwconv_forward = pwconv_forward_cpu,
    .pwconv_backward = pwconv_backward_cpu,
    .dwconv_forward = dwconv_forward_cpu,
    .dwconv_backward = dwconv_backward_cpu,
    .batchnorm_forward_train = batchnorm_forward_train_cpu,
    .batchnorm_forward_eval = batchnorm_forward_eval_cpu,
    .batchnorm_backward = batchnorm_backward_cpu,
    .add_inplace = add_inplace_cpu,
    .se_forward = se_forward_cpu,
    .se_backward = se_backward_cpu,
    .dropout_forward = dropout_forward_cpu,
    .dropout_backward = dropout_backward_cpu,
    .gap_forward = gap_forward_cpu,
    .gap_backward = gap_backward_cpu,
    .linear_forward = linear_forward_cpu,
    .linear_backward = linear_backward_cpu,
    .softmax_xent_forward = softmax_xent_forward_cpu,
    .softmax_xent_backward = softmax_xent_backward_cpu,
    .adam_step = adam_step_cpu,
    .sgd_step = sgd_step_cpu,
    .sumsq = sumsq_cpu,
};

const EffBackend *eff_backend_cpu(void) { return &cpu_backend; }

/* OpenBLAS's own thread control, if the BLAS in use is OpenBLAS. */
extern void openblas_set_num_threads(int) __attribute__((weak));

void eff_set_threads(int threads) {
    if (threads <= 0) return;
    omp_set_num_threads(threads);
    if (openblas_set_num_threads) openblas_set_num_threads(threads);
}
