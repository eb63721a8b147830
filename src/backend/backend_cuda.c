/* backend_cuda.c: the CUDA backend's op table -- device memory on one stream,
 * and the launchers of kernels/ (kernels/cuda_ops.h). One instance per rank,
 * bound to one device; all of its state (handles, stream, scratch, the
 * allocation record) lives in the instance, nothing is global.
 *
 * Scalars the host needs (the loss, the gradient sum of squares) come back
 * through pinned memory and a stream synchronisation. */
#include "backend/backend.h"
#include "common.h"
#include "conv_pick.h"
#include "cuda_ops.h"
#include "half.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct { void *p; size_t bytes; } AllocRec;

typedef struct CudaBackend {
    EffBackend be; /* first member */
    EffCuda cu;
    float *loss_dev;   /* device scalar: the last mean loss */
    cudaGraph_t graph; /* the captured step (graph_begin/graph_end) */
    cudaGraphExec_t graph_exec;
    const void *graph_owner; /* who recorded it (the model) */
    double *sumsq_dev; /* device scalar: the last sum of squares */
    /* our allocations, for the peak (the analogue of torch.cuda.max_memory_allocated) */
    AllocRec *rec;
    size_t nrec, caprec, bytes_now, bytes_peak;
} CudaBackend;

static CudaBackend *CB(const EffBackend *be) { return (CudaBackend *)be->impl; }
static EffCuda *CU(const EffBackend *be) { return &CB(be)->cu; }

int eff_cuda_available(void) { return 1; }

/* "13.0" from 13000 (the encoding of cudaDriverGetVersion / cudaRuntimeGetVersion). */
static void cuda_version_str(int v, char *buf, size_t n) { snprintf(buf, n, "%d.%d", v / 1000, (v % 1000) / 10); }

int eff_cuda_count_verdict(int count_err, int count, int driver, int runtime, char *why, size_t n) {
    char d[16], r[16];
    cuda_version_str(driver, d, sizeof d);
    cuda_version_str(runtime, r, sizeof r);
    const cudaError_t e = (cudaError_t)count_err;
    if (e == cudaSuccess) {
        snprintf(why, n, count > 0 ? "%d CUDA device(s)" : "no CUDA device: %d visible (CUDA_VISIBLE_DEVICES may "
                 "hide them)", count);
        return count > 0 ? count : 0;
    }
    if (e == cudaErrorNoDevice) {
        snprintf(why, n, "no CUDA device: cudaErrorNoDevice (no GPU, or CUDA_VISIBLE_DEVICES hides them)");
        return 0;
    }
    if (e == cudaErrorInsufficientDriver && driver == 0) { /* no libcuda at all: a machine without a GPU */
        snprintf(why, n, "no CUDA device: no NVIDIA driver is installed (cudaDriverGetVersion reports 0)");
        return 0;
    }
    if (e == cudaErrorInsufficientDriver || e == cudaErrorCallRequiresNewerDriver)
        snprintf(why, n, "the NVIDIA driver supports CUDA %s, but effnet was built with the CUDA %s runtime (%s)\n"
                 "HINT: install a driver for CUDA >= %s, or rebuild effnet with a CUDA toolkit <= %s",
                 d, r, cudaGetErrorName(e), r, d);
    else if (e == cudaErrorSystemDriverMismatch)
        snprintf(why, n, "the NVIDIA kernel module and the user-space driver (libcuda) are different versions "
                 "(cudaErrorSystemDriverMismatch; libcuda supports CUDA %s, the runtime is CUDA %s)\nHINT: reboot "
                 "after a driver update, or make the container's libcuda match the host driver", d, r);
    else
        snprintf(why, n, "cudaGetDeviceCount failed: %s (%s); driver CUDA %s, runtime CUDA %s\nHINT: check "
                 "nvidia-smi and the driver installation", cudaGetErrorString(e), cudaGetErrorName(e), d, r);
    return -1;
}

/* Skips (0) only when there is truly no device; a driver that cannot run
 * this runtime is an error, or every GPU test would "skip" on a GPU node. */
