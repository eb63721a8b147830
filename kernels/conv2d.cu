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
 * weight copy is) and then added to the fp32 gradient. With cu->deterministic, only algorithms
 * cuDNN reports as deterministic are used. */
#include "act.cuh"

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

/* Pick the first algorithm cuDNN ranks fastest that succeeded, fits in
 * 256 MiB of workspace, and is deterministic when asked. */
template <typename Perf>
int pick(const Perf *perf, int n, int deterministic, const char *what) {
    for (int i = 0; i < n; i++) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
        if (perf[i].memory > ((size_t)256 << 20)) continue;
        if (deterministic && perf[i].determinism != CUDNN_DETERMINISTIC) continue;
        return i;
    }
    eff_cuda_fail(what, "cuDNN offered no usable algorithm", __FILE__, __LINE__);
    return -1;
}

/* The cached plan for this shape: descriptors made, and the three
 * algorithms chosen, once (cuDNN's heuristics are not free, and the stem
 * conv runs every step with the same shape). */
EffConvPlan *plan_for(EffCuda *cu, int N, int H, int W, int Cin, int Cout, int K, int stride, int pad) {
    const int shape[8] = {N, H, W, Cin, Cout, K, stride, pad};
    for (int i = 0; i < cu->nplans; i++)
        if (!memcmp(cu->plans[i].shape, shape, sizeof shape)) return &cu->plans[i];
    if (cu->capturing)
        eff_cuda_fail("plan_for", "a new convolution shape inside a captured CUDA graph (set train.cuda_graph = off "
                      "and report this)", __FILE__, __LINE__);
    if (cu->nplans == EFF_CONV_PLANS) { /* full (many batch sizes): start over */
        CUDA_CHECK(cudaStreamSynchronize(cu->stream));
        eff_cuda_conv_plans_free(cu);
    }
    EffConvPlan *p = &cu->plans[cu->nplans++];
    memcpy(p->shape, shape, sizeof shape);
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
    int got = 0;
    cudnnConvolutionFwdAlgoPerf_t fp[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(cu->cudnn, p->x, p->w, p->conv, p->y,
                                                       CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, fp));
    int i = pick(fp, got, cu->deterministic, "cudnnConvolutionForward");
    p->fwd = fp[i].algo;
    p->fwd_bytes = fp[i].memory;
    cudnnConvolutionBwdFilterAlgoPerf_t bf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(cu->cudnn, p->x, p->y, p->conv, p->w,
                                                              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, bf));
    i = pick(bf, got, cu->deterministic, "cudnnConvolutionBackwardFilter");
    p->bwd_filter = bf[i].algo;
    p->bwd_filter_bytes = bf[i].memory;
    cudnnConvolutionBwdDataAlgoPerf_t bd[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(cu->cudnn, p->w, p->y, p->conv, p->x,
                                                            CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, bd));
    i = pick(bd, got, cu->deterministic, "cudnnConvolutionBackwardData");
    p->bwd_data = bd[i].algo;
    p->bwd_data_bytes = bd[i].memory;
    return p;
}

} // namespace

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
    const EffConvPlan *p = plan_for(cu, N, H, W, Cin, Cout, K, stride, pad);
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
    const EffConvPlan *p = plan_for(cu, N, H, W, Cin, Cout, K, stride, pad);
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
