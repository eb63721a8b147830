/* rng.h: counter-based random numbers (reproducible across threads, ranks and
 * resumes) and a small sequential generator for weight initialisation. */
#ifndef EFFNET_RNG_H
#define EFFNET_RNG_H

#include "mix64.h"

#include <stdint.h>

/* A key for one random stream, e.g. (seed, step, layer). */
EFF_HD static inline uint64_t eff_key3(uint64_t a, uint64_t b, uint64_t c) {
    return eff_mix64(eff_mix64(eff_mix64(a) ^ b) ^ c);
}

/* The dropout mask key of layer `layer` in the step keyed step_key (model.c
 * passes the step key and the layer; both backends derive the mask key here). */
#define EFF_DROP_SALT 0xD50Bull
EFF_HD static inline uint64_t eff_drop_key(uint64_t step_key, uint64_t layer) {
    return eff_key3(step_key, EFF_DROP_SALT, layer);
}

/* The stochastic-depth mask key of block `layer` (torchvision variant): one
 * draw per image, eff_uniform_at(eff_sd_key(step_key, layer), n) for image n
 * of the micro-batch. Its own salt, so it never reuses a dropout stream. */
#define EFF_SD_SALT 0x5D0Bull
EFF_HD static inline uint64_t eff_sd_key(uint64_t step_key, uint64_t layer) {
    return eff_key3(step_key, EFF_SD_SALT, layer);
}

/* Uniform in [0,1) with 24 random bits, element `i` of stream `key`. */
EFF_HD static inline float eff_uniform_at(uint64_t key, uint64_t i) {
    return (float)(eff_mix64(key ^ (i * 0xD1B54A32D192ED03ull)) >> 40) * (1.0f / 16777216.0f);
}

/* xoshiro256** sequential generator. */
typedef struct EffRng { uint64_t s[4]; } EffRng;
void eff_rng_seed(EffRng *r, uint64_t seed);
uint64_t eff_rng_next(EffRng *r);
double eff_rng_uniform(EffRng *r);              /* [0,1) with 53 bits */
double eff_rng_normal(EffRng *r);               /* standard normal (Box-Muller) */

#endif
