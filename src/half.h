/* half.h: host conversions between float and the 16-bit activation types of
 * the CUDA backend (bfloat16, IEEE binary16), bit-compatible with CUDA's
 * __float2bfloat16_rn / __float2half_rn (round to nearest, ties to even) and
 * their exact widening inverses. Used to move activations between host
 * floats and device memory, and by the tests to build bf16/fp16 references.
 * Checked against PyTorch's conversions by tests/test_half.c. */
#ifndef EFFNET_HALF_H
#define EFFNET_HALF_H

#include <stdint.h>
#include <string.h>

static inline uint32_t eff_f32_bits(float f) { uint32_t u; memcpy(&u, &f, sizeof u); return u; }
static inline float eff_bits_f32(uint32_t u) { float f; memcpy(&f, &u, sizeof f); return f; }

static inline uint16_t eff_f32_to_bf16(float f) {
    uint32_t u = eff_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); /* NaN stays a (quiet) NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even; overflow carries into Inf */
    return (uint16_t)(u >> 16);
}
static inline float eff_bf16_to_f32(uint16_t h) { return eff_bits_f32((uint32_t)h << 16); }

static inline uint16_t eff_f32_to_f16(float f) {
    const uint32_t u = eff_f32_bits(f), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);            /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);           /* >= 65520 rounds to Inf */
    if (a < 0x38800000u) {                                             /* below 2^-14: subnormal or zero */
        if (a < 0x33000000u) return (uint16_t)sign;                    /* <= 2^-25 rounds to zero */
        const uint32_t m = (a & 0x7fffffu) | 0x800000u;                /* 24-bit significand */
        const int shift = 126 - (int)(a >> 23);                        /* 14..24 */
        uint32_t r = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = a - 0x38000000u;                                      /* rebias exponent 127 -> 15 */
    const uint32_t rem = r & 0x1fffu;
    r >>= 13;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) r++;            /* may carry into the exponent: fine */
    return (uint16_t)(sign | r);
}
static inline float eff_f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) return eff_bits_f32(sign | 0x7f800000u | (m << 13));
    if (e == 0) {
        /* subnormal: m * 2^-24, exact in float */
        float v = (float)m * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return eff_bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

/* Round a float to the nearest value of the act type of precision prec
 * (0 fp32: unchanged, 1 bf16, 2 fp16). */
static inline float eff_round_act(float f, int prec) {
    if (prec == 1) return eff_bf16_to_f32(eff_f32_to_bf16(f));
    if (prec == 2) return eff_f16_to_f32(eff_f32_to_f16(f));
    return f;
}

#endif
