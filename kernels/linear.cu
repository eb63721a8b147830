/* linear.cu: the classifier, out = in . w^T + b -- the CUDA twin of
 * src/ops/linear.c. w: [Cout][Cin]. The input (pooled features) and its
 * gradient are activations; in bf16/fp16 mode they are converted to / from
 * fp32 scratch (N*Cin elements, tiny) so the GEMMs and the logits stay fp32. */
#include "act.cuh"

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

/* The activation x[n] as fp32: itself in fp32 mode, else a converted copy in
 * scratch slot EFF_SCR_F32. */
const float *as_f32(EffCuda *cu, const void *x, size_t n) {
    if (cu->precision == 0) return (const float *)x;
    float *f = (float *)eff_cuda_scratch(cu, EFF_SCR_F32, n * sizeof(float));
    EFF_ACT_DISPATCH(cu->precision, T,
                     eff_convert_k<float, T><<<eff_blocks(n), EFF_THREADS, 0, cu->stream>>>(f, (const T *)x, n));
    CUDA_LAUNCHED("as_f32");
    return f;
}
} // namespace

extern "C" void linear_forward_cuda(EffCuda *cu, float *out, const void *in, const float *w, const float *b, int N,
                                    int Cin, int Cout) {
    bias_rows<<<eff_blocks((size_t)N * Cout), EFF_THREADS, 0, cu->stream>>>(out, b, N, Cout);
    CUDA_LAUNCHED("bias_rows");
    const float *x = as_f32(cu, in, (size_t)N * Cin);
    eff_cuda_gemm_rm(cu, 0, 1, N, Cout, Cin, 1.0f, x, Cin, w, Cin, 1.0f, out, Cout);
}

extern "C" void linear_backward_cuda(EffCuda *cu, void *din, float *dw, float *db, const float *dout,
                                     const void *in, const float *w, int N, int Cin, int Cout) {
    bias_grad<<<eff_grid1(cu, "bias_grad", (Cout + 127LL) / 128, 128), 128, 0, cu->stream>>>(db, dout, N, Cout);
    CUDA_LAUNCHED("bias_grad");
    const size_t nx = (size_t)N * Cin;
    const float *x = as_f32(cu, in, nx);
    eff_cuda_gemm_rm(cu, 1, 0, Cout, Cin, N, 1.0f, dout, Cout, x, Cin, 1.0f, dw, Cin);
    if (!din) return;
    if (cu->precision == 0) {
        eff_cuda_gemm_rm(cu, 0, 0, N, Cin, Cout, 1.0f, dout, Cout, w, Cin, 0.0f, (float *)din, Cin);
        return;
    }
    float *dx = (float *)eff_cuda_scratch(cu, EFF_SCR_F32, nx * sizeof(float)); /* x is no longer needed */
    eff_cuda_gemm_rm(cu, 0, 0, N, Cin, Cout, 1.0f, dout, Cout, w, Cin, 0.0f, dx, Cin);
    EFF_ACT_DISPATCH(cu->precision, T,
                     eff_convert_k<T, float><<<eff_blocks(nx), EFF_THREADS, 0, cu->stream>>>((T *)din, dx, nx));
    CUDA_LAUNCHED("linear din to act");
}
