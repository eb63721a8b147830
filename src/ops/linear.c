/* linear.c: fully connected layer, out = in . w^T + b. */
#include "ops.h"

#include "ops/gemm.h"

void linear_forward_cpu(float *out, const float *in, const float *w, const float *b, int N, int Cin, int Cout) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < Cout; o++) out[(size_t)n * Cout + o] = b[o];
    eff_sgemm(0, 1, N, Cout, Cin, 1.0f, in, Cin, w, Cin, 1.0f, out, Cout);
}

void linear_backward_cpu(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                         int N, int Cin, int Cout) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < Cout; o++) db[o] += dout[(size_t)n * Cout + o];
    eff_sgemm(1, 0, Cout, Cin, N, 1.0f, dout, Cout, in, Cin, 1.0f, dw, Cin);
    if (din)
        eff_sgemm(0, 0, N, Cin, Cout, 1.0f, dout, Cout, w, Cin, 0.0f, din, Cin);
}
