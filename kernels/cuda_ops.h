/* cuda_ops.h: the CUDA backend's per-process state and the launchers of the
 * CUDA ops in kernels/ (one file per op, same stem as src/ops/<op>.c).
 *
 * Plain C (includable from C11 and CUDA C). Every launcher is asynchronous on
 * cu->stream and follows the conventions of src/ops/ops.h exactly: NHWC
 * activations, forward ops assign, backward ops assign din and ACCUMULATE
 * parameter gradients, a NULL din skips that gradient. Reductions never use
 * atomics: partial sums over a chunking that depends only on the shapes are
 * reduced in a fixed order, so results are run-to-run identical.
 *
 * Activation arguments are void *: they hold cu->precision's storage type
 * (float, bfloat16 or half; kernels/act.cuh). Everything typed float is fp32
 * in every precision (weights, gradients, statistics, SE vectors, logits). */
#ifndef EFFNET_CUDA_OPS_H
#define EFFNET_CUDA_OPS_H

#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "launch_geom.h" /* EffLaunchLimits: plain C, valid C++ */

#ifdef __cplusplus
extern "C" {
#endif

#include "backend/backend.h" /* EFF_STEP_*, EffPrecision */

/* One convolution shape's cuDNN descriptors and chosen algorithms, made on
 * its first call and reused every step (conv2d.cu). */
typedef struct EffConvPlan {
    int shape[8]; /* N, H, W, Cin, Cout, K, stride, pad */
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    int have_bwd_data; /* bwd_data is chosen on the first call that asks for din (the model never does) */
    int fwd_det, bwd_filter_det, bwd_data_det; /* the chosen algorithm is deterministic (cuDNN's own report) */
    size_t fwd_bytes, bwd_filter_bytes, bwd_data_bytes; /* from cudnnGet*WorkspaceSize */
} EffConvPlan;
#define EFF_CONV_PLANS 8
/* Scratch slots: the converted / transposed weights of conv and GEMM ops, the
 * stem input in the act type, fp32 copies of activations (classifier). */
enum { EFF_SCR_WEIGHT = 0, EFF_SCR_ACT = 1, EFF_SCR_F32 = 2, EFF_CUDA_SCRATCH = 3 };

typedef struct EffCuda {
    int device;
    int precision;      /* EffPrecision: math of convolutions and GEMMs */
    int deterministic;  /* deterministic cuDNN algorithms */
    cudaStream_t stream;
    cublasHandle_t cublas;
    cudnnHandle_t cudnn;
    void *workspace;    /* cuDNN / cuBLAS workspace */
    size_t workspace_bytes;
    double *reduce;     /* device scratch for partial sums (reduce_doubles) */
    size_t reduce_doubles;
    void *scratch[EFF_CUDA_SCRATCH];   /* eff_cuda_scratch: weight copies, type conversions */
    size_t scratch_bytes[EFF_CUDA_SCRATCH];
    double *host_scalar; /* pinned: results returned to the host */
    /* Per-step scalars (EFF_STEP_* of src/backend/backend.h). While a step is being
     * captured (capturing != 0), kernels read them from step_dev, which the
     * graph's first node fills from the pinned step_host at every replay. */
    uint64_t *step_dev, *step_host;
    int capturing;
    int graph_stale; /* set when scratch is reallocated: a recorded graph points at the old buffers */
    EffConvPlan plans[EFF_CONV_PLANS]; /* conv2d.cu; the stem uses one per resolution/batch */
    int nplans;
    cudaEvent_t ev;
    EffLaunchLimits limits; /* this device's grid and block limits (eff_grid3) */
} EffCuda;

/* Error checks: name the call, the error and the fix, then exit non-zero
 * (through EFF_FATAL, so under MPI every rank ends). */
#if defined(__GNUC__)
__attribute__((noreturn))
#endif
void eff_cuda_fail(const char *what, const char *err, const char *file, int line);
/* A CUDA runtime error: eff_cuda_fail, except for the stream-capture errors
 * (cudaErrorStreamCapture*), which can only mean that the CUDA graph capture
 * of a step has become invalid. Those return (the first is reported in one
 * line): nothing was run, and cudaStreamEndCapture then fails, so
 * graph_end reports the failure and the model runs the step eagerly. */
void eff_cuda_error(cudaError_t e, const char *what, const char *file, int line);
/* 1 for the cudaErrorStreamCapture* codes. */
int eff_cuda_is_capture_error(cudaError_t e);
#define CUDA_CHECK(call)                                                                    \
    do {                                                                                    \
        cudaError_t e_ = (call);                                                            \
        if (e_ != cudaSuccess) eff_cuda_error(e_, #call, __FILE__, __LINE__);               \
    } while (0)
#define CUBLAS_CHECK(call)                                                                  \
    do {                                                                                    \
        cublasStatus_t s_ = (call);                                                         \
        if (s_ != CUBLAS_STATUS_SUCCESS) eff_cuda_fail(#call, cublasGetStatusString(s_), __FILE__, __LINE__); \
    } while (0)
#define CUDNN_CHECK(call)                                                                   \
    do {                                                                                    \
        cudnnStatus_t s_ = (call);                                                          \
        if (s_ != CUDNN_STATUS_SUCCESS) eff_cuda_fail(#call, cudnnGetErrorString(s_), __FILE__, __LINE__); \
    } while (0)
/* After a kernel launch: catches bad launch configurations at once. */
#define CUDA_LAUNCHED(name) CUDA_CHECK(cudaGetLastError())

/* Scratch of at least n doubles in cu->reduce (grown on demand, synchronising). */
double *eff_cuda_reduce_scratch(EffCuda *cu, size_t n);
/* Scratch slot `slot` (EFF_SCR_*) of at least `bytes` (grown on demand,
 * synchronising). Growing while a step is captured is a fatal error: the
 * eager warm-up step sizes every scratch first. */
void *eff_cuda_scratch(EffCuda *cu, int slot, size_t bytes);
/* *dst = v on the stream (a one-thread kernel: v travels by value). */
void eff_cuda_set_u64(EffCuda *cu, uint64_t *dst, uint64_t v);
/* cuBLAS GEMM in row-major terms, C[MxN] = alpha*op(A)*op(B) + beta*C, on
 * fp32 matrices: fp32 math, or bf16 tensor cores in bf16 mode. */
void eff_cuda_gemm_rm(EffCuda *cu, int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc);
/* The same with explicit cudaDataType_t codes (as int, to stay plain C): A
 * and B of one type (fp32, bf16 or fp16), C of that type or fp32. Half
 * inputs use fp32 accumulation (CUBLAS_COMPUTE_32F). */
void eff_cuda_gemm_rm_ex(EffCuda *cu, int transA, int transB, int M, int N, int K, float alpha, const void *A,
                         int ab_type, int lda, const void *B, int ldb, float beta, void *C, int c_type, int ldc);

/* conv2d.cu (cuDNN); eff_cuda_conv_plans_free releases the cached plans */
void eff_cuda_conv_plans_free(EffCuda *cu);
/* The algorithms the cached plans chose, one line per plan into buf (shape,
 * each direction's algorithm, deterministic or not); *flags gets the
 * EFF_CONV_NONDET_* bits (conv_pick.h) of every plan; returns how many
 * chosen algorithms are nondeterministic. */
int eff_cuda_conv_algo_report(const EffCuda *cu, char *buf, size_t n, int *flags);
void conv2d_forward_cuda(EffCuda *cu, void *out, const float *in, const float *w, int N, int H, int W, int Cin,
                         int Cout, int K, int stride, int pad);
void conv2d_backward_cuda(EffCuda *cu, float *din, float *dw, const void *dout, const float *in, const float *w,
                          int N, int H, int W, int Cin, int Cout, int K, int stride, int pad);
/* pwconv.cu (cuBLAS) */
void pwconv_forward_cuda(EffCuda *cu, void *out, const void *in, const float *w, int M, int Cin, int Cout);
void pwconv_backward_cuda(EffCuda *cu, void *din, float *dw, const void *dout, const void *in, const float *w,
                          int M, int Cin, int Cout);
/* dwconv.cu */
void dwconv_forward_cuda(EffCuda *cu, void *out, const void *in, const float *w, int N, int H, int W, int C, int K,
                         int stride);
void dwconv_backward_cuda(EffCuda *cu, void *din, float *dw, const void *dout, const void *in, const float *w,
                          int N, int H, int W, int C, int K, int stride);
/* The fused group (backend.h FUSED): the forward + the statistics of the BN
 * after it into bn_work[2C] (device; sum x, then sum x^2), bit for bit the
 * unfused pair's (the same column reduction, reduce.cuh). */
void dwconv_forward_bnstats_cuda(EffCuda *cu, void *out, double *bn_work, const void *in, const float *w, int N,
                                 int H, int W, int C, int K, int stride);
/* batchnorm.cu */
void batchnorm_forward_train_cuda(EffCuda *cu, void *out, float *mean, float *rstd, float *running_mean,
                                  float *running_var, const void *in, const float *gamma, const float *beta, int M,
                                  int C, float momentum, float eps, int swish);
/* The train forward from dwconv_forward_bnstats_cuda's sums [2C]; with
 * pooled [N][C] (M = N HW rows), the output pass is also the SE squeeze, bit
 * for bit gap_forward_f32out_cuda of the output. */
void batchnorm_forward_train_sums_cuda(EffCuda *cu, void *out, float *pooled, float *mean, float *rstd,
                                       float *running_mean, float *running_var, const double *sums, const void *in,
                                       const float *gamma, const float *beta, int N, int M, int C, float momentum,
                                       float eps, int swish);
void batchnorm_apply_cuda(EffCuda *cu, void *out, const void *in, const float *mean, const float *rstd,
                          const float *gamma, const float *beta, int M, int C, int swish);
void batchnorm_forward_eval_cuda(EffCuda *cu, void *out, const void *in, const float *gamma, const float *beta,
                                 const float *running_mean, const float *running_var, int M, int C, float eps,
                                 int swish);
void batchnorm_backward_cuda(EffCuda *cu, void *din, float *dgamma, float *dbeta, const void *dout,
                             const void *in, const float *mean, const float *rstd, const float *gamma,
                             const float *beta, int M, int C, int swish);
/* elementwise.cu */
void add_inplace_cuda(EffCuda *cu, void *y, const void *x, size_t n);
void scale_inplace_cuda(EffCuda *cu, float *x, size_t n, float alpha);
/* se.cu */
/* b1, b2 NULL: no SE biases (the seed); act: EFF_SE_RELU or EFF_SE_SILU (backend.h).
 * The biases and SiLU (torchvision variant) compile but have not yet run on a GPU. */
void se_forward_cuda(EffCuda *cu, void *out, float *pooled, float *hidden, float *gate, const void *in,
                     const float *w1, const float *b1, const float *w2, const float *b2, int N, int HW, int C,
                     int Cse, int act);
/* se_forward_cuda after its squeeze: pooled already holds the per-image means. */
void se_forward_pooled_cuda(EffCuda *cu, void *out, const float *pooled, float *hidden, float *gate, const void *in,
                            const float *w1, const float *b1, const float *w2, const float *b2, int N, int HW, int C,
                            int Cse, int act);
void se_backward_cuda(EffCuda *cu, void *din, float *dw1, float *db1, float *dw2, float *db2, float *work,
                      const void *dout, const void *in, const float *pooled, const float *hidden, const float *gate,
                      const float *w1, const float *w2, int N, int HW, int C, int Cse, int act);
/* dropout.cu */
/* key: eff_drop_key(step_key, layer); while capturing, step_key is read from
 * cu->step_dev[EFF_STEP_DROP_KEY] instead. */
void dropout_forward_cuda(EffCuda *cu, void *out, const void *in, size_t n, float p, uint64_t step_key, uint64_t layer);
/* Stochastic depth over [N][per] (torchvision variant; backward is the same
 * call): key eff_sd_key(step_key, layer), the step key read from
 * cu->step_dev while capturing. Compiled, not yet run on a GPU. */
void stochastic_depth_forward_cuda(EffCuda *cu, void *out, const void *in, int N, size_t per, float p,
                                   uint64_t step_key, uint64_t layer);
/* pool.cu */
void gap_forward_cuda(EffCuda *cu, void *out, const void *in, int N, int HW, int C);
void gap_backward_cuda(EffCuda *cu, void *din, const void *dout, int N, int HW, int C);
/* The SE squeeze: act input, fp32 output. */
void gap_forward_f32out_cuda(EffCuda *cu, float *out, const void *in, int N, int HW, int C);
/* linear.cu */
void linear_forward_cuda(EffCuda *cu, float *out, const void *in, const float *w, const float *b, int N, int Cin,
                         int Cout);
void linear_backward_cuda(EffCuda *cu, void *din, float *dw, float *db, const float *dout, const void *in,
                          const float *w, int N, int Cin, int Cout);
/* xent.cu: the mean loss is written to *loss_dev (device). */
void softmax_xent_forward_cuda(EffCuda *cu, float *probs, float *loss_dev, const float *logits,
                               const int32_t *labels, int N, int K, float smoothing);
/* while capturing, scale is read from cu->step_dev[EFF_STEP_GRAD_SCALE] */
void softmax_xent_backward_cuda(EffCuda *cu, float *dlogits, const float *probs, const int32_t *labels, int N,
                                int K, float smoothing, float scale);
/* adam.cu, sgd.cu */
void adam_step_cuda(EffCuda *cu, float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1,
                    float beta2, float eps, float weight_decay, int decoupled, long t);
void sgd_step_cuda(EffCuda *cu, float *p, const float *g, float *buf, size_t n, float lr, float momentum,
                   float weight_decay, int nesterov, int first);
/* reduce.cu: sum of squares in double, deterministic; written to *out_dev. */
void sumsq_cuda(EffCuda *cu, double *out_dev, const float *x, size_t n);

#ifdef __cplusplus
}
#endif
#endif