int eff_cuda_device_count_why(char *why, size_t n) {
    int count = 0, driver = 0, runtime = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) (void)cudaGetLastError(); /* not sticky: clear it */
    CUDA_CHECK(cudaDriverGetVersion(&driver));     /* 0, and success, when no driver is installed */
    CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
    const int v = eff_cuda_count_verdict((int)e, count, driver, runtime, why, n);
    EFF_CHECK(v >= 0, "the CUDA backend cannot start: %s", why);
    return v;
}

int eff_cuda_device_count(void) {
    char why[512];
    return eff_cuda_device_count_why(why, sizeof why);
}

void eff_cuda_describe(int device, char *buf, size_t n) {
    struct cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, device));
    char uuid[64];
    int k = snprintf(uuid, sizeof uuid, "GPU-");
    for (int i = 0; i < 16 && k < (int)sizeof uuid - 3; i++) {
        k += snprintf(uuid + k, sizeof uuid - (size_t)k, "%02x", (unsigned char)p.uuid.bytes[i]);
        if (i == 3 || i == 5 || i == 7 || i == 9) uuid[k++] = '-', uuid[k] = 0;
    }
    snprintf(buf, n, "%s (%s, sm_%d%d, %.1f GiB, PCI %04x:%02x:%02x)", p.name, uuid, p.major, p.minor,
             p.totalGlobalMem / 1073741824.0, p.pciDomainID, p.pciBusID, p.pciDeviceID);
}

void eff_cuda_memory(const EffBackend *be, double *alloc_peak_mb, double *device_used_mb) {
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    if (alloc_peak_mb) *alloc_peak_mb = CB(be)->bytes_peak / 1048576.0;
    if (device_used_mb) *device_used_mb = (total_b - free_b) / 1048576.0;
}

/* ---- memory ---------------------------------------------------------------- */

static void *cuda_alloc(const EffBackend *be, size_t bytes, const char *what) {
    CudaBackend *b = CB(be);
    void *p = NULL;
    if (bytes == 0) bytes = 1;
    EFF_CHECK(!b->cu.capturing, "GPU allocation of %s inside a captured CUDA graph (a bug)\nHINT: set train.cuda_graph "
              "= off and report this", what);
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        (void)cudaMemGetInfo(&free_b, &total_b);
        EFF_FATAL("cannot allocate %.1f MiB of GPU memory for %s on device %d: %s (%.1f of %.1f MiB free, %.1f MiB "
                  "held by effnet)\nHINT: lower the per-GPU batch size (train.batch_size) or the resolution",
                  bytes / 1048576.0, what, b->cu.device, cudaGetErrorString(e), free_b / 1048576.0,
                  total_b / 1048576.0, b->bytes_now / 1048576.0);
    }
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, b->cu.stream));
    if (b->nrec == b->caprec) {
        size_t cap = b->caprec ? 2 * b->caprec : 256;
        AllocRec *r = eff_malloc(cap * sizeof *r, "GPU allocation record");
        if (b->nrec) memcpy(r, b->rec, b->nrec * sizeof *r);
        eff_free(b->rec);
        b->rec = r;
        b->caprec = cap;
    }
    b->rec[b->nrec++] = (AllocRec){p, bytes};
    b->bytes_now += bytes;
    if (b->bytes_now > b->bytes_peak) b->bytes_peak = b->bytes_now;
    return p;
}

static void cuda_release(const EffBackend *be, void *p) {
    if (!p) return;
    CudaBackend *b = CB(be);
    EFF_CHECK(!b->cu.capturing, "GPU memory released inside a captured CUDA graph (a bug)");
    for (size_t i = 0; i < b->nrec; i++)
        if (b->rec[i].p == p) {
            b->bytes_now -= b->rec[i].bytes;
            b->rec[i] = b->rec[--b->nrec];
            break;
        }
    CUDA_CHECK(cudaStreamSynchronize(b->cu.stream)); /* no kernel may still use it */
    CUDA_CHECK(cudaFree(p));
}

static void cuda_zero(const EffBackend *be, void *p, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, CU(be)->stream));
}
/* From pageable host memory the copy has left the source buffer when the
 * call returns, so the caller may reuse it at once. */
