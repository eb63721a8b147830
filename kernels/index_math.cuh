/* index_math.cuh: index arithmetic shared by the CUDA kernels and their CPU
 * tests. Plain C11 as well as CUDA C++: every function is EFF_HD (host and
 * device under nvcc, plain static inline in C), so tests/test_kernel_index.c
 * runs the kernels' own index math on a machine without a GPU.
 *
 * 32-bit indices: a kernel indexes one image (or one launch piece) with
 * uint32_t, and its launcher checks before the launch that the sizes fit
 * under EFF_INDEX_MAX (2^31 - 1), so no 32-bit sum below can wrap. */
#ifndef EFFNET_INDEX_MATH_CUH
#define EFFNET_INDEX_MATH_CUH

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define EFF_HD __host__ __device__
#else
#define EFF_HD
#endif

/* #pragma unroll in device code only (the host compiler warns on it).
 * EFF_NO_UNROLL: a loop with a run-time stride kept rolled, so that the
 * compiler computes no trip count (an integer division) for it. */
#ifdef __CUDA_ARCH__
#define EFF_UNROLL _Pragma("unroll")
#define EFF_NO_UNROLL _Pragma("unroll 1")
#else
#define EFF_UNROLL
#define EFF_NO_UNROLL
#endif

#define EFF_INDEX_MAX 0x7fffffffu
/* Threads per block of the elementwise kernels; grid.y carries at most this
 * many images (CUDA's limit), more are looped over. */
#define EFF_BLOCK 256u
#define EFF_GRID_Y_MAX 65535u
/* Cap on grid.x of the grid-stride loops: 2^19 blocks. */
#define EFF_GRID_X_CAP (65535u * 8u)

/* Division of n < 2^31 by a divisor d >= 1 fixed at launch: q = n / d as a
 * multiply-high and a shift (Granlund-Montgomery, as CUTLASS's FastDivmod).
 * With s = ceil(log2 d), mul = ceil(2^(31+s) / d) < 2^32 and
 * q = (n * mul) >> (31 + s); the error term n * (mul * d - 2^(31+s)) <
 * 2^31 * 2^s stays below 2^(31+s), so q is exact for every n < 2^31. */
typedef struct EffDivmod {
    uint32_t d, mul, shr;
} EffDivmod;

static inline EffDivmod eff_divmod_make(uint32_t d) {
    EffDivmod m;
    m.d = d;
    m.mul = 0;
    m.shr = 0;
    if (d > 1) {
        uint32_t s = 0;
        while (s < 32 && ((uint64_t)1 << s) < d) s++;
        m.mul = (uint32_t)((((uint64_t)1 << (31 + s)) + d - 1) / d);
        m.shr = s - 1;
    }
    return m;
}

EFF_HD static inline uint32_t eff_div(EffDivmod m, uint32_t n) {
    if (m.d == 1) return n;
#ifdef __CUDA_ARCH__
    return __umulhi(n, m.mul) >> m.shr;
#else
    return (uint32_t)(((uint64_t)n * m.mul) >> 32) >> m.shr;
#endif
}

/* q = n / d, r = n % d (n < 2^31). */
EFF_HD static inline void eff_divmod(EffDivmod m, uint32_t n, uint32_t *q, uint32_t *r) {
    *q = eff_div(m, n);
    *r = n - *q * m.d;
}

/* acc + a * b with one rounding: the device's FMA, and C99 fmaf (correctly
 * rounded, fused) on the host, so a host emulation sums bit for bit like
 * the device. */
EFF_HD static inline float eff_fmaf(float a, float b, float acc) {
#ifdef __CUDA_ARCH__
    return __fmaf_rn(a, b, acc);
#else
    return fmaf(a, b, acc);
#endif
}

/* Channels per thread: one 16-byte vector (8 of a 16-bit type, 4 floats)
 * when C is a multiple of it and every pointer the kernel vector-loads is
 * 16-byte aligned (all_aligned), else 1 (the scalar path). */
static inline int eff_vec_width(int C, int elem_bytes, int all_aligned) {
    const int v = 16 / elem_bytes;
    return all_aligned && C % v == 0 ? v : 1;
}

static inline int eff_aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

/* Blocks of EFF_BLOCK threads for `work` items, at least one, at most cap. */
static inline uint32_t eff_grid_x(uint32_t work, uint32_t cap) {
    uint32_t b = work / EFF_BLOCK + (work % EFF_BLOCK != 0);
    if (b < 1) b = 1;
    return b > cap ? cap : b;
}

static inline uint32_t eff_grid_y(int nimages) {
    return nimages > (int)EFF_GRID_Y_MAX ? EFF_GRID_Y_MAX : (uint32_t)(nimages < 1 ? 1 : nimages);
}

#endif
