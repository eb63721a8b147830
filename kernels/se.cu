/* se.cu: squeeze-and-excitation -- the CUDA twin of src/ops/se.c. Pooling
 * and the gate gradient use the deterministic reduction of reduce.cuh; the
 * two small FCs are cuBLAS GEMMs; the channel scale is one fused pass.
 * in/out/dout/din are activations (act type T); pooled, hidden and the gate
 * are small fp32 per-image vectors, so the FCs are fp32 GEMMs. */
#include "act.cuh"
#include "reduce.cuh"

namespace {
__global__ void relu_inplace(float *x, size_t n) {
    GRID_STRIDE(i, n) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}
__global__ void sigmoid_inplace(float *x, size_t n) {
    GRID_STRIDE(i, n) x[i] = eff_sigmoid_d(x[i]);
}
/* out[n][p][c] = in[n][p][c] * gate[n][c] */
template <typename T>
__global__ void se_scale(T *out, const T *in, const float *gate, size_t total, int HW, int C) {
    GRID_STRIDE(i, total) {
        const size_t n = i / ((size_t)HW * C);
        out[i] = eff_st<T>(eff_ld(in[i]) * gate[n * C + i % C]);
    }
}
template <typename T> struct DGateF {
    const T *dout, *in;
    int HW, C;
    __device__ void operator()(int n, long p, int c, double &q0, double &) const {
        const size_t i = ((size_t)n * HW + p) * C + c;
        q0 += (double)(eff_ld(dout[i]) * eff_ld(in[i]));
    }
};
__global__ void dgate_finalize(float *dgate, const double *partial, int chunks, const float *gate, int N, int C) {
    GRID_STRIDE(i, (size_t)N * C) {
        const int n = (int)(i / C), c = (int)(i % C);
        const float s = gate[i];
        dgate[i] = (float)eff_chunk_sum(partial, n, chunks, 0, C, c) * (s * (1.0f - s));
    }
}
__global__ void relu_mask(float *dh, const float *hidden, size_t n) {
    GRID_STRIDE(i, n) if (hidden[i] <= 0.0f) dh[i] = 0.0f;
}
/* din = dout * gate + dpooled / HW (din may alias dout: elementwise) */
template <typename T>
__global__ void se_back_apply(T *din, const T *dout, const float *gate, const float *dpooled, size_t total, int HW,
                              int C, float inv) {
    GRID_STRIDE(i, total) {
        const size_t nc = i / ((size_t)HW * C) * C + i % C;
        din[i] = eff_st<T>(eff_ld(dout[i]) * gate[nc] + dpooled[nc] * inv);
    }
}
} // namespace

extern "C" void se_forward_cuda(EffCuda *cu, void *out, float *pooled, float *hidden, float *gate, const void *in,
                                const float *w1, const float *w2, int N, int HW, int C, int Cse) {
    gap_forward_f32out_cuda(cu, pooled, in, N, HW, C);
    eff_cuda_gemm_rm(cu, 0, 1, N, Cse, C, 1.0f, pooled, C, w1, C, 0.0f, hidden, Cse);
    relu_inplace<<<eff_blocks((size_t)N * Cse), EFF_THREADS, 0, cu->stream>>>(hidden, (size_t)N * Cse);
    CUDA_LAUNCHED("relu_inplace");
    eff_cuda_gemm_rm(cu, 0, 1, N, C, Cse, 1.0f, hidden, Cse, w2, Cse, 0.0f, gate, C);
    sigmoid_inplace<<<eff_blocks((size_t)N * C), EFF_THREADS, 0, cu->stream>>>(gate, (size_t)N * C);
    CUDA_LAUNCHED("sigmoid_inplace");
    const size_t total = (size_t)N * HW * C;
    EFF_ACT_DISPATCH(cu->precision, T,
                     se_scale<T><<<eff_blocks(total), EFF_THREADS, 0, cu->stream>>>((T *)out, (const T *)in, gate,
                                                                                    total, HW, C));
    CUDA_LAUNCHED("se_scale");
}

extern "C" void se_backward_cuda(EffCuda *cu, void *din, float *dw1, float *dw2, float *work, const void *dout,
                                 const void *in, const float *pooled, const float *hidden, const float *gate,
                                 const float *w1, const float *w2, int N, int HW, int C, int Cse) {
    float *dgate = work, *dpooled = work + (size_t)N * C, *dhid = work + (size_t)2 * N * C;
    double *partial;
    int chunks = 0;
    EFF_ACT_DISPATCH(cu->precision, T,
                     chunks = eff_colreduce(cu, DGateF<T>{(const T *)dout, (const T *)in, HW, C}, N, HW, C, 0,
                                            &partial, NULL));
    dgate_finalize<<<eff_blocks((size_t)N * C), EFF_THREADS, 0, cu->stream>>>(dgate, partial, chunks, gate, N, C);
    CUDA_LAUNCHED("dgate_finalize");
    eff_cuda_gemm_rm(cu, 1, 0, C, Cse, N, 1.0f, dgate, C, hidden, Cse, 1.0f, dw2, Cse);
    eff_cuda_gemm_rm(cu, 0, 0, N, Cse, C, 1.0f, dgate, C, w2, Cse, 0.0f, dhid, Cse);
    relu_mask<<<eff_blocks((size_t)N * Cse), EFF_THREADS, 0, cu->stream>>>(dhid, hidden, (size_t)N * Cse);
    CUDA_LAUNCHED("relu_mask");
    eff_cuda_gemm_rm(cu, 1, 0, Cse, C, N, 1.0f, dhid, Cse, pooled, C, 1.0f, dw1, C);
    eff_cuda_gemm_rm(cu, 0, 0, N, C, Cse, 1.0f, dhid, Cse, w1, C, 0.0f, dpooled, C);
    const size_t total = (size_t)N * HW * C;
    EFF_ACT_DISPATCH(cu->precision, T,
                     se_back_apply<T><<<eff_blocks(total), EFF_THREADS, 0, cu->stream>>>(
                         (T *)din, (const T *)dout, gate, dpooled, total, HW, C, 1.0f / (float)HW));
    CUDA_LAUNCHED("se_back_apply");
}
