/* dwconv.cu: depthwise KxK conv, padding K/2, NHWC -- the CUDA twin of
 * src/ops/dwconv.c. w: [K][K][C].
 * Forward and the input gradient: one thread per output / input element,
 * channels fastest so a warp reads 32 consecutive channels (coalesced).
 * Weight gradient: per (row chunk, 32 channels) block, each thread keeps the
 * K*K tap sums of its channel in registers over the chunk's output pixels;
 * chunk partials are then added in chunk order (deterministic, no atomics).
 * Activations (in, out, dout, din) are of the act type T (act.cuh); the
 * weights and their gradient are fp32, and all sums are float/double. */
#include "act.cuh"

namespace {

template <typename T>
__global__ void dw_forward(T *out, const T *in, const float *w, int N, int H, int W, int C, int K,
                           int stride, int Ho, int Wo) {
    const int pad = K / 2;
    GRID_STRIDE(i, (size_t)N * Ho * Wo * C) {
        const int c = (int)(i % C);
        size_t t = i / C;
        const int wo = (int)(t % Wo);
        t /= Wo;
        const int ho = (int)(t % Ho);
        const int n = (int)(t / Ho);
        float acc = 0.0f;
        for (int kh = 0; kh < K; kh++) {
            const int hi = ho * stride - pad + kh;
            if (hi < 0 || hi >= H) continue;
            for (int kw = 0; kw < K; kw++) {
                const int wi = wo * stride - pad + kw;
                if (wi < 0 || wi >= W) continue;
                acc += eff_ld(in[(((size_t)n * H + hi) * W + wi) * C + c]) * w[(kh * K + kw) * C + c];
            }
        }
        out[i] = eff_st<T>(acc);
    }
}

template <typename T>
__global__ void dw_backward_input(T *din, const T *dout, const float *w, int N, int H, int W, int C, int K,
                                  int stride, int Ho, int Wo) {
    const int pad = K / 2;
    GRID_STRIDE(i, (size_t)N * H * W * C) {
        const int c = (int)(i % C);
        size_t t = i / C;
        const int wi = (int)(t % W);
        t /= W;
        const int hi = (int)(t % H);
        const int n = (int)(t / H);
        float acc = 0.0f;
        for (int kh = 0; kh < K; kh++) {
            const int th = hi + pad - kh;
            if (th < 0 || th % stride) continue;
            const int ho = th / stride;
            if (ho >= Ho) continue;
            for (int kw = 0; kw < K; kw++) {
                const int tw = wi + pad - kw;
                if (tw < 0 || tw % stride) continue;
                const int wo = tw / stride;
                if (wo >= Wo) continue;
                acc += eff_ld(dout[(((size_t)n * Ho + ho) * Wo + wo) * C + c]) * w[(kh * K + kw) * C + c];
            }
        }
        din[i] = eff_st<T>(acc);
    }
}

#define DW_TX 32
#define DW_TY 4
/* partial[chunk][K*K][C]; K is a template parameter so the tap sums stay in
 * registers (EfficientNet uses K = 3 and 5). */
template <int K, typename T>
__global__ void dw_backward_weight_partial(double *partial, const T *dout, const T *in, int N, int H, int W,
                                           int C, int stride, int Ho, int Wo, int chunks) {
    __shared__ double sh[DW_TY][DW_TX];
    const int tx = threadIdx.x, ty = threadIdx.y, c = blockIdx.y * DW_TX + tx, k = blockIdx.x, pad = K / 2;
    const long P = (long)N * Ho * Wo, p0 = P * k / chunks, p1 = P * (k + 1) / chunks;
    double acc[K * K];
#pragma unroll
    for (int j = 0; j < K * K; j++) acc[j] = 0.0;
    if (c < C) {
        for (long p = p0 + ty; p < p1; p += DW_TY) {
            const int wo = (int)(p % Wo), ho = (int)(p / Wo % Ho), n = (int)(p / ((long)Wo * Ho));
            const float g = eff_ld(dout[(size_t)p * C + c]);
#pragma unroll
            for (int kh = 0; kh < K; kh++) {
                const int hi = ho * stride - pad + kh;
                if (hi < 0 || hi >= H) continue;
#pragma unroll
                for (int kw = 0; kw < K; kw++) {
                    const int wi = wo * stride - pad + kw;
                    if (wi < 0 || wi >= W) continue;
                    acc[kh * K + kw] += (double)(g * eff_ld(in[(((size_t)n * H + hi) * W + wi) * C + c]));
                }
            }
        }
    }
#pragma unroll
    for (int j = 0; j < K * K; j++) {
        sh[ty][tx] = acc[j];
        __syncthreads();
        if (ty == 0 && c < C) {
            double s = 0.0;
            for (int r = 0; r < DW_TY; r++) s += sh[r][tx];
            partial[((size_t)k * K * K + j) * C + c] = s;
        }
        __syncthreads();
    }
}

__global__ void dw_backward_weight_finalize(float *dw, const double *partial, int chunks, int KK, int C) {
    GRID_STRIDE(i, (size_t)KK * C) {
        double s = 0.0;
        for (int k = 0; k < chunks; k++) s += partial[(size_t)k * KK * C + i];
        dw[i] += (float)s;
    }
}

} // namespace