static void cuda_upload(const EffBackend *be, void *dst, const void *src, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, CU(be)->stream));
}
static void cuda_download(const EffBackend *be, void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, CU(be)->stream));
    CUDA_CHECK(cudaStreamSynchronize(CU(be)->stream));
}
static void cuda_sync(const EffBackend *be) {
    EFF_CHECK(!CU(be)->capturing, "stream synchronisation inside a captured CUDA graph (a bug)");
    CUDA_CHECK(cudaStreamSynchronize(CU(be)->stream));
}

/* ---- activations and step scalars -------------------------------------------- */

/* Host floats <-> the act type, converted on the host (src/half.h) through a
 * staging buffer: used for inputs and for reading activations back in tests. */
static void cuda_act_upload(const EffBackend *be, EffAct *dst, const float *src, size_t n) {
    const int prec = CU(be)->precision;
    if (prec == EFF_PREC_FP32) { cuda_upload(be, dst, src, n * sizeof(float)); return; }
    uint16_t *h = eff_malloc(n * sizeof(uint16_t) + 1, "activation upload staging");
    for (size_t i = 0; i < n; i++) h[i] = prec == EFF_PREC_BF16 ? eff_f32_to_bf16(src[i]) : eff_f32_to_f16(src[i]);
    cuda_upload(be, dst, h, n * sizeof(uint16_t));
    eff_free(h); /* pageable source: the copy has left it on return */
}
static void cuda_act_download(const EffBackend *be, float *dst, const EffAct *src, size_t n) {
    const int prec = CU(be)->precision;
    if (prec == EFF_PREC_FP32) { cuda_download(be, dst, src, n * sizeof(float)); return; }
    uint16_t *h = eff_malloc(n * sizeof(uint16_t) + 1, "activation download staging");
    cuda_download(be, h, src, n * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) dst[i] = prec == EFF_PREC_BF16 ? eff_bf16_to_f32(h[i]) : eff_f16_to_f32(h[i]);
    eff_free(h);
}

/* Eager: the ops take the values as kernel arguments, and the device slot is
 * kept current with a one-thread kernel (by value, so back-to-back steps
 * cannot race). Capturing: the pinned host slot gets the value now and the
 * graph copies pinned -> device at each replay (eff_cuda_graph_launch
 * rewrites the pinned slots first). */
static void cuda_set_step_scalar(const EffBackend *be, int which, uint64_t bits) {
    EffCuda *cu = CU(be);
    EFF_CHECK(which >= 0 && which < EFF_STEP_NSCALARS, "bad step scalar %d", which);
    cu->step_host[which] = bits;
    if (cu->capturing)
        CUDA_CHECK(cudaMemcpyAsync(cu->step_dev + which, cu->step_host + which, sizeof(uint64_t),
                                   cudaMemcpyHostToDevice, cu->stream));
    else
        eff_cuda_set_u64(cu, cu->step_dev + which, bits);
}

/* ---- ops --------------------------------------------------------------------- */

static void cuda_conv2d_forward(const EffBackend *be, EffAct *out, float *col, const float *in, const float *w, int N,
                                int H, int W, int Cin, int Cout, int K, int stride, int pad) {
    (void)col; /* cuDNN needs no im2col buffer */
    conv2d_forward_cuda(CU(be), out, in, w, N, H, W, Cin, Cout, K, stride, pad);
}
static void cuda_conv2d_backward(const EffBackend *be, float *din, float *dw, float *col, const EffAct *dout,
                                 const float *in, const float *w, int N, int H, int W, int Cin, int Cout, int K,
                                 int stride, int pad) {
    (void)col;
    conv2d_backward_cuda(CU(be), din, dw, dout, in, w, N, H, W, Cin, Cout, K, stride, pad);
}
static void cuda_pwconv_forward(const EffBackend *be, EffAct *out, const EffAct *in, const float *w, int M, int Cin,
                                int Cout) {
    pwconv_forward_cuda(CU(be), out, in, w, M, Cin, Cout);
}
static void cuda_pwconv_backward(const EffBackend *be, EffAct *din, float *dw, const EffAct *dout, const EffAct *in,
                                 const float *w, int M, int Cin, int Cout) {
    pwconv_backward_cuda(CU(be), din, dw, dout, in, w, M, Cin, Cout);
}
static void cuda_dwconv_forward(const EffBackend *be, EffAct *out, const EffAct *in, const float *w, int N, int H,
                                int W, int C, int K, int stride) {
    dwconv_forward_cuda(CU(be), out, in, w, N, H, W, C, K, stride);
}
static void cuda_dwconv_backward(const EffBackend *be, EffAct *din, float *dw, const EffAct *dout, const EffAct *in,
                                 const float *w, int N, int H, int W, int C, int K, int stride) {
    dwconv_backward_cuda(CU(be), din, dw, dout, in, w, N, H, W, C, K, stride);
}
static void cuda_bn_train(const EffBackend *be, EffAct *out, float *mean, float *rstd, float *rm, float *rv,
                          double *work, const EffAct *in, const float *g, const float *b, int M, int C,
                          float momentum, float eps, int swish) {
    (void)work; /* the CUDA reductions use the backend's own scratch */
    batchnorm_forward_train_cuda(CU(be), out, mean, rstd, rm, rv, in, g, b, M, C, momentum, eps, swish);
}
/* The fused group (backend.h FUSED): bn_work carries the statistics' sums
 * [2C] from the conv to the BN (device memory, the model's BN scratch). */
