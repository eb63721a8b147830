/* test_half.c: the host bfloat16 / IEEE half conversions of src/half.h (the
 * CUDA backend's activation storage), checked two independent ways.
 *
 *   test_half                 exhaustive properties, no reference needed:
 *     - every finite 16-bit value survives widen -> narrow unchanged;
 *     - the exact midpoint between two neighbours rounds to the even one,
 *       and the floats just above / below it round up / down;
 *     - overflow goes to Inf (fp16: from 65520 up), NaN stays NaN, the
 *       fp16 subnormals and the 2^-25 zero boundary are right.
 *   test_half --compare FILE  against PyTorch: FILE holds records of
 *     (float32 input, torch bfloat16 bits, torch float16 bits), written by
 *     tests/half_reference.py; every conversion must match bit for bit
 *     (NaNs: both NaN). */
#include "half.h"
#include "test_util.h"

#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint16_t (*Narrow)(float);
typedef float (*Widen)(uint16_t);

static int is_nan16(uint16_t h, int bf) { return bf ? (h & 0x7fffu) > 0x7f80u : (h & 0x7fffu) > 0x7c00u; }

static void properties(TestState *ts, const char *name, Narrow narrow, Widen widen, int bf) {
    const uint16_t inf = bf ? 0x7f80u : 0x7c00u;
    long roundtrip = 0, ties = 0;
    for (uint32_t h = 0; h < 0x10000u; h++) {
        if (is_nan16((uint16_t)h, bf)) {
            T_CHECK(ts, isnan(widen((uint16_t)h)), "%s 0x%04x: NaN must widen to NaN", name, h);
            continue;
        }
        const float f = widen((uint16_t)h);
        T_CHECK(ts, narrow(f) == h, "%s 0x%04x: round trip gives 0x%04x", name, h, narrow(f));
        roundtrip++;
        /* the next value up in magnitude (same sign); skip the largest finite */
        if ((h & 0x7fffu) >= inf - 1u) continue;
        const uint16_t up = (uint16_t)(h + 1u);
        const float g = widen(up), mid = (float)(((double)f + g) / 2); /* exact: needs <= 12 significant bits */
        const uint16_t even = (h & 1u) ? up : (uint16_t)h;
        T_CHECK(ts, narrow(mid) == even, "%s tie between 0x%04x and 0x%04x: got 0x%04x, want 0x%04x", name, h, up,
                narrow(mid), even);
        const float above = nextafterf(mid, f < g ? INFINITY : -INFINITY), below = nextafterf(mid, f < g ? -INFINITY : INFINITY);
        T_CHECK(ts, narrow(above) == up, "%s just past the tie 0x%04x/0x%04x: got 0x%04x", name, h, up, narrow(above));
        T_CHECK(ts, narrow(below) == h, "%s just before the tie 0x%04x/0x%04x: got 0x%04x", name, h, up, narrow(below));
        ties++;
    }
    T_CHECK(ts, narrow(INFINITY) == inf && narrow(-INFINITY) == (uint16_t)(inf | 0x8000u), "%s: Inf", name);
    T_CHECK(ts, is_nan16(narrow(NAN), bf), "%s: NaN must stay NaN", name);
    T_CHECK(ts, narrow(FLT_MAX) == inf, "%s: FLT_MAX must round to Inf", name);
    printf("  %s: %ld values round-trip, %ld ties checked\n", name, roundtrip, ties);
}

static void fp16_edges(TestState *ts) {
    T_CHECK(ts, eff_f32_to_f16(65504.0f) == 0x7bffu, "65504 is the largest half");
    T_CHECK(ts, eff_f32_to_f16(65519.996f) == 0x7bffu, "just under 65520 rounds down");
    T_CHECK(ts, eff_f32_to_f16(65520.0f) == 0x7c00u, "65520 rounds to Inf");
    T_CHECK(ts, eff_f32_to_f16(ldexpf(1.0f, -24)) == 0x0001u, "2^-24 is the smallest subnormal");
    T_CHECK(ts, eff_f32_to_f16(ldexpf(1.0f, -25)) == 0x0000u, "2^-25 ties to even: zero");
    T_CHECK(ts, eff_f32_to_f16(nextafterf(ldexpf(1.0f, -25), 1.0f)) == 0x0001u, "just over 2^-25 rounds up");
    T_CHECK(ts, eff_f32_to_f16(ldexpf(1.0f, -14)) == 0x0400u, "2^-14 is the smallest normal");
    T_CHECK(ts, eff_f32_to_f16(-1.0f) == 0xbc00u && eff_f32_to_f16(1.0f) == 0x3c00u, "+-1");
    T_CHECK(ts, eff_f32_to_bf16(1.0f) == 0x3f80u && eff_f32_to_bf16(-2.0f) == 0xc000u, "bf16 +1, -2");
}

static int compare(TestState *ts, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { printf("cannot open %s\n", path); return 1; }
    struct { float x; uint16_t bf, h; } r;
    long n = 0, bad = 0;
    while (fread(&r.x, 4, 1, f) == 1 && fread(&r.bf, 2, 1, f) == 1 && fread(&r.h, 2, 1, f) == 1) {
        const uint16_t bf = eff_f32_to_bf16(r.x), h = eff_f32_to_f16(r.x);
        const int ok_bf = is_nan16(r.bf, 1) ? is_nan16(bf, 1) : bf == r.bf;
        const int ok_h = is_nan16(r.h, 0) ? is_nan16(h, 0) : h == r.h;
        if ((!ok_bf || !ok_h) && bad++ < 10)
            printf("  %.9g (0x%08x): bf16 0x%04x torch 0x%04x, fp16 0x%04x torch 0x%04x\n", r.x, eff_f32_bits(r.x), bf,
                   r.bf, h, r.h);
        n++;
    }
    fclose(f);
    T_CHECK(ts, n > 1000, "only %ld records in %s", n, path);
    T_CHECK(ts, bad == 0, "%ld of %ld conversions differ from PyTorch", bad, n);
    printf("  vs PyTorch: %ld floats, %ld mismatches\n", n, bad);
    return 0;
}

int main(int argc, char **argv) {
    TestState ts = {0, 0};
    if (argc == 3 && !strcmp(argv[1], "--compare")) {
        if (compare(&ts, argv[2])) return 1;
        return t_finish(&ts, "test_half --compare");
    }
    properties(&ts, "bf16", eff_f32_to_bf16, eff_bf16_to_f32, 1);
    properties(&ts, "fp16", eff_f32_to_f16, eff_f16_to_f32, 0);
    fp16_edges(&ts);
    return t_finish(&ts, "test_half");
}
