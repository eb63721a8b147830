/* backend_cpu.c: the CPU backend's op table: src/ops/ plus host memory. The
 * table passes itself as the first argument; the CPU ops are stateless, so
 * the wrappers below drop it. */
#include "backend/backend.h"
#include "common.h"
#include "context.h"
#include "ops/ops.h"
#include "rng.h"

#include <omp.h>
#include <string.h>

#define UNUSED_BE (void)be

static void *cpu_alloc(const EffBackend *be, size_t bytes, const char *what) { UNUSED_BE; return eff_alloc_aligned(bytes, what); }
static void cpu_release(const EffBackend *be, void *p) { UNUSED_BE; eff_free(p); }
static void cpu_zero(const EffBackend *be, void *p, size_t bytes) { UNUSED_BE; if (bytes) memset(p, 0, bytes); }
static void cpu_copy(const EffBackend *be, void *dst, const void *src, size_t bytes) { UNUSED_BE; if (bytes) memcpy(dst, src, bytes); }
static void cpu_sync(const EffBackend *be) { UNUSED_BE; }
/* Activations are float on the CPU: conversion is a copy. */
static void cpu_act_upload(const EffBackend *be, EffAct *dst, const float *src, size_t n) { UNUSED_BE; if (n) memcpy(dst, src, n * sizeof(float)); }
static void cpu_act_download(const EffBackend *be, float *dst, const EffAct *src, size_t n) { UNUSED_BE; if (n) memcpy(dst, src, n * sizeof(float)); }
static void cpu_set_step_scalar(const EffBackend *be, int which, uint64_t bits) { UNUSED_BE; (void)which; (void)bits; }

/* Eight double lanes, so the sum vectorises (one in-order chain of double
 * adds ran at one add per 4 cycles: 7 ms for B0's 7.1 M gradients). The lanes
 * and the threads' partial sums are added in a fixed order for a given thread
 * count. */
