/* backend.h: the op boundary. The model code calls every op and every memory
 * operation through this table, so a backend (CPU: src/backend/backend_cpu.c, CUDA:
 * src/backend/backend_cuda.c + kernels/) swaps in without touching src/model.c.
 * Every entry takes the table itself first (its per-backend state is in
 * be->impl: handles, streams, scratch); the rest of each signature mirrors
 * src/ops/ops.h exactly. All tensor pointers are backend memory. */
#ifndef EFFNET_BACKEND_H
#define EFFNET_BACKEND_H

#include <stddef.h>
#include <stdint.h>

/* Precision of a backend: the storage type of activations and activation
 * gradients (EffAct below) and the input type of its convolutions and GEMMs.
 * Parameters, gradients, optimizer state and BN statistics are always fp32.
 * The CPU backend is always fp32; see docs/gpu.md. */
typedef enum { EFF_PREC_FP32 = 0, EFF_PREC_BF16 = 1, EFF_PREC_FP16 = 2 } EffPrecision;

/* An activation tensor in backend memory: be->act_size bytes per element
 * (float for fp32, bfloat16 / IEEE half for bf16 / fp16). Ops read it and
 * write it in that type; the math inside an op is fp32. The small per-image
 * tensors (SE pooled/hidden/gate, logits, probabilities) stay float. */
typedef void EffAct;

/* The SE's hidden activation (se_forward's act): ReLU (the seed) or SiLU
 * (torchvision). With SiLU, hidden holds 2 x N x Cse floats: the activation,
 * then its input (the backward's derivative needs it). */
enum { EFF_SE_RELU = 0, EFF_SE_SILU = 1 };

/* Per-step scalars that ops read from backend memory when a step is replayed
 * from a captured CUDA graph (set_step_scalar; see docs/gpu.md). */
enum { EFF_STEP_DROP_KEY = 0, EFF_STEP_GRAD_SCALE = 1, EFF_STEP_NSCALARS = 2 };

