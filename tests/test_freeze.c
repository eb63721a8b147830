/* test_freeze.c: train.freeze, train.freeze_bn and optim.backbone_lr_mult at
 * the model level (issue 25, section 3), on the CPU backend, B0 at 32x32:
 *
 * 1. A frozen model's backward stops at the boundary: the gradients of the
 *    frozen prefix [0, train_lo) are exactly 0 and every other gradient is
 *    bit-identical to the unfrozen model's on the same batch (the same ops
 *    run above the boundary; skipping the boundary block's input gradient
 *    changes no parameter gradient). Both variants; the stem, stages 1..3,
 *    all 7 stages, and with train.recompute.
 * 2. train.freeze_bn = eval: a train step leaves the frozen BNs' running
 *    statistics bit-identical and moves the others; the frozen layers
 *    normalise with the running statistics (the stem's output equals an
 *    eval forward's).
 * 3. The optimizer's ranges cover the trainable suffix only (opt_n), and an
 *    Adam or SGD step leaves the frozen parameters bit-identical.
 * 4. backbone_lr_mult: 0 leaves every parameter before classifier.1.weight
 *    bit-identical while the classifier moves; 0.5 equals a step with lr/2
 *    on the backbone and lr on the classifier, bit for bit, also when the
 *    ranges are cut in pieces (ZeRO-1's) with one straddling the classifier.
 * 5. The backward time with each freeze setting (printed, not asserted: the
 *    saving, docs/finetuning.md). */
#include "common.h"
#include "model.h"
#include "rng.h"
#include "test_util.h"

#include <string.h>

enum { N = 4, R = 32 };

static void setup(EffModel *m, const char *variant, int freeze, int bn_eval, int recompute) {
    EffModelSpec spec;
    eff_model_spec("efficientnet-b0", &spec);
    eff_model_spec_set_variant(&spec, variant);
    eff_model_create(m, eff_backend_cpu(), &spec, 10);
    eff_model_init_weights(m, 5);
    eff_model_set_freeze(m, freeze, bn_eval);
    m->recompute = recompute;
    eff_model_alloc_acts(m, N, R);
}

static int same(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

static int all_zero(const float *a, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[i] != 0.0f) return 0;
    return 1;
}

/* 1: gradients of a frozen model against the unfrozen one's. */
static void check_gradients(TestState *ts, const char *variant, int freeze, int recompute, const float *x,
                            const int32_t *y) {
    EffModel a, b;
    setup(&a, variant, -1, 0, 0);
    setup(&b, variant, freeze, 0, recompute);
    const uint64_t key = eff_key3(9, 1, 0); /* the same dropout / stochastic-depth masks */
    eff_model_zero_grad(&a);
    eff_model_zero_grad(&b);
    const float la = eff_model_forward(&a, x, y, 1, key), lb = eff_model_forward(&b, x, y, 1, key);
    eff_model_backward(&a, 1.0f);
    eff_model_backward(&b, 1.0f);
    const size_t lo = b.train_lo, P = b.ptab.total;
    T_CHECK(ts, lo > 0 && lo < P, "%s freeze %d: boundary %zu of %zu", variant, freeze, lo, P);
    T_CHECK(ts, memcmp(&la, &lb, sizeof la) == 0, "%s freeze %d: loss %.9g vs %.9g", variant, freeze, lb, la);
    T_CHECK(ts, all_zero(b.grad, lo), "%s freeze %d: a frozen parameter got a gradient", variant, freeze);
    T_CHECK(ts, same(a.grad + lo, b.grad + lo, P - lo), "%s freeze %d%s: trainable gradients differ (rel err %.3e)",
            variant, freeze, recompute ? " recompute" : "", t_rel_err(b.grad + lo, a.grad + lo, P - lo));
    T_CHECK(ts, !all_zero(a.grad, lo), "%s freeze %d: the unfrozen model has no gradient below the boundary "
            "(the check above would be empty)", variant, freeze);
    printf("  %s, freeze %d%s: %zu of %zu parameters frozen (%d blocks): their gradients 0, the rest bit-identical "
           "to the unfrozen model's\n", variant, freeze, recompute ? ", recompute" : "", lo, P, b.freeze_blocks);
    eff_model_destroy(&a);
    eff_model_destroy(&b);
}

