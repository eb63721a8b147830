/* ops.h: the CPU backend's operators -- the op boundary of effnet-hpc.
 *
 * Each op is a free function on raw pointers with explicit shapes, one file per
 * op under src/ops/ (the CUDA twin lives under kernels/ with the same stem).
 * Conventions, stated once:
 *   - Activations are NHWC fp32; "M" is the number of pixels N*H*W.
 *   - Forward ops assign their outputs.
 *   - Backward ops ASSIGN activation gradients (din) and ACCUMULATE (+=)
 *     parameter gradients (dw, dgamma, ...), so gradient accumulation and
 *     micro-batching need no extra buffers. A NULL din skips that gradient.
 *   - Weights are stored in our own layouts (named at each op); the parameter
 *     table converts to/from PyTorch's layout at the I/O boundary.
 *   - Reductions are deterministic: the summation order depends only on the
 *     shapes, never on the number of threads. */
#ifndef EFFNET_OPS_H
#define EFFNET_OPS_H

#include <stddef.h>
#include <stdint.h>

/* conv2d.c -- dense KxK conv (the stem), via im2col + sgemm.
 * w: [K][K][Cin][Cout]. col: [N*Ho*Wo][K*K*Cin], im2col of the input, written
 * by forward and read by backward (backward reuses it as scratch for din). */
void conv2d_forward_cpu(float *out, float *col, const float *in, const float *w,
                        int N, int H, int W, int Cin, int Cout, int K, int stride, int pad);
void conv2d_backward_cpu(float *din, float *dw, float *col, const float *dout, const float *w,
                         int N, int H, int W, int Cin, int Cout, int K, int stride, int pad);
static inline int conv_out_size(int in, int K, int stride, int pad) { return (in + 2 * pad - K) / stride + 1; }

/* pwconv.c -- 1x1 conv: one sgemm over M rows. w: [Cout][Cin] (PyTorch's layout). */
void pwconv_forward_cpu(float *out, const float *in, const float *w, int M, int Cin, int Cout);
void pwconv_backward_cpu(float *din, float *dw, const float *dout, const float *in, const float *w,
                         int M, int Cin, int Cout);

/* dwconv.c -- depthwise KxK conv, padding K/2, no bias. w: [K][K][C]. */
void dwconv_forward_cpu(float *out, const float *in, const float *w,
                        int N, int H, int W, int C, int K, int stride);
void dwconv_backward_cpu(float *din, float *dw, const float *dout, const float *in, const float *w,
                         int N, int H, int W, int C, int K, int stride);
/* The same op on a chosen instruction set (all bit-identical; the _cpu
 * functions above take dwconv_isa_best(), the widest this CPU runs). */
enum { EFF_ISA_SCALAR = 0, EFF_ISA_AVX2 = 1, EFF_ISA_AVX512 = 2 };
int dwconv_isa_best(void);
const char *dwconv_isa_name(int isa);
void dwconv_forward_isa(int isa, float *out, double *bn_work, const float *in, const float *w, int N, int H, int W,
                        int C, int K, int stride);
/* The forward, fused with the statistics pass of the BN that follows it:
 * bn_work receives what batchnorm_forward_train_cpu's first pass would
 * (2 * EFF_BN_CHUNKS * C doubles), for batchnorm_forward_train_sums_cpu. */
void dwconv_forward_bnstats_cpu(float *out, double *bn_work, const float *in, const float *w, int N, int H, int W,
                                int C, int K, int stride);
void dwconv_backward_isa(int isa, float *din, float *dw, const float *dout, const float *in, const float *w, int N,
                         int H, int W, int C, int K, int stride);

/* batchnorm.c -- BatchNorm2d over the M rows of an [M][C] tensor.
 * Train mode normalises with the batch statistics (biased variance), saves
 * mean and rstd = 1/sqrt(var+eps) for backward, and updates the running
 * estimates with the UNBIASED variance, as PyTorch does. swish != 0 fuses
 * y = swish(bn(x)); backward then recomputes bn(x) instead of storing it.
 * Rows are split into EFF_BN_CHUNKS fixed chunks whose partial sums (in
 * double) are reduced in chunk order, so results do not depend on threads.
 * work: 2 * EFF_BN_CHUNKS * C doubles of scratch. */
#define EFF_BN_CHUNKS 64
void batchnorm_forward_train_cpu(float *out, float *mean, float *rstd, float *running_mean, float *running_var,
                                 double *work, const float *in, const float *gamma, const float *beta,
                                 int M, int C, float momentum, float eps, int swish);
/* The train forward after its statistics pass: bn_work holds the per-chunk
 * sums (dwconv_forward_bnstats_cpu; chunk 0 receives the totals). With
 * pooled given, the output pass also averages each image's HW = M / N rows
 * into pooled [N][C] (the SE squeeze,
 * exactly as gap_forward_cpu). Bit-identical to batchnorm_forward_train_cpu. */
void batchnorm_forward_train_sums_cpu(float *out, float *pooled, float *mean, float *rstd, float *running_mean,
                                      float *running_var, double *bn_work, const float *in, const float *gamma,
                                      const float *beta, int N, int M, int C, float momentum, float eps, int swish);
void batchnorm_apply_cpu(float *out, const float *in, const float *mean, const float *rstd, const float *gamma,
                         const float *beta, int M, int C, int swish);
void batchnorm_forward_eval_cpu(float *out, const float *in, const float *gamma, const float *beta,
                                const float *running_mean, const float *running_var, int M, int C, float eps,
                                int swish);
