/* linear.cu: the classifier, out = in . w^T + b -- the CUDA twin of
 * src/ops/linear.c. w: [Cout][Cin]. */
#include "cuda_common.cuh"

namespace {
__global__ void bias_rows(float *out, const float *b, int N, int Cout) {
    GRID_STRIDE(i, (size_t)N * Cout) out[i] = b[i % Cout];
}
/* db[o] += sum over rows, in row order (N is the batch: small). */
__global__ void bias_grad(float *db, const float *dout, int N, int Cout) {
    const int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= Cout) return;
    float s = db[o];
    for (int n = 0; n < N; n++) s += dout[(size_t)n * Cout + o];
    db[o] = s;
}
} // namespace

extern "C" void linear_forward_cuda(EffCuda *cu, float *out, const float *in, const float *w, const float *b, int N,
                                    int Cin, int Cout) {
    bias_rows<<<eff_blocks((size_t)N * Cout), EFF_THREADS, 0, cu->stream>>>(out, b, N, Cout);
    CUDA_LAUNCHED("bias_rows");
    eff_cuda_gemm_rm(cu, 0, 1, N, Cout, Cin, 1.0f, in, Cin, w, Cin, 1.0f, out, Cout);
}

extern "C" void linear_backward_cuda(EffCuda *cu, float *din, float *dw, float *db, const float *dout,
                                     const float *in, const float *w, int N, int Cin, int Cout) {
    bias_grad<<<(Cout + 127) / 128, 128, 0, cu->stream>>>(db, dout, N, Cout);
    CUDA_LAUNCHED("bias_grad");
    eff_cuda_gemm_rm(cu, 1, 0, Cout, Cin, N, 1.0f, dout, Cout, in, Cin, 1.0f, dw, Cin);
    if (din) eff_cuda_gemm_rm(cu, 0, 0, N, Cin, Cout, 1.0f, dout, Cout, w, Cin, 0.0f, din, Cin);
}
