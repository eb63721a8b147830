/* test_roofline_act.c: the roofline of `effnet bench --profile` as the GPU
 * check uses it, on the CPU (no GPU needed):
 *  - eff_step_cost counts activations at the backend's act_size: with 2-byte
 *    activations (bf16/fp16 on CUDA) each family's bytes drop by exactly its
 *    activation traffic, counted here independently from the block shapes;
 *    the optimizer (fp32 state only) does not change, dropout/add (only
 *    activations) halves;
 *  - eff_roofline_row: GB/s, GFLOP/s, the fractions of each peak and of the
 *    bound, on hand-computed cases;
 *  - eff_gpu_peaks: the datasheet figures by device name, H100 SXM for an
 *    unknown device. */
#include "backend/backend.h"
#include "common.h"
#include "model.h"
#include "roofline.h"
#include "test_util.h"

#include <math.h>
#include <string.h>

/* Activation elements per step of the 1x1 convs (expand, project, head):
 * forward reads x and writes y, backward reads dy and x and writes dx. */
static double pw_acts(double M, double ci, double co) { return (M * ci + M * co) + (M * co + 2 * M * ci); }

static double pw_act_elems(const EffModel *m) {
    double a = 0;
    for (int i = 0; i < m->nblocks; i++) {
        const EffBlock *b = &m->blk[i];
        const double Mi = (double)m->N * b->Hi * b->Wi, Mo = (double)m->N * b->Ho * b->Wo;
        if (b->expand) a += pw_acts(Mi, b->cin, b->ce);
        a += pw_acts(Mo, b->ce, b->cout);
    }
    const double Mh = (double)m->N * m->Hh * m->Hh;
    return a + pw_acts(Mh, m->blk[m->nblocks - 1].cout, m->head_c);
}

static void check_act_bytes(TestState *ts) {
    EffModelSpec spec;
    EFF_CHECK(eff_model_spec("efficientnet-b0", &spec), "no B0");
    EffBackend half = *eff_backend_cpu(); /* the CPU backend, but 2-byte activations as bf16 on CUDA */
    half.act_size = 2;
    EffModel m4, m2;
    eff_model_create(&m4, eff_backend_cpu(), &spec, 10);
    eff_model_create(&m2, &half, &spec, 10);
    eff_model_alloc_acts(&m4, 4, 64);
    eff_model_alloc_acts(&m2, 4, 64);
    EffStepCost c4, c2;
    eff_step_cost(&m4, 1, &c4);
    eff_step_cost(&m2, 1, &c2);
    T_CHECK(ts, c4.act_bytes == 4 && c2.act_bytes == 2, "act_bytes %g / %g, want 4 / 2", c4.act_bytes, c2.act_bytes);
    for (int k = 0; k < EFF_PROF_COUNT; k++) /* FLOPs do not depend on the storage */
        T_CHECK(ts, c4.flops[k] == c2.flops[k], "%s: FLOPs differ with the act size", eff_prof_names[k]);
    /* every number below is an exact integer sum in double: compared with == */
    T_CHECK(ts, c2.bytes[EFF_PROF_OPTIM] == c4.bytes[EFF_PROF_OPTIM], "optimizer bytes changed with the act size");
    T_CHECK(ts, c2.bytes[EFF_PROF_ELEMWISE] * 2 == c4.bytes[EFF_PROF_ELEMWISE], "dropout/add bytes %.0f, want half of %.0f",
            c2.bytes[EFF_PROF_ELEMWISE], c4.bytes[EFF_PROF_ELEMWISE]);
    const double M1 = (double)m4.N * m4.H1 * m4.H1, Mh = (double)m4.N * m4.Hh * m4.Hh;
    /* stem: its output written (forward) and its gradient read (backward); the image and weights stay fp32 */
    T_CHECK(ts, c4.bytes[EFF_PROF_CONV] - c2.bytes[EFF_PROF_CONV] == 2.0 * 2 * M1 * m4.stem_c, "stem conv: %.0f bytes less, want %.0f",
            c4.bytes[EFF_PROF_CONV] - c2.bytes[EFF_PROF_CONV], 2.0 * 2 * M1 * m4.stem_c);
    T_CHECK(ts, c4.bytes[EFF_PROF_PWCONV] - c2.bytes[EFF_PROF_PWCONV] == 2.0 * pw_act_elems(&m4),
            "1x1 conv: %.0f bytes less, want %.0f", c4.bytes[EFF_PROF_PWCONV] - c2.bytes[EFF_PROF_PWCONV],
            2.0 * pw_act_elems(&m4));
    T_CHECK(ts, c4.bytes[EFF_PROF_HEAD] - c2.bytes[EFF_PROF_HEAD] == 2.0 * 2 * Mh * m4.head_c, "head: %.0f bytes less",
            c4.bytes[EFF_PROF_HEAD] - c2.bytes[EFF_PROF_HEAD]);
    printf("  B0 64x64 batch 4: bytes per step %.1f MB with 4-byte activations, %.1f MB with 2-byte\n",
           (c4.bytes[0] + c4.bytes[1] + c4.bytes[2] + c4.bytes[3] + c4.bytes[4] + c4.bytes[5] + c4.bytes[6] + c4.bytes[7]) / 1e6,
           (c2.bytes[0] + c2.bytes[1] + c2.bytes[2] + c2.bytes[3] + c2.bytes[4] + c2.bytes[5] + c2.bytes[6] + c2.bytes[7]) / 1e6);
    eff_model_destroy(&m4);
    eff_model_destroy(&m2);
}

