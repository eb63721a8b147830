/* vec.cuh: V consecutive activations of type T as floats, with one 16-byte
 * load or store when V * sizeof(T) == 16 (the caller guarantees 16-byte
 * alignment: eff_vec_width), else element by element. Loads widen exactly,
 * stores round to nearest even once -- the conversions of act.cuh.
 *
 * CUDA C++, __host__ __device__: the host emulations of the kernels
 * (dwconv.cu, tests/gpu/test_kernel_emulate.c) run this same code on the
 * CPU, so lane order (element 0 in the low half of each 32-bit word) is
 * checked there. */
#ifndef EFFNET_VEC_CUH
#define EFFNET_VEC_CUH

#include "index_math.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <string.h>
#include <type_traits>

EFF_HD inline float eff_tof(float v) { return v; }
EFF_HD inline float eff_tof(__nv_bfloat16 v) { return __bfloat162float(v); }
EFF_HD inline float eff_tof(__half v) { return __half2float(v); }

template <typename T> EFF_HD inline T eff_fromf(float v);
template <> EFF_HD inline float eff_fromf<float>(float v) { return v; }
template <> EFF_HD inline __nv_bfloat16 eff_fromf<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> EFF_HD inline __half eff_fromf<__half>(float v) { return __float2half_rn(v); }

/* 16 bytes at p (16-byte aligned). On the host through memcpy (no aliasing
 * assumptions); on the device one 128-bit load or store. */
EFF_HD inline uint4 eff_ld16(const void *p) {
#ifdef __CUDA_ARCH__
    return *static_cast<const uint4 *>(p);
#else
    uint4 u;
    memcpy(&u, p, sizeof u);
    return u;
#endif
}
EFF_HD inline void eff_st16(void *p, uint4 u) {
#ifdef __CUDA_ARCH__
    *static_cast<uint4 *>(p) = u;
#else
    memcpy(p, &u, sizeof u);
#endif
}

/* Bit casts between float and uint32_t on both sides. */
EFF_HD inline float eff_u2f(uint32_t x) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(x);
#else
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
#endif
}
EFF_HD inline uint32_t eff_f2u(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    return x;
#endif
}

/* Two 16-bit values packed in a word: element 0 in the low half. */
EFF_HD inline float2 eff_unpack2(uint32_t w, __nv_bfloat16 *) {
    __nv_bfloat162_raw r;
    r.x = (unsigned short)(w & 0xffffu), r.y = (unsigned short)(w >> 16);
    return __bfloat1622float2(__nv_bfloat162(r));
}
EFF_HD inline float2 eff_unpack2(uint32_t w, __half *) {
    __half2_raw r;
    r.x = (unsigned short)(w & 0xffffu), r.y = (unsigned short)(w >> 16);
    return __half22float2(__half2(r));
}
EFF_HD inline uint32_t eff_pack2(float a, float b, __nv_bfloat16 *) {
    const __nv_bfloat162_raw r = __floats2bfloat162_rn(a, b);
    return (uint32_t)r.x | (uint32_t)r.y << 16;
}
EFF_HD inline uint32_t eff_pack2(float a, float b, __half *) {
    const __half2_raw r = __floats2half2_rn(a, b);
    return (uint32_t)r.x | (uint32_t)r.y << 16;
}

/* Scalar path (any V, any T). */
template <int V, typename T> struct EffVec {
    static EFF_HD inline void load(float *f, const T *p) {
        EFF_UNROLL
        for (int v = 0; v < V; v++) f[v] = eff_tof(p[v]);
    }
    static EFF_HD inline void store(T *p, const float *f) {
        EFF_UNROLL
        for (int v = 0; v < V; v++) p[v] = eff_fromf<T>(f[v]);
    }
};

/* 4 or 8 floats: one or two 16-byte accesses. */
template <int V> struct EffVecF32 {
    static EFF_HD inline void load(float *f, const float *p) {
        EFF_UNROLL
        for (int k = 0; k < V / 4; k++) {
            const uint4 u = eff_ld16(p + 4 * k);
            f[4 * k] = eff_u2f(u.x), f[4 * k + 1] = eff_u2f(u.y);
            f[4 * k + 2] = eff_u2f(u.z), f[4 * k + 3] = eff_u2f(u.w);
        }
    }
    static EFF_HD inline void store(float *p, const float *f) {
        EFF_UNROLL
        for (int k = 0; k < V / 4; k++) {
            uint4 u;
            u.x = eff_f2u(f[4 * k]), u.y = eff_f2u(f[4 * k + 1]);
            u.z = eff_f2u(f[4 * k + 2]), u.w = eff_f2u(f[4 * k + 3]);
            eff_st16(p + 4 * k, u);
        }
    }
};
template <> struct EffVec<4, float> : EffVecF32<4> {};
template <> struct EffVec<8, float> : EffVecF32<8> {};

/* 8 bf16 or fp16: one 16-byte access, four packed pairs. */
template <typename H> struct EffVecH8 {
    static EFF_HD inline void load(float *f, const H *p) {
        const uint4 u = eff_ld16(p);
        const uint32_t w[4] = {u.x, u.y, u.z, u.w};
        EFF_UNROLL
        for (int k = 0; k < 4; k++) {
            const float2 t = eff_unpack2(w[k], (H *)0);
            f[2 * k] = t.x, f[2 * k + 1] = t.y;
        }
    }
    static EFF_HD inline void store(H *p, const float *f) {
        uint4 u;
        u.x = eff_pack2(f[0], f[1], (H *)0), u.y = eff_pack2(f[2], f[3], (H *)0);
        u.z = eff_pack2(f[4], f[5], (H *)0), u.w = eff_pack2(f[6], f[7], (H *)0);
        eff_st16(p, u);
    }
};
template <> struct EffVec<8, __nv_bfloat16> : EffVecH8<__nv_bfloat16> {};
template <> struct EffVec<8, __half> : EffVecH8<__half> {};

/* The vector width of T: 16 bytes. */
template <typename T> struct EffVecW {
    static constexpr int value = 16 / (int)sizeof(T);
};

template <int N> using EffInt = std::integral_constant<int, N>;

/* f(EffInt<V>()) for a runtime width V: 1 or T's 16-byte width. */
template <typename T, typename F> inline void eff_with_vec(int V, F f) {
    if (V == 1)
        f(EffInt<1>());
    else
        f(EffInt<EffVecW<T>::value>());
}

#endif