static void cuda_dwconv_forward_bnstats(const EffBackend *be, EffAct *out, double *bn_work, const EffAct *in,
                                        const float *w, int N, int H, int W, int C, int K, int stride) {
    dwconv_forward_bnstats_cuda(CU(be), out, bn_work, in, w, N, H, W, C, K, stride);
}
static void cuda_bn_train_sums(const EffBackend *be, EffAct *out, float *pooled, float *mean, float *rstd, float *rm,
                               float *rv, double *bn_work, const EffAct *in, const float *g, const float *b, int N,
                               int M, int C, float momentum, float eps, int swish) {
    batchnorm_forward_train_sums_cuda(CU(be), out, pooled, mean, rstd, rm, rv, bn_work, in, g, b, N, M, C, momentum,
                                      eps, swish);
}
static void cuda_bn_eval(const EffBackend *be, EffAct *out, const EffAct *in, const float *g, const float *b,
                         const float *rm, const float *rv, int M, int C, float eps, int swish) {
    batchnorm_forward_eval_cuda(CU(be), out, in, g, b, rm, rv, M, C, eps, swish);
}
static void cuda_bn_apply(const EffBackend *be, EffAct *out, const EffAct *in, const float *mean, const float *rstd,
                          const float *g, const float *b, int M, int C, int swish) {
    batchnorm_apply_cuda(CU(be), out, in, mean, rstd, g, b, M, C, swish);
}
static void cuda_bn_backward(const EffBackend *be, EffAct *din, float *dg, float *db, double *work,
                             const EffAct *dout, const EffAct *in, const EffAct *out, const float *mean,
                             const float *rstd, const float *g, const float *b, int M, int C, int swish) {
    (void)work;
    (void)out; /* the kernel recomputes sigmoid(z): on the GPU the pass is bound by memory, not the sigmoid */
    batchnorm_backward_cuda(CU(be), din, dg, db, dout, in, mean, rstd, g, b, M, C, swish);
}
static void cuda_add(const EffBackend *be, EffAct *y, const EffAct *x, size_t n) { add_inplace_cuda(CU(be), y, x, n); }
static void cuda_scale(const EffBackend *be, float *x, size_t n, float alpha) { scale_inplace_cuda(CU(be), x, n, alpha); }
static void cuda_se_forward(const EffBackend *be, EffAct *out, float *pooled, float *hidden, float *gate,
                            const EffAct *in, const float *w1, const float *b1, const float *w2, const float *b2,
                            int N, int HW, int C, int Cse, int act) {
    se_forward_cuda(CU(be), out, pooled, hidden, gate, in, w1, b1, w2, b2, N, HW, C, Cse, act);
}
static void cuda_se_forward_pooled(const EffBackend *be, EffAct *out, const float *pooled, float *hidden, float *gate,
                                   const EffAct *in, const float *w1, const float *b1, const float *w2,
                                   const float *b2, int N, int HW, int C, int Cse, int act) {
    se_forward_pooled_cuda(CU(be), out, pooled, hidden, gate, in, w1, b1, w2, b2, N, HW, C, Cse, act);
}
static void cuda_se_backward(const EffBackend *be, EffAct *din, float *dw1, float *db1, float *dw2, float *db2,
                             float *work, const EffAct *dout, const EffAct *in, const float *pooled,
                             const float *hidden, const float *gate, const float *w1, const float *w2, int N, int HW,
                             int C, int Cse, int act) {
    se_backward_cuda(CU(be), din, dw1, db1, dw2, db2, work, dout, in, pooled, hidden, gate, w1, w2, N, HW, C, Cse,
                     act);
}
static void cuda_dropout(const EffBackend *be, EffAct *out, const EffAct *in, size_t n, float p, uint64_t step_key,
                         uint64_t layer) {
    dropout_forward_cuda(CU(be), out, in, n, p, step_key, layer); /* backward: the same mask and scale */
}
/* Stochastic depth (torchvision variant): compiled, not yet run on a GPU. */
static void cuda_stochastic_depth(const EffBackend *be, EffAct *out, const EffAct *in, int N, size_t per, float p,
                                  uint64_t step_key, uint64_t layer) {
    stochastic_depth_forward_cuda(CU(be), out, in, N, per, p, step_key, layer); /* backward: the same mask and scale */
}
static void cuda_gap_forward(const EffBackend *be, EffAct *out, const EffAct *in, int N, int HW, int C) {
    gap_forward_cuda(CU(be), out, in, N, HW, C);
}
static void cuda_gap_backward(const EffBackend *be, EffAct *din, const EffAct *dout, int N, int HW, int C) {
    gap_backward_cuda(CU(be), din, dout, N, HW, C);
}
static void cuda_linear_forward(const EffBackend *be, float *out, const EffAct *in, const float *w, const float *b,
                                int N, int Cin, int Cout) {
    linear_forward_cuda(CU(be), out, in, w, b, N, Cin, Cout);
}
static void cuda_linear_backward(const EffBackend *be, EffAct *din, float *dw, float *db, const float *dout,
                                 const EffAct *in, const float *w, int N, int Cin, int Cout) {
    linear_backward_cuda(CU(be), din, dw, db, dout, in, w, N, Cin, Cout);
}
/* The last mean loss, waiting for the stream (the step's one host round trip). */
static float read_loss(CudaBackend *b) {
    CUDA_CHECK(cudaMemcpyAsync(b->cu.host_scalar, b->loss_dev, sizeof(float), cudaMemcpyDeviceToHost, b->cu.stream));
    CUDA_CHECK(cudaStreamSynchronize(b->cu.stream));
    float loss;
    memcpy(&loss, b->cu.host_scalar, sizeof loss);
    return loss;
}
static float cuda_xent_forward(const EffBackend *be, float *probs, const float *logits, const int32_t *labels, int N,
                               int K, float smoothing) {
    CudaBackend *b = CB(be);
    softmax_xent_forward_cuda(&b->cu, probs, b->loss_dev, logits, labels, N, K, smoothing);
    if (b->cu.capturing) return NAN; /* recorded, not run: graph_loss reads it after the replay */
    return read_loss(b);
}
static void cuda_xent_backward(const EffBackend *be, float *dlogits, const float *probs, const int32_t *labels, int N,
                               int K, float smoothing, float scale) {
    softmax_xent_backward_cuda(CU(be), dlogits, probs, labels, N, K, smoothing, scale);
}
static double cuda_sumsq(const EffBackend *be, const float *x, size_t n);
/* g_sumsq: a separate reduction pass before the step (device bandwidth is
 * plentiful; the CPU backend folds it into the step's pass) */
