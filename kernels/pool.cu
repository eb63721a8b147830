/* pool.cu: global average pooling over the positions of NHWC -- the CUDA twin
 * of src/ops/pool.c. Sums use the deterministic reduction of reduce.cuh.
 * The head pools activations into activations; SE pools into fp32. */
#include "act.cuh"
#include "reduce.cuh"

namespace {
template <typename T> struct PoolF {
    const T *in;
    int HW, C;
    __device__ void operator()(int n, long p, int c, double &q0, double &) const {
        q0 += eff_ld(in[((size_t)n * HW + p) * C + c]);
    }
};

template <typename O>
__global__ void pool_finalize(O *out, const double *partial, int chunks, int N, int C, float inv) {
    GRID_STRIDE(i, (size_t)N * C) {
        const int n = (int)(i / C), c = (int)(i % C);
        out[i] = eff_st<O>((float)eff_chunk_sum(partial, n, chunks, 0, C, c) * inv);
    }
}

template <typename T>
__global__ void gap_back(T *din, const T *dout, size_t total, int HW, int C, float inv) {
    GRID_STRIDE(i, total) {
        const size_t n = i / ((size_t)HW * C);
        din[i] = eff_st<T>(eff_ld(dout[n * C + i % C]) * inv);
    }
}

template <typename T, typename O> void gap_t(EffCuda *cu, O *out, const T *in, int N, int HW, int C) {
    double *partial;
    const int chunks = eff_colreduce(cu, PoolF<T>{in, HW, C}, N, HW, C, 0, &partial, NULL);
    pool_finalize<O><<<eff_blocks((size_t)N * C), EFF_THREADS, 0, cu->stream>>>(out, partial, chunks, N, C,
                                                                                1.0f / (float)HW);
    CUDA_LAUNCHED("pool_finalize");
}
} // namespace

extern "C" void gap_forward_cuda(EffCuda *cu, void *out, const void *in, int N, int HW, int C) {
    EFF_ACT_DISPATCH(cu->precision, T, gap_t<T, T>(cu, (T *)out, (const T *)in, N, HW, C));
}

extern "C" void gap_forward_f32out_cuda(EffCuda *cu, float *out, const void *in, int N, int HW, int C) {
    EFF_ACT_DISPATCH(cu->precision, T, gap_t<T, float>(cu, out, (const T *)in, N, HW, C));
}

extern "C" void gap_backward_cuda(EffCuda *cu, void *din, const void *dout, int N, int HW, int C) {
    const size_t total = (size_t)N * HW * C;
    EFF_ACT_DISPATCH(cu->precision, T,
                     gap_back<T><<<eff_blocks(total), EFF_THREADS, 0, cu->stream>>>(
                         (T *)din, (const T *)dout, total, HW, C, 1.0f / (float)HW));
    CUDA_LAUNCHED("gap_back");
}