typedef struct EffBackend {
    const char *name;
    void *impl;          /* backend state (NULL for the CPU backend) */
    EffPrecision precision;
    size_t act_size;     /* bytes per EffAct element: 4, or 2 for bf16/fp16 */
    int needs_im2col;    /* conv2d uses the col scratch (CPU); CUDA does not */
    /* The op slots: every one required except the graph_* group at the end,
     * which a backend has whole or not at all (EFF_BACKEND_OPS below). */
    /* memory */
    void *(*alloc)(const struct EffBackend *be, size_t bytes, const char *what); /* zeroed */
    void (*release)(const struct EffBackend *be, void *p);
    void (*zero)(const struct EffBackend *be, void *p, size_t bytes);
    void (*upload)(const struct EffBackend *be, void *dst, const void *host_src, size_t bytes);
    void (*download)(const struct EffBackend *be, void *host_dst, const void *src, size_t bytes);
    void (*synchronize)(const struct EffBackend *be);
    /* n activations from / to host floats, converted to / from the act type */
    void (*act_upload)(const struct EffBackend *be, EffAct *dst, const float *host_src, size_t n);
    void (*act_download)(const struct EffBackend *be, float *host_dst, const EffAct *src, size_t n);
    /* Record a per-step scalar (EFF_STEP_*; a float is passed as its value
     * cast to uint64_t bits via memcpy) before the ops that use it: the
     * dropout key before the forward, the gradient scale before the backward.
     * The CPU backend uses the values passed to the ops and ignores this. */
    void (*set_step_scalar)(const struct EffBackend *be, int which, uint64_t bits);
    /* ops */
    /* The stem conv: its input is the float image batch, its output an
     * activation. conv2d_backward also gets the forward input (the CPU backend
     * reads its im2col buffer col instead; the CUDA backend reads in). */
    void (*conv2d_forward)(const struct EffBackend *be, EffAct *out, float *col, const float *in, const float *w, int N, int H, int W, int Cin,
                           int Cout, int K, int stride, int pad);
    void (*conv2d_backward)(const struct EffBackend *be, float *din, float *dw, float *col, const EffAct *dout,
                            const float *in, const float *w, int N, int H, int W, int Cin, int Cout, int K,
                            int stride, int pad);
    void (*pwconv_forward)(const struct EffBackend *be, EffAct *out, const EffAct *in, const float *w, int M, int Cin, int Cout);
    void (*pwconv_backward)(const struct EffBackend *be, EffAct *din, float *dw, const EffAct *dout, const EffAct *in, const float *w, int M,
                            int Cin, int Cout);
    void (*dwconv_forward)(const struct EffBackend *be, EffAct *out, const EffAct *in, const float *w, int N, int H, int W, int C, int K,
                           int stride);
    void (*dwconv_backward)(const struct EffBackend *be, EffAct *din, float *dw, const EffAct *dout, const EffAct *in, const float *w, int N,
                            int H, int W, int C, int K, int stride);
    void (*batchnorm_forward_train)(const struct EffBackend *be, EffAct *out, float *mean, float *rstd, float *running_mean, float *running_var,
                                    double *work, const EffAct *in, const float *gamma, const float *beta, int M, int C,
                                    float momentum, float eps, int swish);
    void (*batchnorm_forward_eval)(const struct EffBackend *be, EffAct *out, const EffAct *in, const float *gamma, const float *beta,
                                   const float *running_mean, const float *running_var, int M, int C, float eps,
                                   int swish);
    /* The train forward's output pass alone, from saved batch statistics,
     * bit-identical to it (train.recompute). */
    void (*batchnorm_apply)(const struct EffBackend *be, EffAct *out, const EffAct *in, const float *mean, const float *rstd,
                            const float *gamma, const float *beta, int M, int C, int swish);
    /* out: the train forward's output, read with swish by backends that
     * take the swish derivative from it (the CPU); CUDA recomputes it. */
    void (*batchnorm_backward)(const struct EffBackend *be, EffAct *din, float *dgamma, float *dbeta, double *work,
                               const EffAct *dout, const EffAct *in, const EffAct *out, const float *mean,
                               const float *rstd, const float *gamma, const float *beta, int M, int C, int swish);
    void (*add_inplace)(const struct EffBackend *be, EffAct *y, const EffAct *x, size_t n);
    /* x *= alpha (unscaling fp16 gradients) */
    void (*scale_inplace)(const struct EffBackend *be, float *x, size_t n, float alpha);
    /* SE (src/ops/se.c): b1, b2 are the two convs' biases (NULL: none, the
     * seed; db1, db2 then NULL too); act is EFF_SE_RELU or EFF_SE_SILU. */
    void (*se_forward)(const struct EffBackend *be, EffAct *out, float *pooled, float *hidden, float *gate, const EffAct *in, const float *w1,
                       const float *b1, const float *w2, const float *b2, int N, int HW, int C, int Cse, int act);
    void (*se_backward)(const struct EffBackend *be, EffAct *din, float *dw1, float *db1, float *dw2, float *db2, float *work,
                        const EffAct *dout, const EffAct *in, const float *pooled, const float *hidden, const float *gate,
                        const float *w1, const float *w2, int N, int HW, int C, int Cse, int act);
    /* Dropout of layer `layer` in the step keyed step_key: the mask's key is
     * eff_key3(step_key, EFF_DROP_SALT, layer) (src/rng.h). */
    void (*dropout_forward)(const struct EffBackend *be, EffAct *out, const EffAct *in, size_t n, float p, uint64_t step_key,
                            uint64_t layer);
    void (*dropout_backward)(const struct EffBackend *be, EffAct *din, const EffAct *dout, size_t n, float p, uint64_t step_key,
                             uint64_t layer);
    /* Stochastic depth ("row" mode, torchvision.ops.stochastic_depth) of
     * layer `layer`: image n of the N in [N][per] is dropped (zeroed) when
     * eff_uniform_at(eff_sd_key(step_key, layer), n) < p, else scaled by
     * 1/(1-p). Training only; backward applies the same mask and scale. */
    void (*stochastic_depth_forward)(const struct EffBackend *be, EffAct *out, const EffAct *in, int N, size_t per,
                                     float p, uint64_t step_key, uint64_t layer);
    void (*stochastic_depth_backward)(const struct EffBackend *be, EffAct *din, const EffAct *dout, int N, size_t per,
                                      float p, uint64_t step_key, uint64_t layer);
    void (*gap_forward)(const struct EffBackend *be, EffAct *out, const EffAct *in, int N, int HW, int C);
    void (*gap_backward)(const struct EffBackend *be, EffAct *din, const EffAct *dout, int N, int HW, int C);
    void (*linear_forward)(const struct EffBackend *be, float *out, const EffAct *in, const float *w, const float *b, int N, int Cin, int Cout);
    void (*linear_backward)(const struct EffBackend *be, EffAct *din, float *dw, float *db, const float *dout, const EffAct *in, const float *w,
                            int N, int Cin, int Cout);
    /* Loss: returns the mean loss on the host; probs stay in backend memory. */
    float (*softmax_xent_forward)(const struct EffBackend *be, float *probs, const float *logits, const int32_t *labels, int N, int K,
                                  float smoothing);
    /* scale multiplies d(loss)/d(logits); a replayed CUDA graph reads it from
     * EFF_STEP_GRAD_SCALE instead. */
    void (*softmax_xent_backward)(const struct EffBackend *be, float *dlogits, const float *probs, const int32_t *labels, int N, int K,
                                  float smoothing, float scale);
    /* The optimizer steps; g_sumsq, when not NULL, receives the sum of
     * squares of g (double accumulation): on the CPU from the same pass. */
    void (*adam_step)(const struct EffBackend *be, float *p, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                      float eps, float weight_decay, int decoupled, long t, double *g_sumsq);
    void (*sgd_step)(const struct EffBackend *be, float *p, const float *g, float *buf, size_t n, float lr, float momentum, float weight_decay,
                     int nesterov, int first, double *g_sumsq);
    /* Sum of squares of n floats (double accumulation), returned on the host:
     * the NaN/Inf check on gradients. */
    double (*sumsq)(const struct EffBackend *be, const float *x, size_t n);
    /* Fused train-forward ops (optional as a group: all three set, or all
     * NULL and the model runs the unfused ops). Bit-identical to the
     * sequence they replace, which the model runs otherwise:
     * dwconv_forward_bnstats = dwconv_forward + the statistics pass of the
     * BN after it, leaving the per-chunk sums in bn_work;
     * batchnorm_forward_train_sums = the rest of batchnorm_forward_train,
     * from those sums; with pooled, its output pass is also the SE squeeze
     * (gap_forward into pooled); se_forward_pooled = se_forward after its
     * squeeze. */
    void (*dwconv_forward_bnstats)(const struct EffBackend *be, EffAct *out, double *bn_work, const EffAct *in,
                                   const float *w, int N, int H, int W, int C, int K, int stride);
    void (*batchnorm_forward_train_sums)(const struct EffBackend *be, EffAct *out, float *pooled, float *mean,
                                         float *rstd, float *running_mean, float *running_var, double *bn_work,
                                         const EffAct *in, const float *gamma, const float *beta, int N, int M, int C,
                                         float momentum, float eps, int swish);
    void (*se_forward_pooled)(const struct EffBackend *be, EffAct *out, const float *pooled, float *hidden,
                              float *gate, const EffAct *in, const float *w1, const float *b1, const float *w2,
                              const float *b2, int N, int HW, int C, int Cse, int act);
    /* Step capture (CUDA graphs; NULL in backends without it). Between
     * graph_begin and graph_end the op calls are recorded, not run; they must
     * not allocate or synchronise (an eager warm-up step first sizes all
     * scratch). graph_ready(owner) is true while owner's recording is valid:
     * one recording per backend, and growing any scratch afterwards (e.g. a
     * bigger eval batch) invalidates it, so the caller records again.
     * graph_launch writes the step scalars (EFF_STEP_DROP_KEY, _GRAD_SCALE)
     * and replays the recording; graph_loss waits for it and returns the mean
     * loss its softmax_xent_forward wrote. graph_reset drops the recording.
     * graph_begin and graph_end return 1, or 0 when the capture failed: the
     * backend has printed one warning, nothing was recorded and nothing ran
     * (after graph_begin's 0, do not call graph_end). */
    int (*graph_begin)(const struct EffBackend *be, const void *owner);
    int (*graph_end)(const struct EffBackend *be);
    int (*graph_ready)(const struct EffBackend *be, const void *owner);
    void (*graph_launch)(const struct EffBackend *be, const uint64_t scalars[EFF_STEP_NSCALARS]);
    float (*graph_loss)(const struct EffBackend *be);
    void (*graph_reset)(const struct EffBackend *be);
} EffBackend;