static void cuda_adam(const EffBackend *be, float *p, const float *g, float *m, float *v, size_t n, float lr,
                      float beta1, float beta2, float eps, float wd, int decoupled, long t, double *g_sumsq) {
    if (g_sumsq) *g_sumsq = cuda_sumsq(be, g, n);
    adam_step_cuda(CU(be), p, g, m, v, n, lr, beta1, beta2, eps, wd, decoupled, t);
}
static void cuda_sgd(const EffBackend *be, float *p, const float *g, float *buf, size_t n, float lr, float momentum,
                     float wd, int nesterov, int first, double *g_sumsq) {
    if (g_sumsq) *g_sumsq = cuda_sumsq(be, g, n);
    sgd_step_cuda(CU(be), p, g, buf, n, lr, momentum, wd, nesterov, first);
}
static double cuda_sumsq(const EffBackend *be, const float *x, size_t n) {
    CudaBackend *b = CB(be);
    EFF_CHECK(!b->cu.capturing, "gradient sum of squares inside a captured CUDA graph (a bug: it returns to the host)");
    sumsq_cuda(&b->cu, b->sumsq_dev, x, n);
    CUDA_CHECK(cudaMemcpyAsync(b->cu.host_scalar, b->sumsq_dev, sizeof(double), cudaMemcpyDeviceToHost,
                               b->cu.stream));
    CUDA_CHECK(cudaStreamSynchronize(b->cu.stream));
    return *b->cu.host_scalar;
}

