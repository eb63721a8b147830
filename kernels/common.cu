/* common.cu: error reporting, scratch, and the row-major GEMM wrapper shared
 * by the CUDA ops. */
#include "cuda_common.cuh"

extern "C" {
#include "common.h"
}

extern "C" void eff_cuda_fail(const char *what, const char *err, const char *file, int line) {
    EFF_FATAL("CUDA call failed: %s -> %s (%s:%d)\nHINT: check the GPU (nvidia-smi), free GPU memory, and that the "
              "driver supports CUDA %d.%d; rerun with CUDA_LAUNCH_BLOCKING=1 to pin the failing kernel",
              what, err, file, line, CUDART_VERSION / 1000, (CUDART_VERSION % 1000) / 10);
}

extern "C" double *eff_cuda_reduce_scratch(EffCuda *cu, size_t n) {
    if (n > cu->reduce_doubles) {
        CUDA_CHECK(cudaStreamSynchronize(cu->stream));
        if (cu->reduce) CUDA_CHECK(cudaFree(cu->reduce));
        size_t want = n + n / 2;
        CUDA_CHECK(cudaMalloc((void **)&cu->reduce, want * sizeof(double)));
        cu->reduce_doubles = want;
    }
    return cu->reduce;
}

extern "C" void eff_cuda_gemm_rm(EffCuda *cu, int transA, int transB, int M, int N, int K, float alpha,
                                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M == 0 || N == 0) return;
    /* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T. */
    cublasComputeType_t ct = CUBLAS_COMPUTE_32F;
    if (cu->precision == 1) ct = CUBLAS_COMPUTE_32F_FAST_16BF;
    else if (cu->precision == 2) ct = CUBLAS_COMPUTE_32F_FAST_16F;
    CUBLAS_CHECK(cublasGemmEx(cu->cublas, transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M,
                              K, &alpha, B, CUDA_R_32F, ldb, A, CUDA_R_32F, lda, &beta, C, CUDA_R_32F, ldc, ct,
                              CUBLAS_GEMM_DEFAULT));
}