/* Every function-pointer slot of EffBackend, in declaration order (an
 * X-macro, like ggml's op list). REQ(op): required, non-NULL in every
 * backend; the model calls it unconditionally. GRAPH(op): the step-capture
 * group, optional as a whole: all six NULL (CPU) or all six set (CUDA); the
 * model tests graph_begin / graph_reset before using the group. FUSED(op):
 * the fused train-forward group, optional as a whole (set on the CPU and in
 * CUDA); the model tests dwconv_forward_bnstats.
 * tests/test_backend_table.c checks each backend's table against this list,
 * and the asserts below make a new slot that is not listed here (or a listed
 * one out of order) a compile error. Adding an op: kernels/README.md. */
#define EFF_BACKEND_OPS(REQ, GRAPH, FUSED)                                                                              \
    REQ(alloc) REQ(release) REQ(zero) REQ(upload) REQ(download) REQ(synchronize) REQ(act_upload)                 \
    REQ(act_download) REQ(set_step_scalar) REQ(conv2d_forward) REQ(conv2d_backward) REQ(pwconv_forward)          \
    REQ(pwconv_backward) REQ(dwconv_forward) REQ(dwconv_backward) REQ(batchnorm_forward_train)                   \
    REQ(batchnorm_forward_eval) REQ(batchnorm_apply) REQ(batchnorm_backward) REQ(add_inplace) REQ(scale_inplace) REQ(se_forward)      \
    REQ(se_backward) REQ(dropout_forward) REQ(dropout_backward) REQ(stochastic_depth_forward)                    \
    REQ(stochastic_depth_backward) REQ(gap_forward) REQ(gap_backward)                                            \
    REQ(linear_forward) REQ(linear_backward) REQ(softmax_xent_forward) REQ(softmax_xent_backward) REQ(adam_step) \
    REQ(sgd_step) REQ(sumsq)                                                                                     \
    FUSED(dwconv_forward_bnstats) FUSED(batchnorm_forward_train_sums) FUSED(se_forward_pooled)                  \
    GRAPH(graph_begin) GRAPH(graph_end) GRAPH(graph_ready) GRAPH(graph_launch) GRAPH(graph_loss) GRAPH(graph_reset)

