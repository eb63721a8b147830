/* conv2d.cu: the dense KxK stem convolution through cuDNN in NHWC -- the CUDA
 * twin of src/ops/conv2d.c.
 *
 * Our weight layout is [K][K][Cin][Cout] (HWIO); cuDNN's NHWC filter format
 * is [Cout][K][K][Cin] (KRSC), so the (tiny) weights are transposed into
 * scratch for each call, and the weight gradient comes back through the same
 * scratch and is ADDED to dw in our layout. Descriptors and algorithms are
 * chosen once per shape and cached in cu->plans. fp32 mode: fp32 tensors and
 * plain FMA math (no TF32, so results match the CPU). bf16/fp16 mode: the
 * output is an activation of the act type T, the fp32 input image and the
 * weights are converted to T in scratch, and cuDNN runs T tensors with fp32
 * accumulation on tensor cores. cuDNN requires the filter gradient in T too:
 * it is rounded to T once (as PyTorch autocast's gradient of the 16-bit
 * weight copy is) and then added to the fp32 gradient. With cu->deterministic, the
 * algorithms cuDNN reports as deterministic are used where one exists (else
 * the fastest, with a warning: conv_pick.h). */
#include "act.cuh"
#include "conv_pick.h"

#include <stdio.h>
#include <string.h>

namespace {

template <typename T> __global__ void hwio_to_khwc(T *dst, const float *w, int K, int Cin, int Cout) {
    GRID_STRIDE(i, (size_t)K * K * Cin * Cout) {
        const int co = (int)(i % Cout);
        const size_t khwci = i / Cout; /* (kh*K + kw)*Cin + ci */
        dst[(size_t)co * K * K * Cin + khwci] = eff_st<T>(w[i]);
    }
}

template <typename T> __global__ void khwc_add_to_hwio(float *dw, const T *src, int K, int Cin, int Cout) {
    GRID_STRIDE(i, (size_t)K * K * Cin * Cout) {
        const int co = (int)(i % Cout);
        dw[i] += eff_ld(src[(size_t)co * K * K * Cin + i / Cout]);
    }
}

cudnnDataType_t cudnn_type(int precision) {
    return precision == 1 ? CUDNN_DATA_BFLOAT16 : precision == 2 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
}

void ensure_workspace(EffCuda *cu, size_t bytes) {
    if (bytes <= cu->workspace_bytes) return;
    if (cu->capturing)
        eff_cuda_fail("ensure_workspace", "the cuDNN workspace had to grow inside a captured CUDA graph (set "
                      "train.cuda_graph = off and report this)", __FILE__, __LINE__);
    CUDA_CHECK(cudaStreamSynchronize(cu->stream));
    cu->graph_stale = 1;
    if (cu->workspace) CUDA_CHECK(cudaFree(cu->workspace));
    CUDA_CHECK(cudaMalloc(&cu->workspace, bytes));
    cu->workspace_bytes = bytes;
    CUBLAS_CHECK(cublasSetWorkspace(cu->cublas, cu->workspace, cu->workspace_bytes));
}

template <typename Perf> EffAlgoCand candidate(const Perf &p) {
    EffAlgoCand c;
    c.algo = (int)p.algo;
    c.ok = p.status == CUDNN_STATUS_SUCCESS;
    c.deterministic = p.determinism == CUDNN_DETERMINISTIC;
    c.workspace = 0;
    return c;
}

/* The candidates cuDNN's heuristics rank for each direction, fastest first,
 * with the workspace each really needs (cudnnGet*WorkspaceSize; a candidate
 * whose size query fails is unusable). */
int fwd_candidates(EffCuda *cu, const EffConvPlan *p, EffAlgoCand *c) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int got = 0;
    CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(cu->cudnn, p->x, p->w, p->conv, p->y,
                                                       CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf));
    for (int i = 0; i < got; i++) {
        c[i] = candidate(perf[i]);
        c[i].ok = c[i].ok && cudnnGetConvolutionForwardWorkspaceSize(cu->cudnn, p->x, p->w, p->conv, p->y, perf[i].algo,
                                                                     &c[i].workspace) == CUDNN_STATUS_SUCCESS;
    }
    return got;
}
int bwd_filter_candidates(EffCuda *cu, const EffConvPlan *p, EffAlgoCand *c) {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int got = 0;
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(cu->cudnn, p->x, p->y, p->conv, p->w,
                                                              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, perf));
    for (int i = 0; i < got; i++) {
        c[i] = candidate(perf[i]);
        c[i].ok = c[i].ok && cudnnGetConvolutionBackwardFilterWorkspaceSize(cu->cudnn, p->x, p->y, p->conv, p->w,
                                                                            perf[i].algo, &c[i].workspace) ==
                                 CUDNN_STATUS_SUCCESS;
    }
    return got;
}
int bwd_data_candidates(EffCuda *cu, const EffConvPlan *p, EffAlgoCand *c) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int got = 0;
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(cu->cudnn, p->w, p->y, p->conv, p->x,
                                                            CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, perf));
    for (int i = 0; i < got; i++) {
        c[i] = candidate(perf[i]);
        c[i].ok = c[i].ok && cudnnGetConvolutionBackwardDataWorkspaceSize(cu->cudnn, p->w, p->y, p->conv, p->x,
                                                                          perf[i].algo, &c[i].workspace) ==
                                 CUDNN_STATUS_SUCCESS;
    }
    return got;
}