static int out_size(int in, int K, int stride) { return (in + 2 * (K / 2) - K) / stride + 1; }

template <typename T>
static void dw_forward_t(EffCuda *cu, T *out, const T *in, const float *w, int N, int H, int W, int C, int K,
                         int stride) {
    const int Ho = out_size(H, K, stride), Wo = out_size(W, K, stride);
    dw_forward<T><<<eff_blocks((size_t)N * Ho * Wo * C), EFF_THREADS, 0, cu->stream>>>(out, in, w, N, H, W, C, K,
                                                                                      stride, Ho, Wo);
    CUDA_LAUNCHED("dw_forward");
}

template <typename T>
static void dw_backward_t(EffCuda *cu, T *din, float *dw, const T *dout, const T *in, const float *w, int N, int H,
                          int W, int C, int K, int stride) {
    const int Ho = out_size(H, K, stride), Wo = out_size(W, K, stride);
    const int chunks = eff_row_chunks((long)N * Ho * Wo, 256, 512);
    double *partial = eff_cuda_reduce_scratch(cu, (size_t)chunks * K * K * C);
    dim3 grid(chunks, (C + DW_TX - 1) / DW_TX), block(DW_TX, DW_TY);
    if (K == 3)
        dw_backward_weight_partial<3, T><<<grid, block, 0, cu->stream>>>(partial, dout, in, N, H, W, C, stride, Ho,
                                                                         Wo, chunks);
    else
        dw_backward_weight_partial<5, T><<<grid, block, 0, cu->stream>>>(partial, dout, in, N, H, W, C, stride, Ho,
                                                                         Wo, chunks);
    CUDA_LAUNCHED("dw_backward_weight_partial");
    dw_backward_weight_finalize<<<eff_blocks((size_t)K * K * C), EFF_THREADS, 0, cu->stream>>>(dw, partial, chunks,
                                                                                               K * K, C);
    CUDA_LAUNCHED("dw_backward_weight_finalize");
    if (din) {
        dw_backward_input<T><<<eff_blocks((size_t)N * H * W * C), EFF_THREADS, 0, cu->stream>>>(
            din, dout, w, N, H, W, C, K, stride, Ho, Wo);
        CUDA_LAUNCHED("dw_backward_input");
    }
}

extern "C" void dwconv_forward_cuda(EffCuda *cu, void *out, const void *in, const float *w, int N, int H, int W,
                                    int C, int K, int stride) {
    EFF_ACT_DISPATCH(cu->precision, T, dw_forward_t<T>(cu, (T *)out, (const T *)in, w, N, H, W, C, K, stride));
}

extern "C" void dwconv_backward_cuda(EffCuda *cu, void *din, float *dw, const void *dout, const void *in,
                                     const float *w, int N, int H, int W, int C, int K, int stride) {
    if (K != 3 && K != 5) eff_cuda_fail("dwconv_backward_cuda", "only kernel sizes 3 and 5 are built", __FILE__, __LINE__);
    EFF_ACT_DISPATCH(cu->precision, T, dw_backward_t<T>(cu, (T *)din, dw, (const T *)dout, (const T *)in, w, N, H, W,
                                                         C, K, stride));
}
