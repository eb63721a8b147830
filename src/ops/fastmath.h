/* fastmath.h: a vectorisable expf and sigmoid (within ~2 ulp of libm's expf),
 * so elementwise loops compile to SIMD without -ffast-math. */
#ifndef EFFNET_FASTMATH_H
#define EFFNET_FASTMATH_H

#include <stdint.h>
#include <string.h>

static inline float eff_expf(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    /* round to nearest with the 1.5*2^23 trick: vectorises, unlike roundf */
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    /* r = x - n*ln2 in two parts (Cody-Waite) so r is exact to ~1 ulp. */
    float r = x - n * 0.693145751953125f;
    r = r - n * 1.428606765330187045e-06f;
    /* exp(r) on |r| <= ln2/2: degree-6 Taylor/minimax, error < 1 ulp. */
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float eff_sigmoidf(float x) { return 1.0f / (1.0f + eff_expf(-x)); }

#endif