const char *precision_name(int precision) { return precision == 1 ? "bf16" : precision == 2 ? "fp16" : "fp32"; }

/* The algorithm for one direction (eff_conv_pick); *bytes gets its
 * workspace. Falling back to a nondeterministic one is reported in one
 * line, naming the algorithm chosen. */
int choose(const EffCuda *cu, const EffConvPlan *p, const EffAlgoCand *c, int n, const char *what, size_t *bytes,
           int *deterministic) {
    const int *s = p->shape;
    char shape[160];
    snprintf(shape, sizeof shape, "%s NHWC N=%d %dx%d Cin=%d -> Cout=%d, K=%d stride %d pad %d",
             precision_name(cu->precision), s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]);
    int fell_back = 0;
    const int i = eff_conv_pick(c, n, cu->deterministic, EFF_CONV_MAX_WORKSPACE, &fell_back);
    if (i < 0) {
        char why[400];
        snprintf(why, sizeof why, "cuDNN offered no usable algorithm for %s (%d candidates; none both supported and "
                 "within %zu MiB of workspace)", shape, n, EFF_CONV_MAX_WORKSPACE >> 20);
        eff_cuda_fail(what, why, __FILE__, __LINE__); /* noreturn */
    }
    if (fell_back)
        fprintf(stderr, "WARNING: %s: no deterministic cuDNN algorithm for %s; using the fastest nondeterministic "
                "one, algorithm %d (%zu bytes of workspace): this op may differ run to run in the last bits\n",
                what, shape, c[i].algo, c[i].workspace);
    *bytes = c[i].workspace;
    *deterministic = c[i].deterministic;
    return c[i].algo;
}

void make_descriptors(EffCuda *cu, EffConvPlan *p) {
    const int N = p->shape[0], H = p->shape[1], W = p->shape[2], Cin = p->shape[3], Cout = p->shape[4];
    const int K = p->shape[5], stride = p->shape[6], pad = p->shape[7];
    const int Ho = (H + 2 * pad - K) / stride + 1, Wo = (W + 2 * pad - K) / stride + 1;
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->x));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->y));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->w));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->conv));
    const cudnnDataType_t dt = cudnn_type(cu->precision); /* x, y and w share the act type */
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NHWC, dt, N, Cin, H, W));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NHWC, dt, N, Cout, Ho, Wo));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->w, dt, CUDNN_TENSOR_NHWC, Cout, Cin, K, K));
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->conv, pad, pad, stride, stride, 1, 1, CUDNN_CROSS_CORRELATION,
                                                CUDNN_DATA_FLOAT));
    CUDNN_CHECK(cudnnSetConvolutionMathType(p->conv, cu->precision == 0 ? CUDNN_FMA_MATH
                                                                        : CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION));
}

