/* gemm.c: eff_sgemm on the configured provider (see gemm.h). */
#include "ops/gemm.h"

#include "common.h"

#ifdef EFFNET_GEMM_DNNL
#include <dnnl.h>
#include <stdio.h>

void eff_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
               float beta, float *C, int ldc) {
    const dnnl_status_t s = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    EFF_CHECK(s == dnnl_success, "dnnl_sgemm(%c%c, M %d, N %d, K %d) failed with oneDNN status %d\nHINT: rebuild with "
              "-DEFFNET_GEMM=blas to use the BLAS instead", ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, (int)s);
}

void eff_sgemm_provider(char *buf, int n) {
    const dnnl_version_t *v = dnnl_version();
    snprintf(buf, (size_t)n, "oneDNN %d.%d.%d dnnl_sgemm", v->major, v->minor, v->patch);
}
#else
#include <cblas.h>
#include <stdio.h>

void eff_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
               float beta, float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
}

void eff_sgemm_provider(char *buf, int n) { snprintf(buf, (size_t)n, "BLAS cblas_sgemm"); }
#endif
