/* backend.h: the op boundary. The model code calls every op and every memory
 * operation through this table, so a backend (CPU now, CUDA later) swaps in
 * without touching src/model.c. Signatures mirror src/ops/ops.h exactly; all
 * pointers are backend memory. */
#ifndef EFFNET_BACKEND_H
#define EFFNET_BACKEND_H

#include <stddef.h>
#include <stdint.h>

typedef struct EffBackend {
    const char *name;
    /* memory */
    void *(*alloc)(size_t bytes, const char *what); /* zeroed */
    void (*release)(void *p);
    void (*zero)(void *p, size_t bytes);
    void (*upload)(void *dst, const void *host_src, size_t bytes);
    void (*download)(void *host_dst, const void *src, size_t bytes);
    void (*synchronize)(void);
    /* ops */
    void (*conv2d_forward)(float *out, float *col, const float *in, const float *w, int N, int H, int W, int Cin,
                           int Cout, int K, int stride, int pad);
    void (*conv2d_backward)(float *din, float *dw, float *col, const float *dout, const float *w, int N, int H,
                            int W, int Cin, int Cout, int K, int stride, int pad);
    void (*pwconv_forward)(float *out, const float *in, const float *w, int M, int Cin, int Cout);
    void (*pwconv_backward)(float *din, float *dw, const float *dout, const float *in, const float *w, int M,
                            int Cin, int Cout);
    void (*dwconv_forward)(float *out, const float *in, const float *w, int N, int H, int W, int C, int K,
                           int stride);
    void (*dwconv_backward)(float *din, float *dw, const float *dout, const float *in, const float *w, int N,
                            int H, int W, int C, int K, int stride);
    void (*batchnorm_forward_train)(float *out, float *mean, float *rstd, float *running_mean, float *running_var,
                                    double *work, const float *in, const float *gamma, const float *beta, int M, int C,
                                    float momentum, float eps, int swish);
    void (*batchnorm_forward_eval)(float *out, const float *in, const float *gamma, const float *beta,
                                   const float *running_mean, const float *running_var, int M, int C, float eps,
                                   int swish);
    void (*batchnorm_backward)(float *din, float *dgamma, float *dbeta, double *work, const float *dout, const float *in,
                               const float *mean, const float *rstd, const float *gamma, const float *beta, int M,
                               int C, int swish);
    void (*add_inplace)(float *y, const float *x, size_t n);
    void (*se_forward)(float *out, float *pooled, float *hidden, float *gate, const float *in, const float *w1,
                       const float *w2, int N, int HW, int C, int Cse);
    void (*se_backward)(float *din, float *dw1, float *dw2, float *work, const float *dout, const float *in,
                        const float *pooled, const float *hidden, const float *gate, const float *w1,
                        const float *w2, int N, int HW, int C, int Cse);
    void (*dropout_forward)(float *out, const float *in, size_t n, float p, uint64_t key);
    void (*dropout_backward)(float *din, const float *dout, size_t n, float p, uint64_t key);
    void (*gap_forward)(float *out, const float *in, int N, int HW, int C);
    void (*gap_backward)(float *din, const float *dout, int N, int HW, int C);
    void (*linear_forward)(float *out, const float *in, const float *w, const float *b, int N, int Cin, int Cout);
    void (*linear_backward)(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                            int N, int Cin, int Cout);
    /* Loss: returns the mean loss on the host; probs stay in backend memory. */
    float (*softmax_xent_forward)(float *probs, const float *logits, const int32_t *labels, int N, int K,
                                  float smoothing);
    void (*softmax_xent_backward)(float *dlogits, const float *probs, const int32_t *labels, int N, int K,
                                  float smoothing, float scale);
    void (*adam_step)(float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                      float eps, float weight_decay, int decoupled, long t);
    void (*sgd_step)(float *p, const float *g, float *buf, size_t n, float lr, float momentum, float weight_decay,
                     int nesterov, int first);
    /* Sum of squares of n floats (double accumulation), returned on the host:
     * the NaN/Inf check on gradients. */
    double (*sumsq)(const float *x, size_t n);
} EffBackend;

/* The plain-C CPU backend (BLAS + OpenMP). */
const EffBackend *eff_backend_cpu(void);

#endif
