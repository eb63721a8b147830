/* emu_util.h: host tensors in the act types for the kernel-emulation tests
 * (test_kernel_emulate.c, test_ew_emulate.c). */
#ifndef EFFNET_EMU_UTIL_H
#define EFFNET_EMU_UTIL_H

#include "common.h"
#include "half.h"
#include "rng.h"

#include <stdlib.h>
#include <string.h>

/* Act storage: 64-byte aligned + `shift` elements (misaligned when != 0). */
typedef struct {
    void *base, *p;
} Act;

static inline Act act_from(const float *x, size_t n, int prec, int shift) {
    const size_t es = prec ? 2 : 4;
    Act a;
    a.base = aligned_alloc(64, ((n + (size_t)shift) * es + 63) / 64 * 64);
    a.p = (char *)a.base + (size_t)shift * es;
    if (!x) memset(a.p, 0xff, n * es); /* NaN in every type: an element never written never matches */
    for (size_t i = 0; i < n && x; i++) {
        if (prec == 0) ((float *)a.p)[i] = x[i];
        else ((uint16_t *)a.p)[i] = prec == 1 ? eff_f32_to_bf16(x[i]) : eff_f32_to_f16(x[i]);
    }
    return a;
}

static inline float act_at(const Act *a, size_t i, int prec) {
    if (prec == 0) return ((const float *)a->p)[i];
    const uint16_t h = ((const uint16_t *)a->p)[i];
    return prec == 1 ? eff_bf16_to_f32(h) : eff_f16_to_f32(h);
}

static inline float *randn(EffRng *r, size_t n, double scale, int prec) {
    float *x = eff_malloc(n * sizeof(float), "test data");
    for (size_t i = 0; i < n; i++) x[i] = eff_round_act((float)(scale * eff_rng_normal(r)), prec);
    return x;
}

static inline int bits_equal(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

static inline const char *prec_name(int prec) { return prec == 0 ? "fp32" : prec == 1 ? "bf16" : "fp16"; }

#endif
