/* act.cuh: the activation storage type of the CUDA kernels.
 *
 * Activations and activation gradients (EffAct in src/backend/backend.h) are stored
 * as T = float, __nv_bfloat16 or __half, chosen by the backend precision
 * (EffCuda.precision). Kernels are templates on T: they load with eff_ld()
 * (exact widening to float), do all math in float, and store with
 * eff_st<T>() (round to nearest even). EFF_ACT_DISPATCH picks the
 * instantiation at the launcher. */
#ifndef EFFNET_ACT_CUH
#define EFFNET_ACT_CUH

#include "cuda_common.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <library_types.h>

__device__ __forceinline__ float eff_ld(float v) { return v; }
__device__ __forceinline__ float eff_ld(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float eff_ld(__half v) { return __half2float(v); }

template <typename T> __device__ __forceinline__ T eff_st(float v);
template <> __device__ __forceinline__ float eff_st<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 eff_st<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half eff_st<__half>(float v) { return __float2half_rn(v); }

/* The cuBLAS / CUDA library type of T. */
template <typename T> struct EffActType;
template <> struct EffActType<float> { static constexpr cudaDataType_t cuda = CUDA_R_32F; };
template <> struct EffActType<__nv_bfloat16> { static constexpr cudaDataType_t cuda = CUDA_R_16BF; };
template <> struct EffActType<__half> { static constexpr cudaDataType_t cuda = CUDA_R_16F; };

/* Run the statements with T bound to the activation type of precision prec
 * (0 fp32, 1 bf16, 2 fp16: EffPrecision). */
#define EFF_ACT_DISPATCH(prec, T, ...)                  \
    do {                                                \
        switch (prec) {                                 \
        case 1: { typedef __nv_bfloat16 T; __VA_ARGS__; } break; \
        case 2: { typedef __half T; __VA_ARGS__; } break;        \
        default: { typedef float T; __VA_ARGS__; } break;        \
        }                                               \
    } while (0)

/* dst[i] = (D)src[i], any pair of the three types (conversions between
 * activations and fp32 scratch). */
template <typename D, typename S>
__global__ void eff_convert_k(D *dst, const S *src, size_t n) {
    GRID_STRIDE(i, n) dst[i] = eff_st<D>(eff_ld(src[i]));
}

#endif