static void check_rows(TestState *ts) {
    EffRoofRow r;
    /* 2 GFLOP and 1 GB in 10 ms, roofs 1000 GFLOP/s and 100 GB/s: 200 GFLOP/s, 100 GB/s; intensity 2 FLOP/B,
     * so the memory roof allows 200 GFLOP/s < 1000: memory bound, at 100% of it */
    eff_roofline_row(2e9, 1e9, 0.010, 1000, 100, &r);
    T_CHECK(ts, r.ms == 10 && r.gflop == 2 && r.mb == 1000 && r.intensity == 2, "row 1: ms %g gflop %g mb %g ai %g", r.ms,
            r.gflop, r.mb, r.intensity);
    /* 1e-12: a few roundings of exactly representable ratios */
    T_CHECK(ts, fabs(r.gflops - 200) < 1e-9 && fabs(r.gbs - 100) < 1e-9, "row 1: %g GFLOP/s %g GB/s, want 200 and 100",
            r.gflops, r.gbs);
    T_CHECK(ts, r.memory_bound && fabs(r.frac_bound - 1) < 1e-12 && fabs(r.frac_gbs - 1) < 1e-12 &&
                fabs(r.frac_flops - 0.2) < 1e-12, "row 1: bound %d, fractions %g %g %g", r.memory_bound, r.frac_bound,
            r.frac_gbs, r.frac_flops);
    /* 100 GFLOP and 1 GB in 1 s: intensity 100, the memory roof allows 10000 > 1000: compute bound, 10% of it */
    eff_roofline_row(100e9, 1e9, 1.0, 1000, 100, &r);
    T_CHECK(ts, !r.memory_bound && fabs(r.frac_bound - 0.1) < 1e-12 && fabs(r.gbs - 1) < 1e-12,
            "row 2: bound %d, fraction %g, %g GB/s", r.memory_bound, r.frac_bound, r.gbs);
    eff_roofline_row(1e9, 1e9, 0, 1000, 100, &r); /* not timed: zeros, no division by zero */
    T_CHECK(ts, r.gflops == 0 && r.gbs == 0 && r.frac_bound == 0, "an untimed row must read 0");
}

/* the datasheet figures times 1e3 (TFLOP/s -> GFLOP/s) in double: within an ulp, 1e-9 relative is ample */
static int near(double a, double b) { return fabs(a - b) <= 1e-9 * b; }

static void check_peaks(TestState *ts) {
    double gf, gb;
    const char *what;
    int known;
    eff_gpu_peaks("NVIDIA H100 80GB HBM3", EFF_PREC_BF16, &gf, &gb, &what, &known);
    T_CHECK(ts, known && near(gf, 989400) && near(gb, 3350), "H100 SXM bf16: %g GFLOP/s %g GB/s (%s)", gf, gb, what);
    eff_gpu_peaks("NVIDIA H100 80GB HBM3", EFF_PREC_FP32, &gf, &gb, &what, &known);
    T_CHECK(ts, known && near(gf, 66900) && near(gb, 3350), "H100 SXM fp32: %g", gf);
    eff_gpu_peaks("NVIDIA H100 PCIe", EFF_PREC_BF16, &gf, &gb, &what, &known);
    T_CHECK(ts, known && near(gf, 756500) && near(gb, 2000), "H100 PCIe: %g %g (%s)", gf, gb, what);
    eff_gpu_peaks("NVIDIA H200", EFF_PREC_FP16, &gf, &gb, &what, &known);
    T_CHECK(ts, known && near(gf, 989400) && near(gb, 4800), "H200: %g %g", gf, gb);
    eff_gpu_peaks("Some Future GPU", EFF_PREC_BF16, &gf, &gb, &what, &known);
    T_CHECK(ts, !known && near(gf, 989400) && near(gb, 3350) && strstr(what, "assumed"), "unknown: %g %g (%s)", gf, gb, what);
}

int main(void) {
    TestState ts = {0};
    check_act_bytes(&ts);
    check_rows(&ts);
    check_peaks(&ts);
    return t_finish(&ts, "test_roofline_act");
}
