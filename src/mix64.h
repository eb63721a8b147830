/* mix64.h: splitmix64's finaliser (Steele, Lea, Flood 2014), a bijection of
 * 64-bit words -- the one mixer behind every counter-based random number
 * (src/rng.h for dropout and init keys, src/data/data_rng.h for the data
 * path). EFF_HD makes the inline functions callable from CUDA kernels too, so
 * device dropout masks and augmentation draws equal the CPU's bit for bit. */
#ifndef EFFNET_MIX64_H
#define EFFNET_MIX64_H

#include <stdint.h>

#if defined(__CUDACC__)
#define EFF_HD __host__ __device__
#else
#define EFF_HD
#endif

EFF_HD static inline uint64_t eff_mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

#endif
