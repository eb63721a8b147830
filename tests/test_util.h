/* test_util.h: tiny helpers shared by the C tests (checks that count failures,
 * relative errors, random fills). Each test exits non-zero on any failure. */
#ifndef EFFNET_TEST_UTIL_H
#define EFFNET_TEST_UTIL_H

#include "rng.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>

typedef struct TestState { int checks, failures; } TestState;

#define T_CHECK(ts, cond, ...) do { (ts)->checks++; if (!(cond)) { (ts)->failures++; \
    printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static inline int t_finish(const TestState *ts, const char *name) {
    printf("%s: %d checks, %d failed\n", name, ts->checks, ts->failures);
    return ts->failures ? 1 : 0;
}

/* ||a-b|| / ||b|| (or ||a|| if b is zero). */
static inline double t_rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) { double d = (double)a[i] - b[i]; num += d * d; den += (double)b[i] * b[i]; }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static inline void t_fill_normal(EffRng *r, float *x, size_t n, double scale) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * eff_rng_normal(r));
}

#endif
