/* gemm.h: the CPU backend's one matrix multiply, row-major:
 *   C[M][N] = alpha op(A) op(B) + beta C, op(X) = X or X^T (ta/tb = 0/1),
 * lda/ldb/ldc the row strides as stored. Every GEMM of the CPU ops (1x1 and
 * stem convolutions, SE, the classifier, the roofline's peak) goes through
 * it, so the provider is chosen in one place at configure time
 * (-DEFFNET_GEMM=blas|onednn, docs/PERFORMANCE.md "GEMM providers"):
 * cblas_sgemm of the BLAS CMake found (OpenBLAS by default; BLIS with
 * -DBLA_VENDOR=FLAME) or oneDNN's dnnl_sgemm. */
#ifndef EFFNET_OPS_GEMM_H
#define EFFNET_OPS_GEMM_H

void eff_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
               float beta, float *C, int ldc);
/* "BLAS cblas_sgemm" or "oneDNN 2.6.3 dnnl_sgemm" into buf (effnet --version). */
void eff_sgemm_provider(char *buf, int n);

#endif
