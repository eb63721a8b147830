/* conv2d.cu: the dense KxK stem convolution through cuDNN in NHWC -- the CUDA
 * twin of src/ops/conv2d.c.
 *
 * Our weight layout is [K][K][Cin][Cout] (HWIO); cuDNN's NHWC filter format
 * is [Cout][K][K][Cin] (KRSC), so the (tiny) weights are transposed into
 * cu->wscratch for each call, and the weight gradient comes back through the
 * same scratch and is ADDED to dw in our layout. The math is plain fp32 FMA
 * in fp32 mode (no TF32, so results match the CPU), tensor-op math with
 * down-conversion in bf16/fp16 mode. With cu->deterministic, only algorithms
 * cuDNN reports as deterministic are used. */
#include "cuda_common.cuh"

namespace {

__global__ void hwio_to_khwc(float *dst, const float *w, int K, int Cin, int Cout) {
    GRID_STRIDE(i, (size_t)K * K * Cin * Cout) {
        const int co = (int)(i % Cout);
        const size_t khwci = i / Cout; /* (kh*K + kw)*Cin + ci */
        dst[(size_t)co * K * K * Cin + khwci] = w[i];
    }
}

__global__ void khwc_add_to_hwio(float *dw, const float *src, int K, int Cin, int Cout) {
    GRID_STRIDE(i, (size_t)K * K * Cin * Cout) {
        const int co = (int)(i % Cout);
        dw[i] += src[(size_t)co * K * K * Cin + i / Cout];
    }
}

struct Descs {
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
};

void make_descs(EffCuda *cu, Descs *d, int N, int H, int W, int Cin, int Cout, int K, int stride, int pad) {
    const int Ho = (H + 2 * pad - K) / stride + 1, Wo = (W + 2 * pad - K) / stride + 1;
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&d->x));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&d->y));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&d->w));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d->conv));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(d->x, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, N, Cin, H, W));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(d->y, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, N, Cout, Ho, Wo));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(d->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, Cout, Cin, K, K));
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d->conv, pad, pad, stride, stride, 1, 1, CUDNN_CROSS_CORRELATION,
                                                CUDNN_DATA_FLOAT));
    CUDNN_CHECK(cudnnSetConvolutionMathType(d->conv, cu->precision == 0 ? CUDNN_FMA_MATH
                                                                        : CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION));
}

void free_descs(Descs *d) {
    CUDNN_CHECK(cudnnDestroyTensorDescriptor(d->x));
    CUDNN_CHECK(cudnnDestroyTensorDescriptor(d->y));
    CUDNN_CHECK(cudnnDestroyFilterDescriptor(d->w));
    CUDNN_CHECK(cudnnDestroyConvolutionDescriptor(d->conv));
}

void ensure_workspace(EffCuda *cu, size_t bytes) {
    if (bytes <= cu->workspace_bytes) return;
    CUDA_CHECK(cudaStreamSynchronize(cu->stream));
    if (cu->workspace) CUDA_CHECK(cudaFree(cu->workspace));
    CUDA_CHECK(cudaMalloc(&cu->workspace, bytes));
    cu->workspace_bytes = bytes;
    CUBLAS_CHECK(cublasSetWorkspace(cu->cublas, cu->workspace, cu->workspace_bytes));
}

float *weight_scratch(EffCuda *cu, size_t n) {
    if (n > cu->wscratch_floats) {
        CUDA_CHECK(cudaStreamSynchronize(cu->stream));
        if (cu->wscratch) CUDA_CHECK(cudaFree(cu->wscratch));
        CUDA_CHECK(cudaMalloc((void **)&cu->wscratch, n * sizeof(float)));
        cu->wscratch_floats = n;
    }
    return cu->wscratch;
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

} // namespace

extern "C" void conv2d_forward_cuda(EffCuda *cu, float *out, const float *in, const float *w, int N, int H, int W,
                                    int Cin, int Cout, int K, int stride, int pad) {
    const size_t nw = (size_t)K * K * Cin * Cout;
    float *wk = weight_scratch(cu, 2 * nw);
    hwio_to_khwc<<<eff_blocks(nw), EFF_THREADS, 0, cu->stream>>>(wk, w, K, Cin, Cout);
    CUDA_LAUNCHED("hwio_to_khwc");
    Descs d;
    make_descs(cu, &d, N, H, W, Cin, Cout, K, stride, pad);
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int got = 0;
    CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(cu->cudnn, d.x, d.w, d.conv, d.y,
                                                       CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf));
    const int a = pick(perf, got, cu->deterministic, "cudnnConvolutionForward");
    ensure_workspace(cu, perf[a].memory);
    const float one = 1.0f, zero = 0.0f;
    CUDNN_CHECK(cudnnConvolutionForward(cu->cudnn, &one, d.x, in, d.w, wk, d.conv, perf[a].algo, cu->workspace,
                                        cu->workspace_bytes, &zero, d.y, out));
    free_descs(&d);
}

extern "C" void conv2d_backward_cuda(EffCuda *cu, float *din, float *dw, const float *dout, const float *in,
                                     const float *w, int N, int H, int W, int Cin, int Cout, int K, int stride,
                                     int pad) {
    const size_t nw = (size_t)K * K * Cin * Cout;
    float *wk = weight_scratch(cu, 2 * nw), *dwk = wk + nw;
    Descs d;
    make_descs(cu, &d, N, H, W, Cin, Cout, K, stride, pad);
    const float one = 1.0f, zero = 0.0f;
    cudnnConvolutionBwdFilterAlgoPerf_t fperf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int got = 0;
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(cu->cudnn, d.x, d.y, d.conv, d.w,
                                                              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, fperf));
    const int a = pick(fperf, got, cu->deterministic, "cudnnConvolutionBackwardFilter");
    ensure_workspace(cu, fperf[a].memory);
    CUDNN_CHECK(cudnnConvolutionBackwardFilter(cu->cudnn, &one, d.x, in, d.y, dout, d.conv, fperf[a].algo,
                                               cu->workspace, cu->workspace_bytes, &zero, d.w, dwk));
    khwc_add_to_hwio<<<eff_blocks(nw), EFF_THREADS, 0, cu->stream>>>(dw, dwk, K, Cin, Cout);
    CUDA_LAUNCHED("khwc_add_to_hwio");
    if (din) {
        hwio_to_khwc<<<eff_blocks(nw), EFF_THREADS, 0, cu->stream>>>(wk, w, K, Cin, Cout);
        CUDA_LAUNCHED("hwio_to_khwc");
        cudnnConvolutionBwdDataAlgoPerf_t dperf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(cu->cudnn, d.w, d.y, d.conv, d.x,
                                                                CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, dperf));
        const int b = pick(dperf, got, cu->deterministic, "cudnnConvolutionBackwardData");
        ensure_workspace(cu, dperf[b].memory);
        CUDNN_CHECK(cudnnConvolutionBackwardData(cu->cudnn, &one, d.w, wk, d.y, dout, d.conv, dperf[b].algo,
                                                 cu->workspace, cu->workspace_bytes, &zero, d.x, din));
    }
    free_descs(&d);
}