/* 2: train.freeze_bn = eval. */
static void check_bn_eval(TestState *ts, const float *x, const int32_t *y) {
    EffModel a, b;
    setup(&a, "torchvision", -1, 0, 0);
    setup(&b, "torchvision", 3, 1, 0);
    const size_t nb = b.btab.total, lo = b.bn_lo;
    float *before = eff_malloc(nb * sizeof(float), "BN statistics");
    memcpy(before, b.bufs, nb * sizeof(float));
    T_CHECK(ts, lo > 0 && lo < nb, "freeze_bn eval: BN boundary %zu of %zu", lo, nb);
    eff_model_zero_grad(&b);
    eff_model_forward(&b, x, y, 1, 1);
    eff_model_backward(&b, 1.0f);
    T_CHECK(ts, same(before, b.bufs, lo), "freeze_bn eval: a frozen BN's running statistics changed");
    T_CHECK(ts, !same(before + lo, b.bufs + lo, nb - lo), "freeze_bn eval: the trainable BNs' statistics did not move");
    eff_model_forward(&a, x, y, 0, 1); /* eval: every BN on its running statistics */
    const size_t stem = (size_t)N * a.H1 * a.H1 * a.stem_c;
    T_CHECK(ts, same(a.stem_act, b.stem_act, stem), "freeze_bn eval: the frozen stem did not normalise with its "
            "running statistics");
    printf("  freeze 3, freeze_bn eval: %zu frozen BN statistics bit-identical after a step, the other %zu moved; the "
           "stem's output is an eval forward's\n", lo, nb - lo);
    eff_free(before);
    eff_model_destroy(&a);
    eff_model_destroy(&b);
}

/* One optimizer step on m's current gradients. */
static void step(EffModel *m, const char *opt, float lr) {
    const EffOptimizer o = {.name = opt, .lr = lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 1e-4f,
                            .momentum = 0.9f, .nesterov = 1};
    eff_model_optimizer_step(m, &o);
}

/* A model after one forward and backward on (x, y); freeze 2 with its optimizer ranges: nseg pieces of the trainable suffix. */
static void stepped_model(EffModel *m, int nseg, const float *x, const int32_t *y) {
    setup(m, "seed", 2, 0, 0);
    EffSeg seg[3];
    const size_t lo = m->train_lo, n = m->ptab.total - lo;
    const size_t cut[4] = {lo, lo + n / 3, m->fc_w + 5 /* straddles the classifier */, m->ptab.total};
    if (nseg == 1) seg[0] = (EffSeg){lo, n};
    for (int i = 0; nseg == 3 && i < 3; i++) seg[i] = (EffSeg){cut[i], cut[i + 1] - cut[i]};
    eff_model_set_optimizer_ranges(m, seg, nseg);
    eff_model_zero_grad(m);
    eff_model_forward(m, x, y, 1, 3);
    eff_model_backward(m, 1.0f);
}