/* EFF_OPIDX_<op>: each slot's position in the list; EFF_BACKEND_NOPS: how many. */
#define EFF_OPIDX_(op) EFF_OPIDX_##op,
enum { EFF_BACKEND_OPS(EFF_OPIDX_, EFF_OPIDX_, EFF_OPIDX_) EFF_BACKEND_NOPS };
#undef EFF_OPIDX_
#ifdef __cplusplus
#define EFF_STATIC_ASSERT(c, msg) static_assert(c, msg)
#else
#define EFF_STATIC_ASSERT(c, msg) _Static_assert(c, msg)
#endif
/* The slots are the last members of EffBackend, all function pointers, one
 * after another: the list covers all of them (nothing after the last) ... */
#define EFF_OP_OFFSET_(i) (offsetof(EffBackend, alloc) + (size_t)(i) * sizeof(void (*)(void)))
EFF_STATIC_ASSERT(sizeof(EffBackend) == EFF_OP_OFFSET_(EFF_BACKEND_NOPS),
                  "EffBackend has an op slot (or a member after them) that EFF_BACKEND_OPS does not list: add it there");
/* ... and each listed slot is where the list says (none missing in between). */
#define EFF_OP_AT_(op) EFF_STATIC_ASSERT(offsetof(EffBackend, op) == EFF_OP_OFFSET_(EFF_OPIDX_##op), \
                                         "EFF_BACKEND_OPS is out of step with EffBackend at " #op);
EFF_BACKEND_OPS(EFF_OP_AT_, EFF_OP_AT_, EFF_OP_AT_)
#undef EFF_OP_AT_

/* The plain-C CPU backend (BLAS + OpenMP). */
const EffBackend *eff_backend_cpu(void);

/* The CUDA backend's op slots (impl NULL, fp32), without touching a device:
 * what eff_backend_cuda_create copies into each instance. For
 * tests/test_backend_table.c; NULL in a build without CUDA. */
const EffBackend *eff_backend_cuda_ops(void);

/* The CUDA backend (src/backend/backend_cuda.c), compiled when EFFNET_HAVE_CUDA is
 * defined. eff_cuda_device_count() returns 0 when there is no device (no
 * GPU, no driver installed, CUDA_VISIBLE_DEVICES empty). create binds
 * the given device on the calling thread. deterministic != 0 selects
 * deterministic cuDNN algorithms (all our own reductions are deterministic). */
int eff_cuda_available(void); /* 1 if built with CUDA */
int eff_cuda_device_count(void);
/* The same, with the reason in why ("no NVIDIA driver is installed", ...).
 * Only a machine with no device or no driver at all gives 0; a driver too
 * old for the runtime, or a kernel-module/libcuda mismatch, exits naming the
 * driver's and the runtime's CUDA versions. */
int eff_cuda_device_count_why(char *why, size_t n);
/* CUDA builds only, pure (tests/gpu/test_cuda_host.c): the device count
 * that cudaGetDeviceCount's error code count_err and count mean, given the
 * cudaDriverGetVersion / cudaRuntimeGetVersion values; -1 when CUDA is
 * broken. why gets the reason (for -1: the versions and the fix). */
int eff_cuda_count_verdict(int count_err, int count, int driver, int runtime, char *why, size_t n);
EffBackend *eff_backend_cuda_create(int device, EffPrecision precision, int deterministic);
void eff_backend_cuda_destroy(EffBackend *be);
/* "NVIDIA H200 (GPU-uuid, sm_90, 139.8 GiB, PCI ...)" for the topology log. */
void eff_cuda_describe(int device, char *buf, size_t n);
/* Peak of effnet's own device allocations (the analogue of PyTorch's
 * max_memory_allocated) and the device-wide memory in use now, MiB. */
void eff_cuda_memory(const EffBackend *be, double *alloc_peak_mb, double *device_used_mb);
/* The backend's cudaStream_t, as void * (for the NCCL and data code). */
void *eff_cuda_stream(const EffBackend *be);
/* Name the precision ("fp32", "bf16", "fp16"); parse returns -1 if unknown. */
const char *eff_precision_name(EffPrecision p);
int eff_precision_parse(const char *s);

#endif
