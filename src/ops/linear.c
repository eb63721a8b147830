/* linear.c: fully connected layer, out = in . w^T + b. */
#include "ops.h"

#include <cblas.h>

void linear_forward_cpu(float *out, const float *in, const float *w, const float *b, int N, int Cin, int Cout) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < Cout; o++) out[(size_t)n * Cout + o] = b[o];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, Cout, Cin, 1.0f, in, Cin, w, Cin, 1.0f, out, Cout);
}

void linear_backward_cpu(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                         int N, int Cin, int Cout) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < Cout; o++) db[o] += dout[(size_t)n * Cout + o];
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Cout, Cin, N, 1.0f, dout, Cout, in, Cin, 1.0f, dw, Cin);
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, Cin, Cout, 1.0f, dout, Cout, w, Cin, 0.0f, din, Cin);
}