/* ---- CUDA graph of a step ----------------------------------------------------- */

static void cuda_graph_reset(const EffBackend *be) {
    CudaBackend *b = CB(be);
    if (b->graph_exec) CUDA_CHECK(cudaGraphExecDestroy(b->graph_exec));
    if (b->graph) CUDA_CHECK(cudaGraphDestroy(b->graph));
    b->graph_exec = NULL;
    b->graph = NULL;
    b->graph_owner = NULL;
}
/* A capture that cannot start or finish: one warning, nothing recorded
 * (and nothing ran), and 0, so the model runs its steps eagerly. */
static int capture_failed(CudaBackend *b, const char *call, cudaError_t e) {
    (void)cudaGetLastError(); /* capture errors are not sticky: clear it */
    fprintf(stderr, "WARNING: CUDA graph capture failed: %s -> %s (%s); running every step eagerly instead (same "
            "results, one launch per op)\nHINT: train.cuda_graph = off (effnet bench --eager) skips the attempt; "
            "please report this\n", call, cudaGetErrorString(e), cudaGetErrorName(e));
    b->cu.capturing = 0;
    cuda_graph_reset(&b->be);
    return 0;
}
/* Thread-local capture: only this thread's unsafe calls (allocation,
 * synchronisation) are refused, so loader and NCCL threads are unaffected. */
static int cuda_graph_begin(const EffBackend *be, const void *owner) {
    CudaBackend *b = CB(be);
    EFF_CHECK(!b->cu.capturing, "CUDA graph capture started twice");
    cuda_graph_reset(be);
    b->graph_owner = owner;
    b->cu.graph_stale = 0;
    const cudaError_t e = cudaStreamBeginCapture(b->cu.stream, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) return capture_failed(b, "cudaStreamBeginCapture", e);
    b->cu.capturing = 1;
    return 1;
}
/* An op refused during the recording (eff_cuda_error) shows up here as
 * cudaErrorStreamCaptureInvalidated. */
static int cuda_graph_end(const EffBackend *be) {
    CudaBackend *b = CB(be);
    EFF_CHECK(b->cu.capturing, "CUDA graph capture ended without a start");
    b->cu.capturing = 0;
    cudaError_t e = cudaStreamEndCapture(b->cu.stream, &b->graph);
    if (e != cudaSuccess) {
        b->graph = NULL; /* an invalidated capture returns no graph */
        return capture_failed(b, "cudaStreamEndCapture", e);
    }
    e = cudaGraphInstantiate(&b->graph_exec, b->graph, 0);
    if (e != cudaSuccess) {
        b->graph_exec = NULL;
        return capture_failed(b, "cudaGraphInstantiate", e);
    }
    return 1;
}
static int cuda_graph_ready(const EffBackend *be, const void *owner) {
    const CudaBackend *b = CB(be);
    return b->graph_exec != NULL && b->graph_owner == owner && !b->cu.graph_stale;
}
/* The previous replay has finished (graph_loss synchronised), so the pinned
 * slots its first node reads can be rewritten. */
static void cuda_graph_launch(const EffBackend *be, const uint64_t scalars[EFF_STEP_NSCALARS]) {
    CudaBackend *b = CB(be);
    EFF_CHECK(b->graph_exec && !b->cu.graph_stale, "CUDA graph launched before it was captured, or after the "
              "buffers it uses were reallocated");
    memcpy(b->cu.step_host, scalars, EFF_STEP_NSCALARS * sizeof(uint64_t));
    CUDA_CHECK(cudaGraphLaunch(b->graph_exec, b->cu.stream));
}
static float cuda_graph_loss(const EffBackend *be) { return read_loss(CB(be)); }

