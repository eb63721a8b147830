/* kernel_emu.h: host emulations of CUDA kernels, for tests without a GPU.
 *
 * Each runs the kernel's own __host__ __device__ thread function on the CPU
 * for every thread of the grid its launcher would use (the augment.cu
 * pattern), on host arrays of precision prec's storage type (0 fp32,
 * 1 bf16, 2 fp16: EffPrecision). Each returns the channel width the
 * kernels used (1, 4 or 8: 16-byte vectors when the sizes and pointers
 * allow; scalar != 0 forces 1), or 0 when the launcher would reject the
 * shape. Plain C; built with the CUDA backend. */
#ifndef EFFNET_KERNEL_EMU_H
#define EFFNET_KERNEL_EMU_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* dwconv.cu: the forward and the backward (din NULL-able; dw accumulates)
 * exactly as dwconv_forward_cuda / dwconv_backward_cuda launch them.
 * The width returned is that of the forward / input-gradient kernels. */
int dwconv_forward_emulate(int prec, int scalar, void *out, const void *in, const float *w, int N, int H, int W,
                           int C, int K, int stride);
int dwconv_backward_emulate(int prec, int scalar, void *din, float *dw, const void *dout, const void *in,
                            const float *w, int N, int H, int W, int C, int K, int stride);
/* The weight gradient alone (dw accumulates) with grid.y capped at ycap
 * instead of 65535, so that the kernel's loop over channel tiles beyond
 * grid.y runs at small C. 1, or 0 for a rejected shape or ycap 0. */
int dwconv_wgrad_emulate(int prec, unsigned ycap, float *dw, const void *dout, const void *in, int N, int H, int W,
                         int C, int K, int stride);
/* d of the weight gradient's error bound gamma_d (|dw0| + sum |g x|) for
 * this shape (dw_wgrad_depth, dw_index.cuh), or 0 for a rejected shape. */
int dwconv_wgrad_depth(int N, int H, int W, int C, int K, int stride);

/* The fused group (FUSED in src/backend/backend.h), as the CUDA launchers
 * run them. dwconv.cu: the forward with the statistics of its output,
 * sums[2C] = sum x, sum x^2 (dwconv_forward_bnstats_cuda). batchnorm.cu:
 * the statistics pass of the unfused train forward alone (the reference);
 * the train forward from those sums, its output pass fused with the SE
 * squeeze into pooled [N][C] when pooled is given (M = N HW rows). pool.cu:
 * gap_forward_f32out_cuda (the unfused squeeze). Each returns the columns
 * per thread of its reduction (1, 4 or 8: reduce.cuh), or 0 for a rejected
 * shape; ycap caps grid.y (0: 65535) so that the loop over column tiles
 * runs at small C. */
int dwconv_bnstats_emulate(int prec, void *out, double *sums, const void *in, const float *w, int N, int H, int W,
                           int C, int K, int stride);
int bn_stats_emulate(int prec, unsigned ycap, double *sums, const void *in, int M, int C);
int bn_train_sums_emulate(int prec, void *out, float *pooled, float *mean, float *rstd, float *rm, float *rv,
                          const double *sums, const void *in, const float *gamma, const float *beta, int N, int M,
                          int C, float momentum, float eps, int swish);
int gap_f32_emulate(int prec, float *out, const void *in, int N, int HW, int C);

/* batchnorm.cu: the elementwise passes -- out = bn(in) (+swish) from the
 * batch statistics (mean, rstd) or the running ones, and din from dout, in
 * and sums[2C] (sum dz, sum dz*xhat) -- as the launchers run them, in row
 * pieces of at most `limit` vectors (0: the launchers' 2^31-1). */
int bn_apply_emulate(int prec, int scalar, unsigned limit, void *out, const void *in, const float *mean,
                     const float *rstd, const float *gamma, const float *beta, int M, int C, int swish);
int bn_eval_emulate(int prec, int scalar, unsigned limit, void *out, const void *in, const float *gamma,
                    const float *beta, const float *rm, const float *rv, int M, int C, float eps, int swish);
int bn_back_apply_emulate(int prec, int scalar, unsigned limit, void *din, const void *dout, const void *in,
                          const float *mean, const float *rstd, const float *gamma, const float *beta,
                          const double *sums, int M, int C, int swish);

/* se.cu: the channel scale out = in * gate[n] and din = dout * gate[n] +
 * dpooled[n] / HW, images on grid.y. */
int se_scale_emulate(int prec, int scalar, void *out, const void *in, const float *gate, int N, int HW, int C);
int se_back_apply_emulate(int prec, int scalar, void *din, const void *dout, const float *gate,
                          const float *dpooled, int N, int HW, int C);
/* se.cu: the fused excitation (se_excite: hidden and gate from pooled) and its
 * backward (se_excite_backward: dgate from the dout x in chunk partials,
 * laid out as reduce.cuh's partial[n][chunk][2][C] with q = 0 read; dhid,
 * dpooled; then se_param_grads: dw1, dw2 and the NULL-able db1, db2
 * accumulate), block by block and phase by phase as the launchers run them. */
void se_excite_emulate(float *hidden, float *gate, const float *pooled, const float *w1, const float *b1,
                       const float *w2, const float *b2, int N, int C, int Cse, int act);
void se_excite_backward_emulate(float *dw1, float *db1, float *dw2, float *db2, float *dgate, float *dhid,
                                float *dpooled, const double *partial, int chunks, const float *gate,
                                const float *hidden, const float *pooled, const float *w1, const float *w2, int N,
                                int C, int Cse, int act);

/* elementwise.cu: y += x on activations and x *= alpha on fp32, in pieces
 * of at most `limit` vectors (0: 2^31-1), the n % V tail one by one. */
int add_inplace_emulate(int prec, int scalar, unsigned limit, void *y, const void *x, size_t n);
int scale_inplace_emulate(int scalar, unsigned limit, float *x, size_t n, float alpha);

#ifdef __cplusplus
}
#endif
#endif