static double cpu_sumsq(const EffBackend *be, const float *x, size_t n) {
    UNUSED_BE;
    double s = 0.0;
    #pragma omp parallel reduction(+ : s)
    {
        double lane[8] = {0};
        #pragma omp for schedule(static) nowait
        for (size_t i = 0; i < n / 8; i++)
            for (int k = 0; k < 8; k++) lane[k] += (double)x[8 * i + k] * x[8 * i + k];
        s = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
    }
    for (size_t i = n / 8 * 8; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

static void cpu_scale_inplace(const EffBackend *be, float *x, size_t n, float alpha) {
    UNUSED_BE;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] *= alpha;
}

/* One wrapper per op: cpu_<op>(be, args...) -> <op>_cpu(args...). */
#define WRAP(ret, op, params, args) static ret cpu_##op(const EffBackend *be, params) { UNUSED_BE; return op##_cpu args; }
#define P(...) __VA_ARGS__
WRAP(void, conv2d_forward, P(EffAct *out, float *col, const float *in, const float *w, int N, int H, int W, int Cin, int Cout, int K, int stride, int pad),
     (out, col, in, w, N, H, W, Cin, Cout, K, stride, pad))
static void cpu_conv2d_backward(const EffBackend *be, float *din, float *dw, float *col, const EffAct *dout,
                                const float *in, const float *w, int N, int H, int W, int Cin, int Cout, int K,
                                int stride, int pad) {
    (void)be;
    (void)in; /* the forward's im2col in col holds what backward needs */
    conv2d_backward_cpu(din, dw, col, dout, w, N, H, W, Cin, Cout, K, stride, pad);
}
WRAP(void, pwconv_forward, P(EffAct *out, const EffAct *in, const float *w, int M, int Cin, int Cout), (out, in, w, M, Cin, Cout))
WRAP(void, pwconv_backward, P(EffAct *din, float *dw, const EffAct *dout, const EffAct *in, const float *w, int M, int Cin, int Cout),
     (din, dw, dout, in, w, M, Cin, Cout))
WRAP(void, dwconv_forward, P(EffAct *out, const EffAct *in, const float *w, int N, int H, int W, int C, int K, int stride),
     (out, in, w, N, H, W, C, K, stride))
WRAP(void, dwconv_backward, P(EffAct *din, float *dw, const EffAct *dout, const EffAct *in, const float *w, int N, int H, int W, int C, int K, int stride),
     (din, dw, dout, in, w, N, H, W, C, K, stride))
WRAP(void, batchnorm_forward_train, P(EffAct *out, float *mean, float *rstd, float *rm, float *rv, double *work, const EffAct *in, const float *g, const float *b, int M, int C, float momentum, float eps, int swish),
     (out, mean, rstd, rm, rv, work, in, g, b, M, C, momentum, eps, swish))
WRAP(void, batchnorm_forward_eval, P(EffAct *out, const EffAct *in, const float *g, const float *b, const float *rm, const float *rv, int M, int C, float eps, int swish),
     (out, in, g, b, rm, rv, M, C, eps, swish))
WRAP(void, batchnorm_apply, P(EffAct *out, const EffAct *in, const float *mean, const float *rstd, const float *g, const float *b, int M, int C, int swish),
     (out, in, mean, rstd, g, b, M, C, swish))
WRAP(void, batchnorm_backward, P(EffAct *din, float *dg, float *db, double *work, const EffAct *dout, const EffAct *in, const EffAct *out, const float *mean, const float *rstd, const float *g, const float *b, int M, int C, int swish),
     (din, dg, db, work, dout, in, out, mean, rstd, g, b, M, C, swish))
WRAP(void, add_inplace, P(EffAct *y, const EffAct *x, size_t n), (y, x, n))
WRAP(void, se_forward, P(EffAct *out, float *pooled, float *hidden, float *gate, const EffAct *in, const float *w1, const float *b1, const float *w2, const float *b2, int N, int HW, int C, int Cse, int act),
     (out, pooled, hidden, gate, in, w1, b1, w2, b2, N, HW, C, Cse, act))
WRAP(void, se_backward, P(EffAct *din, float *dw1, float *db1, float *dw2, float *db2, float *work, const EffAct *dout, const EffAct *in, const float *pooled, const float *hidden, const float *gate, const float *w1, const float *w2, int N, int HW, int C, int Cse, int act),
     (din, dw1, db1, dw2, db2, work, dout, in, pooled, hidden, gate, w1, w2, N, HW, C, Cse, act))
WRAP(void, dropout_forward, P(EffAct *out, const EffAct *in, size_t n, float p, uint64_t step_key, uint64_t layer),
     (out, in, n, p, eff_drop_key(step_key, layer)))
WRAP(void, dropout_backward, P(EffAct *din, const EffAct *dout, size_t n, float p, uint64_t step_key, uint64_t layer),
     (din, dout, n, p, eff_drop_key(step_key, layer)))
WRAP(void, stochastic_depth_forward, P(EffAct *out, const EffAct *in, int N, size_t per, float p, uint64_t step_key, uint64_t layer),
     (out, in, N, per, p, eff_sd_key(step_key, layer)))
WRAP(void, stochastic_depth_backward, P(EffAct *din, const EffAct *dout, int N, size_t per, float p, uint64_t step_key, uint64_t layer),
     (din, dout, N, per, p, eff_sd_key(step_key, layer)))
WRAP(void, gap_forward, P(EffAct *out, const EffAct *in, int N, int HW, int C), (out, in, N, HW, C))
WRAP(void, gap_backward, P(EffAct *din, const EffAct *dout, int N, int HW, int C), (din, dout, N, HW, C))
WRAP(void, linear_forward, P(float *out, const EffAct *in, const float *w, const float *b, int N, int Cin, int Cout), (out, in, w, b, N, Cin, Cout))
WRAP(void, linear_backward, P(EffAct *din, float *dw, float *db, const float *dout, const EffAct *in, const float *w, int N, int Cin, int Cout),
     (din, dw, db, dout, in, w, N, Cin, Cout))
WRAP(float, softmax_xent_forward, P(float *probs, const float *logits, const int32_t *labels, int N, int K, float smoothing),
     (probs, logits, labels, N, K, smoothing))
WRAP(void, softmax_xent_backward, P(float *dlogits, const float *probs, const int32_t *labels, int N, int K, float smoothing, float scale),
     (dlogits, probs, labels, N, K, smoothing, scale))
WRAP(void, adam_step, P(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2, float eps, float wd, int decoupled, long t, double *s),
     (p, g, m, v, n, lr, beta1, beta2, eps, wd, decoupled, t, s))
WRAP(void, sgd_step, P(float *p, const float *g, float *buf, size_t n, float lr, float momentum, float wd, int nesterov, int first, double *s),
     (p, g, buf, n, lr, momentum, wd, nesterov, first, s))
WRAP(void, dwconv_forward_bnstats, P(EffAct *out, double *work, const EffAct *in, const float *w, int N, int H, int W, int C, int K, int stride),
     (out, work, in, w, N, H, W, C, K, stride))
WRAP(void, batchnorm_forward_train_sums, P(EffAct *out, float *pooled, float *mean, float *rstd, float *rm, float *rv, double *work, const EffAct *in, const float *g, const float *b, int N, int M, int C, float momentum, float eps, int swish),
     (out, pooled, mean, rstd, rm, rv, work, in, g, b, N, M, C, momentum, eps, swish))
WRAP(void, se_forward_pooled, P(EffAct *out, const float *pooled, float *hidden, float *gate, const EffAct *in, const float *w1, const float *b1, const float *w2, const float *b2, int N, int HW, int C, int Cse, int act),
     (out, pooled, hidden, gate, in, w1, b1, w2, b2, N, HW, C, Cse, act))
#undef WRAP
#undef P

static const EffBackend cpu_backend = {
    .name = "cpu",
    .impl = NULL,
    .precision = EFF_PREC_FP32,
    .act_size = sizeof(float),
    .needs_im2col = 1,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .zero = cpu_zero,
    .upload = cpu_copy,
    .download = cpu_copy,
    .synchronize = cpu_sync,
    .act_upload = cpu_act_upload,
    .act_download = cpu_act_download,
    .set_step_scalar = cpu_set_step_scalar,
    .conv2d_forward = cpu_conv2d_forward,
    .conv2d_backward = cpu_conv2d_backward,
    .pwconv_forward = cpu_pwconv_forward,
    .pwconv_backward = cpu_pwconv_backward,
    .dwconv_forward = cpu_dwconv_forward,
    .dwconv_backward = cpu_dwconv_backward,
    .batchnorm_forward_train = cpu_batchnorm_forward_train,
    .batchnorm_forward_eval = cpu_batchnorm_forward_eval,
    .batchnorm_apply = cpu_batchnorm_apply,
    .batchnorm_backward = cpu_batchnorm_backward,
    .add_inplace = cpu_add_inplace,
    .scale_inplace = cpu_scale_inplace,
    .se_forward = cpu_se_forward,
    .se_backward = cpu_se_backward,
    .dwconv_forward_bnstats = cpu_dwconv_forward_bnstats,
    .batchnorm_forward_train_sums = cpu_batchnorm_forward_train_sums,
    .se_forward_pooled = cpu_se_forward_pooled,
    .dropout_forward = cpu_dropout_forward,
    .dropout_backward = cpu_dropout_backward,
    .stochastic_depth_forward = cpu_stochastic_depth_forward,
    .stochastic_depth_backward = cpu_stochastic_depth_backward,
    .gap_forward = cpu_gap_forward,
    .gap_backward = cpu_gap_backward,
    .linear_forward = cpu_linear_forward,
    .linear_backward = cpu_linear_backward,
    .softmax_xent_forward = cpu_softmax_xent_forward,
    .softmax_xent_backward = cpu_softmax_xent_backward,
    .adam_step = cpu_adam_step,
    .sgd_step = cpu_sgd_step,
    .sumsq = cpu_sumsq,
};

const EffBackend *eff_backend_cpu(void) { return &cpu_backend; }

const char *eff_precision_name(EffPrecision p) {
    switch (p) {
    case EFF_PREC_FP32: return "fp32";
    case EFF_PREC_BF16: return "bf16";
    case EFF_PREC_FP16: return "fp16";
    }
    return "?";
}

int eff_precision_parse(const char *s) {
    if (strcmp(s, "fp32") == 0) return EFF_PREC_FP32;
    if (strcmp(s, "bf16") == 0) return EFF_PREC_BF16;
    if (strcmp(s, "fp16") == 0) return EFF_PREC_FP16;
    return -1;
}

/* OpenBLAS's own thread control, if the BLAS in use is OpenBLAS. */
extern void openblas_set_num_threads(int) __attribute__((weak));

void eff_set_threads(int threads) {
    if (threads <= 0) return;
    omp_set_num_threads(threads);
    if (openblas_set_num_threads) openblas_set_num_threads(threads);
}