/* 3 and 4: the optimizer's ranges and the backbone's learning rate. */
static void check_optimizer(TestState *ts, const char *opt, const float *x, const int32_t *y) {
    EffModel m, half, full;
    stepped_model(&m, 1, x, y);
    const size_t P = m.ptab.total, lo = m.train_lo, fc = m.fc_w;
    T_CHECK(ts, m.opt_n == P - lo, "%s: optimizer state for %zu parameters, want the %zu trainable", opt, m.opt_n, P - lo);
    float *p0 = eff_malloc(P * sizeof(float), "parameters");
    memcpy(p0, m.param, P * sizeof(float));
    m.backbone_lr_mult = 0.0f;
    step(&m, opt, 1e-2f);
    T_CHECK(ts, same(p0, m.param, fc), "%s, backbone_lr_mult 0: a backbone parameter moved", opt);
    T_CHECK(ts, !same(p0 + fc, m.param + fc, P - fc), "%s, backbone_lr_mult 0: the classifier did not move", opt);
    /* mult 0.5 in 3 pieces == lr/2 everywhere on the backbone, lr on the classifier (one piece each) */
    stepped_model(&half, 3, x, y);
    stepped_model(&full, 1, x, y);
    half.backbone_lr_mult = 0.5f;
    step(&half, opt, 1e-2f);
    step(&full, opt, 1e-2f);
    T_CHECK(ts, same(half.param + fc, full.param + fc, P - fc), "%s, mult 0.5: the classifier's step is not lr's", opt);
    EffModel ref;
    stepped_model(&ref, 1, x, y);
    step(&ref, opt, 1e-2f * 0.5f);
    T_CHECK(ts, same(half.param, ref.param, fc), "%s, mult 0.5: the backbone's step is not lr/2's", opt);
    T_CHECK(ts, same(p0, half.param, lo) && same(p0, ref.param, lo), "%s: a frozen parameter moved", opt);
    printf("  %s: optimizer state for the %zu trainable parameters; frozen ones bit-identical after a step; "
           "backbone_lr_mult 0 moves only the classifier; 0.5 in 3 ranges == lr/2 on the backbone, lr on the head\n",
           opt, m.opt_n);
    eff_free(p0);
    eff_model_destroy(&m);
    eff_model_destroy(&half);
    eff_model_destroy(&full);
    eff_model_destroy(&ref);
}

/* 5: backward time per freeze setting (the best of 5), at batch 16. */
static void time_backward(const float *x16, const int32_t *y16) {
    const int freeze[4] = {-1, 0, 3, 5};
    printf("  backward time, seed B0 32x32 batch 16, best of 5 (not asserted):");
    for (int k = 0; k < 4; k++) {
        EffModel m;
        EffModelSpec spec;
        eff_model_spec("efficientnet-b0", &spec);
        eff_model_create(&m, eff_backend_cpu(), &spec, 10);
        eff_model_init_weights(&m, 5);
        eff_model_set_freeze(&m, freeze[k], 0);
        eff_model_alloc_acts(&m, 16, R);
        double best = 1e9, fwd = 1e9;
        for (int r = 0; r < 5; r++) {
            eff_model_zero_grad(&m);
            const double t0 = eff_time();
            eff_model_forward(&m, x16, y16, 1, 1);
            const double t1 = eff_time();
            eff_model_backward(&m, 1.0f);
            const double t2 = eff_time();
            best = t2 - t1 < best ? t2 - t1 : best;
            fwd = t1 - t0 < fwd ? t1 - t0 : fwd;
        }
        printf(" freeze %d: %.1f ms (forward %.1f);", freeze[k], 1e3 * best, 1e3 * fwd);
        eff_model_destroy(&m);
    }
    printf("\n");
}

int main(void) {
    TestState ts = {0};
    const size_t nx = (size_t)16 * R * R * 3;
    float *x = eff_malloc(nx * sizeof(float), "x");
    int32_t y[16];
    EffRng rng;
    eff_rng_seed(&rng, 17);
    t_fill_normal(&rng, x, nx, 1.0);
    for (int i = 0; i < 16; i++) y[i] = (int32_t)(eff_rng_next(&rng) % 10);
    check_gradients(&ts, "seed", 0, 0, x, y);
    check_gradients(&ts, "seed", 3, 0, x, y);
    check_gradients(&ts, "seed", 7, 0, x, y);
    check_gradients(&ts, "seed", 3, 1, x, y);
    check_gradients(&ts, "torchvision", 0, 0, x, y);
    check_gradients(&ts, "torchvision", 4, 0, x, y);
    check_bn_eval(&ts, x, y);
    check_optimizer(&ts, "adam", x, y);
    check_optimizer(&ts, "adamw", x, y);
    check_optimizer(&ts, "sgd", x, y);
    time_backward(x, y);
    eff_free(x);
    return t_finish(&ts, "freeze");
}
