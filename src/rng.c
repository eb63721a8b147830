/* rng.c: xoshiro256** (Blackman & Vigna), seeded through splitmix64. */
#include "rng.h"

#include <math.h>

void eff_rng_seed(EffRng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) { x = eff_mix64(x); r->s[i] = x; }
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t eff_rng_next(EffRng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return result;
}

double eff_rng_uniform(EffRng *r) { return (double)(eff_rng_next(r) >> 11) * 0x1.0p-53; }

double eff_rng_normal(EffRng *r) {
    double u1 = eff_rng_uniform(r), u2 = eff_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