/* out: the train forward's output (used with swish: the swish derivative
 * takes sigmoid(z) = out / z from it; may be NULL without swish). */
void batchnorm_backward_cpu(float *din, float *dgamma, float *dbeta, double *work, const float *dout, const float *in,
                            const float *out, const float *mean, const float *rstd, const float *gamma,
                            const float *beta, int M, int C, int swish);

/* elementwise.c -- swish x*sigmoid(x), and the residual add y += x. */
void swish_forward_cpu(float *out, const float *in, size_t n);
void swish_backward_cpu(float *din, const float *dout, const float *in, size_t n);
void add_inplace_cpu(float *y, const float *x, size_t n);

/* se.c -- squeeze-and-excitation on an [N][HW][C] tensor:
 * pooled = mean_hw(in); h = act(pooled.w1^T + b1); gate = sigmoid(h.w2^T + b2);
 * out = in * gate. w1: [Cse][C], w2: [C][Cse]; b1 [Cse], b2 [C] or both NULL
 * (no biases: the seed; the backward's db1, db2 are then NULL too). act:
 * EFF_SE_RELU (the seed) or EFF_SE_SILU (torchvision), src/backend/backend.h.
 * Forward saves pooled [N][C], hidden [N][Cse] (after the activation; with
 * SiLU followed by another [N][Cse], its input) and gate [N][C].
 * work: N*(2*C+Cse) floats. din may alias dout. With b1 = b2 = NULL and
 * ReLU the arithmetic is exactly the seed's SE. */
void se_forward_cpu(float *out, float *pooled, float *hidden, float *gate, const float *in, const float *w1,
                    const float *b1, const float *w2, const float *b2, int N, int HW, int C, int Cse, int act);
/* se_forward_cpu after its squeeze: pooled [N][C] already holds the
 * per-image means of in (batchnorm_forward_train_sums_cpu's pooled). */
void se_forward_pooled_cpu(float *out, const float *pooled, float *hidden, float *gate, const float *in,
                           const float *w1, const float *b1, const float *w2, const float *b2, int N, int HW, int C,
                           int Cse, int act);
void se_backward_cpu(float *din, float *dw1, float *db1, float *dw2, float *db2, float *work, const float *dout,
                     const float *in, const float *pooled, const float *hidden, const float *gate, const float *w1,
                     const float *w2, int N, int HW, int C, int Cse, int act);

/* dropout.c -- inverted dropout: drop where u < p, scale kept values by 1/(1-p).
 * u = eff_uniform_at(key, i): the mask is a pure function of (key, i), so it is
 * bit-reproducible, thread-count independent, and recomputed in backward
 * instead of stored. out may alias in. */
void dropout_forward_cpu(float *out, const float *in, size_t n, float p, uint64_t key);
void dropout_backward_cpu(float *din, const float *dout, size_t n, float p, uint64_t key);

/* dropout.c -- stochastic depth, "row" mode (torchvision.ops.stochastic_depth):
 * x is [N][per]; image n is zeroed when eff_uniform_at(key, n) < p, else
 * scaled by 1/(1-p). key: eff_sd_key(step_key, layer) (src/rng.h). The
 * backward is the same mask and scale. out may alias in. */
void stochastic_depth_forward_cpu(float *out, const float *in, int N, size_t per, float p, uint64_t key);
void stochastic_depth_backward_cpu(float *din, const float *dout, int N, size_t per, float p, uint64_t key);

/* pool.c -- global average pool [N][HW][C] -> [N][C]. */
void gap_forward_cpu(float *out, const float *in, int N, int HW, int C);
void gap_backward_cpu(float *din, const float *dout, int N, int HW, int C);

/* linear.c -- out = in.w^T + b. w: [Cout][Cin], b: [Cout]. */
void linear_forward_cpu(float *out, const float *in, const float *w, const float *b, int N, int Cin, int Cout);
void linear_backward_cpu(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                         int N, int Cin, int Cout);

/* xent.c -- mean softmax cross-entropy with label smoothing eps (PyTorch's
 * definition). Forward writes probs [N][K] and returns the loss; backward
 * writes dlogits = scale * d(loss)/d(logits). */
float softmax_xent_forward_cpu(float *probs, const float *logits, const int32_t *labels, int N, int K,
                               float smoothing);
void softmax_xent_backward_cpu(float *dlogits, const float *probs, const int32_t *labels, int N, int K,
                               float smoothing, float scale);

/* adam.c -- one step of torch.optim.Adam (weight_decay as coupled L2 when
 * decoupled == 0; AdamW when decoupled == 1). t is the 1-based step count. */
/* The optimizer steps read p, g, m (and v) once and write p, m (and v); the
 * same pass sums g's squares into *g_sumsq when it is not NULL (a double
 * `omp simd` reduction, so it vectorises; the update does not depend on it). */
void adam_step_cpu(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
                   float beta2, float eps, float weight_decay, int decoupled, long t, double *g_sumsq);

/* sgd.c -- one step of torch.optim.SGD with momentum (dampening 0), optional
 * Nesterov, weight_decay as coupled L2. buf is the momentum buffer; on the
 * first step (first != 0) it is set to the gradient, as PyTorch does. */
void sgd_step_cpu(float *p, const float *g, float *buf, size_t n, float lr, float momentum, float weight_decay,
                  int nesterov, int first, double *g_sumsq);

#endif