void choose_bwd_data(EffCuda *cu, EffConvPlan *p) {
    EffAlgoCand c[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    const int n = bwd_data_candidates(cu, p, c);
    p->bwd_data = (cudnnConvolutionBwdDataAlgo_t)choose(cu, p, c, n, "cudnnConvolutionBackwardData",
                                                        &p->bwd_data_bytes, &p->bwd_data_det);
    p->have_bwd_data = 1;
}

/* The cached plan for this shape: descriptors made, and the algorithms
 * chosen, once (cuDNN's heuristics are not free, and the stem conv runs
 * every step with the same shape). Backward-data is chosen only when a call
 * asks for din: the model never does, and for some shapes cuDNN may have no
 * algorithm for it at all. */
EffConvPlan *plan_for(EffCuda *cu, int N, int H, int W, int Cin, int Cout, int K, int stride, int pad,
                      int want_bwd_data) {
    const int shape[8] = {N, H, W, Cin, Cout, K, stride, pad};
    EffConvPlan *p = NULL;
    for (int i = 0; i < cu->nplans && !p; i++)
        if (!memcmp(cu->plans[i].shape, shape, sizeof shape)) p = &cu->plans[i];
    if (!p) {
        if (cu->capturing)
            eff_cuda_fail("plan_for", "a new convolution shape inside a captured CUDA graph (set train.cuda_graph = "
                          "off and report this)", __FILE__, __LINE__);
        if (cu->nplans == EFF_CONV_PLANS) { /* full (many batch sizes): start over */
            CUDA_CHECK(cudaStreamSynchronize(cu->stream));
            eff_cuda_conv_plans_free(cu);
        }
        p = &cu->plans[cu->nplans++];
        memset(p, 0, sizeof *p);
        memcpy(p->shape, shape, sizeof shape);
        make_descriptors(cu, p);
        EffAlgoCand c[CUDNN_CONVOLUTION_FWD_ALGO_COUNT + CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        int n = fwd_candidates(cu, p, c);
        p->fwd = (cudnnConvolutionFwdAlgo_t)choose(cu, p, c, n, "cudnnConvolutionForward", &p->fwd_bytes,
                                                   &p->fwd_det);
        n = bwd_filter_candidates(cu, p, c);
        p->bwd_filter = (cudnnConvolutionBwdFilterAlgo_t)choose(cu, p, c, n, "cudnnConvolutionBackwardFilter",
                                                                &p->bwd_filter_bytes, &p->bwd_filter_det);
    }
    if (want_bwd_data && !p->have_bwd_data) choose_bwd_data(cu, p);
    return p;
}

} // namespace

/* One line per cached plan: the shape and each direction's algorithm with its
 * determinism; the count of nondeterministic choices (eff_conv_algo_flags). */
extern "C" int eff_cuda_conv_algo_report(const EffCuda *cu, char *buf, size_t n, int *flags) {
    int nondet = 0, k = 0;
    *flags = 0;
    if (n) buf[0] = 0;
    for (int i = 0; i < cu->nplans; i++) {
        const EffConvPlan *p = &cu->plans[i];
        const int *s = p->shape;
        *flags |= (p->fwd_det ? 0 : EFF_CONV_NONDET_FWD) | (p->bwd_filter_det ? 0 : EFF_CONV_NONDET_BWD_FILTER) |
                  (p->have_bwd_data && !p->bwd_data_det ? EFF_CONV_NONDET_BWD_DATA : 0);
        nondet += !p->fwd_det + !p->bwd_filter_det + (p->have_bwd_data && !p->bwd_data_det);
        char data[64] = "not chosen";
        if (p->have_bwd_data)
            snprintf(data, sizeof data, "%d (%s)", (int)p->bwd_data, p->bwd_data_det ? "deterministic" : "NONDETERMINISTIC");
        if ((size_t)k + 1 >= n) continue; /* buf full: still count the flags */
        const int w = snprintf(buf + k, n - (size_t)k,
                               "%s%s N=%d %dx%d Cin=%d Cout=%d K=%d s%d: forward algo %d (%s), backward-filter algo %d "
                               "(%s), backward-data %s", i ? "\n" : "", precision_name(cu->precision), s[0], s[1], s[2],
                               s[3], s[4], s[5], s[6], (int)p->fwd, p->fwd_det ? "deterministic" : "NONDETERMINISTIC",
                               (int)p->bwd_filter, p->bwd_filter_det ? "deterministic" : "NONDETERMINISTIC", data);
        if (w > 0) k = (size_t)k + (size_t)w < n ? k + w : (int)n - 1;
    }
    return nondet;
}

extern "C" void eff_cuda_conv_plans_free(EffCuda *cu) {
    for (int i = 0; i < cu->nplans; i++) {
        EffConvPlan *p = &cu->plans[i];
        CUDNN_CHECK(cudnnDestroyTensorDescriptor(p->x));
        CUDNN_CHECK(cudnnDestroyTensorDescriptor(p->y));
        CUDNN_CHECK(cudnnDestroyFilterDescriptor(p->w));
        CUDNN_CHECK(cudnnDestroyConvolutionDescriptor(p->conv));
    }
    cu->nplans = 0;
}

/* The fp32 image batch as cuDNN's input type: itself in fp32 mode, else a
 * converted copy in scratch slot EFF_SCR_ACT. */
template <typename T> static const void *input_as(EffCuda *cu, const float *in, size_t nx) {
    if (cu->precision == 0) return in;
    T *xt = (T *)eff_cuda_scratch(cu, EFF_SCR_ACT, nx * sizeof(T));
    eff_convert_k<T, float><<<eff_blocks(nx), EFF_THREADS, 0, cu->stream>>>(xt, in, nx);
    CUDA_LAUNCHED("conv input to act");
    return xt;
}

template <typename T>
static void forward_t(EffCuda *cu, T *out, const float *in, const float *w, int N, int H, int W, int Cin, int Cout,
                      int K, int stride, int pad) {
    const size_t nw = (size_t)K * K * Cin * Cout, nx = (size_t)N * H * W * Cin;
    T *wk = (T *)eff_cuda_scratch(cu, EFF_SCR_WEIGHT, 2 * nw * sizeof(T));
    hwio_to_khwc<T><<<eff_blocks(nw), EFF_THREADS, 0, cu->stream>>>(wk, w, K, Cin, Cout);
    CUDA_LAUNCHED("hwio_to_khwc");
    const void *x = input_as<T>(cu, in, nx);
    const EffConvPlan *p = plan_for(cu, N, H, W, Cin, Cout, K, stride, pad, 0);
    ensure_workspace(cu, p->fwd_bytes);
    const float one = 1.0f, zero = 0.0f;
    CUDNN_CHECK(cudnnConvolutionForward(cu->cudnn, &one, p->x, x, p->w, wk, p->conv, p->fwd, cu->workspace,
                                        cu->workspace_bytes, &zero, p->y, out));
}

template <typename T>
static void backward_t(EffCuda *cu, float *din, float *dw, const T *dout, const float *in, const float *w, int N,
                       int H, int W, int Cin, int Cout, int K, int stride, int pad) {
    const size_t nw = (size_t)K * K * Cin * Cout, nx = (size_t)N * H * W * Cin;
    T *wk = (T *)eff_cuda_scratch(cu, EFF_SCR_WEIGHT, 2 * nw * sizeof(T)), *dwk = wk + nw;
    const void *x = input_as<T>(cu, in, nx);
    const EffConvPlan *p = plan_for(cu, N, H, W, Cin, Cout, K, stride, pad, din != NULL);
    const float one = 1.0f, zero = 0.0f;
    ensure_workspace(cu, p->bwd_filter_bytes);
    CUDNN_CHECK(cudnnConvolutionBackwardFilter(cu->cudnn, &one, p->x, x, p->y, dout, p->conv, p->bwd_filter,
                                               cu->workspace, cu->workspace_bytes, &zero, p->w, dwk));
    khwc_add_to_hwio<T><<<eff_blocks(nw), EFF_THREADS, 0, cu->stream>>>(dw, dwk, K, Cin, Cout);
    CUDA_LAUNCHED("khwc_add_to_hwio");
    if (!din) return; /* the model never asks for the image gradient */
    hwio_to_khwc<T><<<eff_blocks(nw), EFF_THREADS, 0, cu->stream>>>(wk, w, K, Cin, Cout);
    CUDA_LAUNCHED("hwio_to_khwc");
    ensure_workspace(cu, p->bwd_data_bytes);
    void *dx = din;
    if (cu->precision != 0) dx = eff_cuda_scratch(cu, EFF_SCR_F32, nx * sizeof(T));
    CUDNN_CHECK(cudnnConvolutionBackwardData(cu->cudnn, &one, p->w, wk, p->y, dout, p->conv, p->bwd_data,
                                             cu->workspace, cu->workspace_bytes, &zero, p->x, dx));
    if (cu->precision != 0) {
        eff_convert_k<float, T><<<eff_blocks(nx), EFF_THREADS, 0, cu->stream>>>(din, (const T *)dx, nx);
        CUDA_LAUNCHED("conv din to fp32");
    }
}

extern "C" void conv2d_forward_cuda(EffCuda *cu, void *out, const float *in, const float *w, int N, int H, int W,
                                    int Cin, int Cout, int K, int stride, int pad) {
    EFF_ACT_DISPATCH(cu->precision, T, forward_t<T>(cu, (T *)out, in, w, N, H, W, Cin, Cout, K, stride, pad));
}

extern "C" void conv2d_backward_cuda(EffCuda *cu, float *din, float *dw, const void *dout, const float *in,
                                     const float *w, int N, int H, int W, int Cin, int Cout, int K, int stride,
                                     int pad) {
    EFF_ACT_DISPATCH(cu->precision, T,
                     backward_t<T>(cu, din, dw, (const T *)dout, in, w, N, H, W, Cin, Cout, K, stride, pad));
}
