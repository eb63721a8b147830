/* pool.cu: global average pooling over the positions of NHWC -- the CUDA twin
 * of src/ops/pool.c. Sums use the deterministic reduction of reduce.cuh. */
#include "reduce.cuh"

namespace {
struct PoolF {
    const float *in;
    int HW, C;
    __device__ void operator()(int n, long p, int c, double &q0, double &) const {
        q0 += in[((size_t)n * HW + p) * C + c];
    }
};

__global__ void pool_finalize(float *out, const double *partial, int chunks, int N, int C, float inv) {
    GRID_STRIDE(i, (size_t)N * C) {
        const int n = (int)(i / C), c = (int)(i % C);
        out[i] = (float)eff_chunk_sum(partial, n, chunks, 0, C, c) * inv;
    }
}

__global__ void gap_back(float *din, const float *dout, size_t total, int HW, int C, float inv) {
    GRID_STRIDE(i, total) {
        const size_t n = i / ((size_t)HW * C);
        din[i] = dout[n * C + i % C] * inv;
    }
}
} // namespace

extern "C" void gap_forward_cuda(EffCuda *cu, float *out, const float *in, int N, int HW, int C) {
    double *partial;
    const int chunks = eff_colreduce(cu, PoolF{in, HW, C}, N, HW, C, 0, &partial, NULL);
    pool_finalize<<<eff_blocks((size_t)N * C), EFF_THREADS, 0, cu->stream>>>(out, partial, chunks, N, C,
                                                                             1.0f / (float)HW);
    CUDA_LAUNCHED("pool_finalize");
}

extern "C" void gap_backward_cuda(EffCuda *cu, float *din, const float *dout, int N, int HW, int C) {
    const size_t total = (size_t)N * HW * C;
    gap_back<<<eff_blocks(total), EFF_THREADS, 0, cu->stream>>>(din, dout, total, HW, C, 1.0f / (float)HW);
    CUDA_LAUNCHED("gap_back");
}
