/* common.cu: error reporting, scratch, and the row-major GEMM wrappers shared
 * by the CUDA ops. */
#include "cuda_common.cuh"

extern "C" {
#include "common.h"
}

#include <stdio.h>

extern "C" void eff_cuda_fail(const char *what, const char *err, const char *file, int line) {
    EFF_FATAL("CUDA call failed: %s -> %s (%s:%d)\nHINT: check the GPU (nvidia-smi), free GPU memory, and that the "
              "driver supports CUDA %d.%d; rerun with CUDA_LAUNCH_BLOCKING=1 to pin the failing kernel",
              what, err, file, line, CUDART_VERSION / 1000, (CUDART_VERSION % 1000) / 10);
}

extern "C" int eff_cuda_is_capture_error(cudaError_t e) {
    switch (e) {
    case cudaErrorStreamCaptureUnsupported:
    case cudaErrorStreamCaptureInvalidated:
    case cudaErrorStreamCaptureMerge:
    case cudaErrorStreamCaptureUnmatched:
    case cudaErrorStreamCaptureUnjoined:
    case cudaErrorStreamCaptureIsolation:
    case cudaErrorStreamCaptureImplicit:
    case cudaErrorStreamCaptureWrongThread: return 1;
    default: return 0;
    }
}

/* A capture error leaves nothing to undo: the call was refused, the capture
 * is marked invalid, and every later call into it answers
 * cudaErrorStreamCaptureInvalidated (not reported again). */
extern "C" void eff_cuda_error(cudaError_t e, const char *what, const char *file, int line) {
    char err[256];
    snprintf(err, sizeof err, "%s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
    if (!eff_cuda_is_capture_error(e)) eff_cuda_fail(what, err, file, line);
    if (e != cudaErrorStreamCaptureInvalidated)
        fprintf(stderr, "WARNING: CUDA graph capture broken by %s -> %s (%s:%d): this step will run eagerly\n", what,
                err, file, line);
}

/* Growing scratch synchronises and reallocates, which a graph capture cannot
 * contain: the eager warm-up step must have sized it already. */
static void no_growth_in_capture(const EffCuda *cu, const char *what, size_t bytes) {
    if (cu->capturing)
        EFF_FATAL("CUDA graph capture: %s had to grow to %zu bytes inside the captured step (a bug: the eager warm-up "
                  "step sizes all scratch)\nHINT: run with train.cuda_graph = off and report this",
                  what, bytes);
}

extern "C" double *eff_cuda_reduce_scratch(EffCuda *cu, size_t n) {
    if (n > cu->reduce_doubles) {
        no_growth_in_capture(cu, "the reduction scratch", n * sizeof(double));
        CUDA_CHECK(cudaStreamSynchronize(cu->stream));
        cu->graph_stale = 1;
        if (cu->reduce) CUDA_CHECK(cudaFree(cu->reduce));
        size_t want = n + n / 2;
        CUDA_CHECK(cudaMalloc((void **)&cu->reduce, want * sizeof(double)));
        cu->reduce_doubles = want;
    }
    return cu->reduce;
}

extern "C" void *eff_cuda_scratch(EffCuda *cu, int slot, size_t bytes) {
    if (bytes > cu->scratch_bytes[slot]) {
        no_growth_in_capture(cu, "a conversion scratch buffer", bytes);
        CUDA_CHECK(cudaStreamSynchronize(cu->stream));
        cu->graph_stale = 1;
        if (cu->scratch[slot]) CUDA_CHECK(cudaFree(cu->scratch[slot]));
        CUDA_CHECK(cudaMalloc(&cu->scratch[slot], bytes));
        cu->scratch_bytes[slot] = bytes;
    }
    return cu->scratch[slot];
}

namespace {
__global__ void set_u64_k(uint64_t *dst, uint64_t v) { *dst = v; }
} // namespace

extern "C" void eff_cuda_set_u64(EffCuda *cu, uint64_t *dst, uint64_t v) {
    set_u64_k<<<1, 1, 0, cu->stream>>>(dst, v); /* launch-grid-ok: one thread */
    CUDA_LAUNCHED("set_u64");
}

extern "C" void eff_cuda_gemm_rm_ex(EffCuda *cu, int transA, int transB, int M, int N, int K, float alpha,
                                    const void *A, int ab_type, int lda, const void *B, int ldb, float beta, void *C,
                                    int c_type, int ldc) {
    if (M == 0 || N == 0) return;
    /* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T. fp32
     * inputs: plain fp32 math (no TF32), bf16 tensor cores with
     * down-conversion in bf16 mode; 16-bit inputs: fp32 accumulation. */
    cublasComputeType_t ct = CUBLAS_COMPUTE_32F;
    /* fp32 inputs in fp16 mode keep fp32 math: they are the small SE/classifier
     * GEMMs, whose loss-scaled gradients would overflow fp16 long before any
     * stored activation gradient does */
    if (ab_type == CUDA_R_32F && cu->precision == 1) ct = CUBLAS_COMPUTE_32F_FAST_16BF;
    CUBLAS_CHECK(cublasGemmEx(cu->cublas, transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M,
                              K, &alpha, B, (cudaDataType_t)ab_type, ldb, A, (cudaDataType_t)ab_type, lda, &beta, C,
                              (cudaDataType_t)c_type, ldc, ct, CUBLAS_GEMM_DEFAULT));
}

extern "C" void eff_cuda_gemm_rm(EffCuda *cu, int transA, int transB, int M, int N, int K, float alpha,
                                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    eff_cuda_gemm_rm_ex(cu, transA, transB, M, N, K, alpha, A, CUDA_R_32F, lda, B, ldb, beta, C, CUDA_R_32F, ldc);
}
