/* data_rng.h: the counter-based RNG of the data path.
 *
 * Every random number is a pure function of a key, never of a thread, rank or
 * call order:  key = mix(mix(mix(mix(domain) ^ seed) ^ a) ^ b),  and the k-th
 * number of the stream under that key is splitmix64's output mix(key + (k+1)*G)
 * (G the golden-ratio constant).  The sampler's permutation uses
 * (EFF_RNG_PERM, seed, epoch, 0); an image's augmentation uses
 * (EFF_RNG_AUG, seed, epoch, global sample index).  docs/data-format.md
 * documents the draw order. */
#ifndef EFFNET_DATA_RNG_H
#define EFFNET_DATA_RNG_H

#include "mix64.h" /* eff_mix64 */

#include <stdint.h>

#define EFF_RNG_GOLDEN 0x9E3779B97F4A7C15ull
enum { EFF_RNG_PERM = 0x5045524Du /* "PERM" */, EFF_RNG_AUG = 0x41554721u /* "AUG!" */ };

static inline uint64_t eff_rng_key(uint64_t domain, uint64_t seed, uint64_t a, uint64_t b) {
    uint64_t h = eff_mix64(eff_mix64(domain) ^ seed);
    h = eff_mix64(h ^ a);
    return eff_mix64(h ^ b);
}

typedef struct {
    uint64_t key;
    uint64_t ctr;
} eff_rng_stream;

static inline eff_rng_stream eff_rng_stream_at(uint64_t key) {
    eff_rng_stream s = {key, 0};
    return s;
}

static inline uint64_t eff_rng_next(eff_rng_stream *s) {
    s->ctr++;
    return eff_mix64(s->key + s->ctr * EFF_RNG_GOLDEN);
}

/* Uniform double in [0, 1) with 53 random bits. */
static inline double eff_rng_uniform(eff_rng_stream *s) {
    return (double)(eff_rng_next(s) >> 11) * 0x1.0p-53;
}

/* Uniform integer in [0, n), n >= 1: the high word of a 64x64-bit product
 * (Lemire's method without the rejection step; the bias is below n / 2^64). */
static inline uint64_t eff_rng_below(eff_rng_stream *s, uint64_t n) {
    uint64_t x = eff_rng_next(s);
    uint64_t xl = x & 0xFFFFFFFFu, xh = x >> 32, nl = n & 0xFFFFFFFFu, nh = n >> 32;
    uint64_t ll = xl * nl, lh = xl * nh, hl = xh * nl, hh = xh * nh;
    uint64_t mid = (ll >> 32) + (lh & 0xFFFFFFFFu) + (hl & 0xFFFFFFFFu);
    return hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
}

#endif