/* ---- life cycle ------------------------------------------------------------- */

/* The op slots, shared by every instance; create fills in the rest. */
static const EffBackend cuda_ops = {
    .name = "cuda",
    .impl = NULL,
    .precision = EFF_PREC_FP32,
    .act_size = sizeof(float),
    .needs_im2col = 0,
    .alloc = cuda_alloc,
    .release = cuda_release,
    .zero = cuda_zero,
    .upload = cuda_upload,
    .download = cuda_download,
    .synchronize = cuda_sync,
    .act_upload = cuda_act_upload,
    .act_download = cuda_act_download,
    .set_step_scalar = cuda_set_step_scalar,
    .conv2d_forward = cuda_conv2d_forward,
    .conv2d_backward = cuda_conv2d_backward,
    .pwconv_forward = cuda_pwconv_forward,
    .pwconv_backward = cuda_pwconv_backward,
    .dwconv_forward = cuda_dwconv_forward,
    .dwconv_backward = cuda_dwconv_backward,
    .batchnorm_forward_train = cuda_bn_train,
    .batchnorm_forward_eval = cuda_bn_eval,
    .batchnorm_apply = cuda_bn_apply,
    .batchnorm_backward = cuda_bn_backward,
    .add_inplace = cuda_add,
    .scale_inplace = cuda_scale,
    .se_forward = cuda_se_forward,
    .se_backward = cuda_se_backward,
    .dropout_forward = cuda_dropout,
    .dropout_backward = cuda_dropout,
    .stochastic_depth_forward = cuda_stochastic_depth,
    .stochastic_depth_backward = cuda_stochastic_depth,
    .gap_forward = cuda_gap_forward,
    .gap_backward = cuda_gap_backward,
    .linear_forward = cuda_linear_forward,
    .linear_backward = cuda_linear_backward,
    .softmax_xent_forward = cuda_xent_forward,
    .softmax_xent_backward = cuda_xent_backward,
    .adam_step = cuda_adam,
    .sgd_step = cuda_sgd,
    .sumsq = cuda_sumsq,
    .dwconv_forward_bnstats = cuda_dwconv_forward_bnstats,
    .batchnorm_forward_train_sums = cuda_bn_train_sums,
    .se_forward_pooled = cuda_se_forward_pooled,
    .graph_begin = cuda_graph_begin,
    .graph_end = cuda_graph_end,
    .graph_ready = cuda_graph_ready,
    .graph_launch = cuda_graph_launch,
    .graph_loss = cuda_graph_loss,
    .graph_reset = cuda_graph_reset,
};

const EffBackend *eff_backend_cuda_ops(void) { return &cuda_ops; }

/* The grid and block limits every launch is checked against (eff_grid3). */
static void read_limits(int device, EffLaunchLimits *l) {
    static const enum cudaDeviceAttr grid[3] = {cudaDevAttrMaxGridDimX, cudaDevAttrMaxGridDimY, cudaDevAttrMaxGridDimZ};
    static const enum cudaDeviceAttr block[3] = {cudaDevAttrMaxBlockDimX, cudaDevAttrMaxBlockDimY,
                                                 cudaDevAttrMaxBlockDimZ};
    int v = 0;
    for (int d = 0; d < 3; d++) {
        CUDA_CHECK(cudaDeviceGetAttribute(&v, grid[d], device));
        l->grid[d] = v;
        CUDA_CHECK(cudaDeviceGetAttribute(&v, block[d], device));
        l->block[d] = v;
    }
    CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxThreadsPerBlock, device));
    l->threads = v;
}

EffBackend *eff_backend_cuda_create(int device, EffPrecision precision, int deterministic) {
    char why[512];
    const int n = eff_cuda_device_count_why(why, sizeof why);
    EFF_CHECK(n > 0, "the CUDA backend was requested but no CUDA device is usable: %s\nHINT: set train.backend = "
              "cpu, or run on a GPU node", why);
    EFF_CHECK(device >= 0 && device < n, "CUDA device %d does not exist (%d visible)\nHINT: check "
              "CUDA_VISIBLE_DEVICES and the number of ranks per node", device, n);
    CudaBackend *b = eff_calloc(1, sizeof *b, "CUDA backend");
    EffCuda *cu = &b->cu;
    cu->device = device;
    cu->precision = (int)precision;
    cu->deterministic = deterministic;
    CUDA_CHECK(cudaSetDevice(device));
    read_limits(device, &cu->limits);
    CUDA_CHECK(cudaStreamCreateWithFlags(&cu->stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&cu->cublas));
    CUBLAS_CHECK(cublasSetStream(cu->cublas, cu->stream));
    CUBLAS_CHECK(cublasSetAtomicsMode(cu->cublas, CUBLAS_ATOMICS_NOT_ALLOWED));
    CUDNN_CHECK(cudnnCreate(&cu->cudnn));
    CUDNN_CHECK(cudnnSetStream(cu->cudnn, cu->stream));
    cu->workspace_bytes = (size_t)32 << 20;
    CUDA_CHECK(cudaMalloc(&cu->workspace, cu->workspace_bytes));
    CUBLAS_CHECK(cublasSetWorkspace(cu->cublas, cu->workspace, cu->workspace_bytes));
    CUDA_CHECK(cudaMallocHost((void **)&cu->host_scalar, sizeof(double)));
    CUDA_CHECK(cudaMallocHost((void **)&cu->step_host, EFF_STEP_NSCALARS * sizeof(uint64_t)));
    CUDA_CHECK(cudaMalloc((void **)&cu->step_dev, EFF_STEP_NSCALARS * sizeof(uint64_t)));
    /* on the compute stream: the legacy stream does not order against a non-blocking one */
    CUDA_CHECK(cudaMemsetAsync(cu->step_dev, 0, EFF_STEP_NSCALARS * sizeof(uint64_t), cu->stream));
    memset(cu->step_host, 0, EFF_STEP_NSCALARS * sizeof(uint64_t));
    CUDA_CHECK(cudaEventCreateWithFlags(&cu->ev, cudaEventDisableTiming));
    CUDA_CHECK(cudaMalloc((void **)&b->loss_dev, sizeof(float)));
    CUDA_CHECK(cudaMalloc((void **)&b->sumsq_dev, sizeof(double)));
    (void)eff_cuda_reduce_scratch(cu, (size_t)1 << 20);

    b->be = cuda_ops;
    b->be.impl = b;
    b->be.precision = precision;
    b->be.act_size = precision == EFF_PREC_FP32 ? sizeof(float) : sizeof(uint16_t);
    return &b->be;
}

void *eff_cuda_stream(const EffBackend *be) { return (void *)CU(be)->stream; }

int eff_cuda_conv_algorithms(const EffBackend *be, char *buf, size_t n, int *flags) {
    return eff_cuda_conv_algo_report(CU(be), buf, n, flags);
}

void eff_backend_cuda_destroy(EffBackend *be) {
    if (!be) return;
    CudaBackend *b = CB(be);
    EffCuda *cu = &b->cu;
    CUDA_CHECK(cudaStreamSynchronize(cu->stream));
    cuda_graph_reset(be);
    eff_cuda_conv_plans_free(cu);
    CUDA_CHECK(cudaFree(b->loss_dev));
    CUDA_CHECK(cudaFree(b->sumsq_dev));
    CUDA_CHECK(cudaFree(cu->reduce));
    for (int i = 0; i < EFF_CUDA_SCRATCH; i++) CUDA_CHECK(cudaFree(cu->scratch[i]));
    CUDA_CHECK(cudaFree(cu->step_dev));
    CUDA_CHECK(cudaFreeHost(cu->step_host));
    CUDA_CHECK(cudaFree(cu->workspace));
    CUDA_CHECK(cudaFreeHost(cu->host_scalar));
    CUDA_CHECK(cudaEventDestroy(cu->ev));
    CUDNN_CHECK(cudnnDestroy(cu->cudnn));
    CUBLAS_CHECK(cublasDestroy(cu->cublas));
    CUDA_CHECK(cudaStreamDestroy(cu->stream));
    eff_free(b->rec);
    eff_free(b);
}
