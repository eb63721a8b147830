/* test_cuda_graph.c: eff_model_train_step replayed from a CUDA graph must give
 * exactly what the same steps give when every op is launched eagerly.
 *
 *   test_cuda_graph [--precision fp32|bf16|fp16]
 *
 * Two models from the same weights take the same 6 Adam steps (B0, 64x64,
 * batch 8, dropout on, a different dropout key and loss scale each step):
 * one eager (use_graph 0), one captured after its first step and replayed.
 * All our reductions are fixed-order and cuDNN is held to deterministic
 * algorithms, so every loss, every parameter and every BN running statistic
 * must be BIT-identical; a replay that reused a stale dropout key or loss
 * scale, skipped a node or raced a buffer would break that. The model's
 * BN batch counter must agree too.
 *
 * Unless cuDNN has no deterministic backward-filter algorithm for the stem
 * (plausible for NHWC bf16/fp16 with 3 input channels; kernels/conv_pick.h
 * then takes the fastest nondeterministic one): the test logs the algorithms
 * chosen, and where the backward-filter one is nondeterministic it compares
 * the two models' stem weight gradients within a bound instead of bit for
 * bit, then copies the eager model's stem weights and Adam moments into the
 * graph model, so that every other number is still compared bit for bit
 * (the stem gradient feeds nothing else in the same step). A
 * nondeterministic forward algorithm (cuDNN reports none) fails the test,
 * naming it: nothing could then be compared bit for bit.
 *
 * CPU half (always): on the CPU backend (no graphs) eff_model_train_step
 * must equal the hand-written zero_grad / forward / backward sequence, call
 * its tail once per step, and count BN batches the same way; and the stem
 * comparison is rehearsed against fake cuDNN answers (deterministic or not)
 * and made-up gradients.
 * GPU half: "no CUDA device: skipped", exit 77, without a device. */
#include "backend/backend.h"
#include "common.h"
#include "conv_pick.h"
#include "half.h"
#include "model.h"
#include "rng.h"
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { STEPS = 6, N = 8, R = 64 };

static void tail_count(void *arg) { (*(int *)arg)++; }
static void wait_count(void *arg) { (*(int *)arg) += 1000; }

static float *host_copy(const EffModel *m, const float *buf, size_t n) {
    float *h = eff_malloc(n * sizeof(float) + 16, "download");
    m->be->download(m->be, h, buf, n * sizeof(float));
    return h;
}

static void setup(EffModel *m, const EffBackend *be, const EffModelSpec *spec, const float *x, const int32_t *y) {
    eff_model_create(m, be, spec, 10);
    eff_model_init_weights(m, 5);
    eff_model_set_dropout(m, 0.3);
    eff_model_alloc_acts(m, N, R);
    eff_model_set_input(m, x, y);
}

static uint64_t key_of(int s) { return eff_key3(3, (uint64_t)s, 0); }
static float scale_of(int s) { return 1.0f / (float)(1 + s % 3); }

/* Count the entries of a and b that differ in their bits. */
static size_t bit_diffs(const float *a, const float *b, size_t n) {
    size_t d = 0;
    for (size_t i = 0; i < n; i++) d += memcmp(a + i, b + i, sizeof(float)) != 0;
    return d;
}

/* The stem weight gradients of the two models agree: bit for bit when the
 * backward-filter algorithm is deterministic, else within `bound` of scaled
 * error max|a-b| / max|b|. *err gets that error. */
static int stem_grads_agree(const float *a, const float *b, size_t n, int nondet, double bound, double *err) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - b[i]);
        if (isnan(d)) { *err = NAN; return 0; }
        num = d > num ? d : num;
        den = fabs(b[i]) > den ? fabs(b[i]) : den;
    }
    *err = den > 0 ? num / den : num;
    return nondet ? *err <= bound : bit_diffs(a, b, n) == 0;
}

/* The bound for a nondeterministic stem: each model's stem weight gradient is
 * a legitimate cuDNN result, within test_cuda_ops' bound of the exact
 * gradient (its conv2d dw check: 1e-5 fp32, 2e-2 bf16, 1e-2 fp16), so the two
 * differ by at most twice that. */
static double stem_bound(int prec) { return 2 * (prec == EFF_PREC_FP32 ? 1e-5 : prec == EFF_PREC_BF16 ? 2e-2 : 1e-2); }

/* The comparison against fake cuDNN answers and made-up gradients. */
static void rehearse_stem_compare(TestState *ts) {
    enum { n = 864 }; /* 3x3x3x32: B0's stem */
    float a[n], b[n], c[n], d[n];
    EffRng rng;
    eff_rng_seed(&rng, 7);
    t_fill_normal(&rng, a, n, 1e-3);
    for (int i = 0; i < n; i++) {
        b[i] = eff_round_act(a[i], EFF_PREC_BF16); /* what a bf16 cuDNN returns */
        c[i] = eff_round_act(b[i] * (1.0f + 0x1p-8f), EFF_PREC_BF16); /* another summation order: one bf16 ulp off */
        d[i] = b[i] * 1.1f;
    }
    memcpy(a, b, sizeof b);
    double e;
    const int det = 0, nondet = EFF_CONV_NONDET_BWD_FILTER;
    T_CHECK(ts, stem_grads_agree(a, b, n, det, stem_bound(EFF_PREC_BF16), &e) && e == 0,
            "deterministic algorithm, identical gradients must agree");
    T_CHECK(ts, !stem_grads_agree(c, b, n, det, stem_bound(EFF_PREC_BF16), &e),
            "deterministic algorithm: a one-ulp difference must fail (bit for bit)");
    T_CHECK(ts, stem_grads_agree(c, b, n, nondet, stem_bound(EFF_PREC_BF16), &e) && e > 0,
            "nondeterministic algorithm: a one-bf16-ulp difference (%.2g) must pass the bound %.2g", e,
            stem_bound(EFF_PREC_BF16));
    T_CHECK(ts, !stem_grads_agree(d, b, n, nondet, stem_bound(EFF_PREC_BF16), &e),
            "nondeterministic algorithm: a 10%% difference (%.2g) must fail the bound %.2g", e,
            stem_bound(EFF_PREC_BF16));
    printf("test_cuda_graph: CPU half: the stem comparison, bit for bit or within %.0e (bf16), rehearsed on fake "
           "cuDNN answers\n", stem_bound(EFF_PREC_BF16));
}

static void cpu_half(TestState *ts, const EffModelSpec *spec, const float *x, const int32_t *y) {
    EffModel a, b;
    setup(&a, eff_backend_cpu(), spec, x, y);
    setup(&b, eff_backend_cpu(), spec, x, y);
    b.use_graph = 1; /* the CPU backend cannot capture: must fall back to eager */
    int tails = 0;
    const EffStepHooks hooks = {.tail = tail_count, .wait = wait_count, .arg = &tails};
    for (int s = 0; s < 3; s++) {
        eff_model_zero_grad(&a);
        float la = eff_model_forward_resident(&a, 1, 1, key_of(s));
        eff_model_backward(&a, scale_of(s));
        float lb = eff_model_train_step(&b, key_of(s), scale_of(s), &hooks);
        T_CHECK(ts, memcmp(&la, &lb, sizeof la) == 0, "CPU step %d: loss %.9g vs train_step %.9g", s, la, lb);
        size_t d = bit_diffs(a.grad, b.grad, a.ptab.total);
        T_CHECK(ts, d == 0, "CPU step %d: %zu gradient entries differ", s, d);
        eff_model_adam_step(&a, 1e-3f, 0.9f, 0.999f, 1e-8f, 0, 0);
        eff_model_adam_step(&b, 1e-3f, 0.9f, 0.999f, 1e-8f, 0, 0);
    }
    T_CHECK(ts, tails == 3, "hooks: %d tail calls and %d waits in 3 eager steps (want 3 and 0)", tails % 1000,
            tails / 1000);
    T_CHECK(ts, a.bn_batches == b.bn_batches && a.bn_batches == 3, "BN batches %lld vs %lld",
            (long long)a.bn_batches, (long long)b.bn_batches);
    printf("test_cuda_graph: CPU half: train_step equals the hand-written step over 3 steps (tail %d calls)\n", tails);
    eff_model_destroy(&a);
    eff_model_destroy(&b);
}

/* The stem conv algorithms both backends chose (they see the same shapes);
 * logged. Returns 1 when the backward-filter one is nondeterministic. */
static int report_algorithms(TestState *ts, const EffBackend *ge, const EffBackend *gg) {
    char be_[1024], bg[1024];
    int fe = 0, fg = 0;
    eff_cuda_conv_algorithms(ge, be_, sizeof be_, &fe);
    eff_cuda_conv_algorithms(gg, bg, sizeof bg, &fg);
    printf("  stem conv algorithms (eager model): %s\n", be_);
    if (strcmp(be_, bg)) printf("  stem conv algorithms (graph model): %s\n", bg);
    T_CHECK(ts, !((fe | fg) & EFF_CONV_NONDET_FWD), "the stem's forward algorithm is nondeterministic (%s): cuDNN "
            "reports every forward algorithm deterministic, so nothing can be compared bit for bit", be_);
    const int nondet = ((fe | fg) & EFF_CONV_NONDET_BWD_FILTER) != 0;
    if (nondet)
        printf("  NOTE: no deterministic backward-filter algorithm for the stem: its weight gradient is compared "
               "within a bound and the graph model's stem weights and moments are re-synced each step; everything "
               "else bit for bit\n");
    return nondet;
}

/* Step s: the two models' stem weight gradients (conv_pick.h's fall-back). */
static void compare_stem(TestState *ts, const EffModel *e, const EffModel *g, int s, int nondet, int prec) {
    const size_t n = (size_t)27 * e->stem_c;
    float *a = host_copy(e, e->grad + e->stem_w, n), *b = host_copy(g, g->grad + g->stem_w, n);
    double err = 0;
    const int ok = stem_grads_agree(b, a, n, nondet, stem_bound(prec), &err);
    T_CHECK(ts, ok, "step %d: stem weight gradient graph vs eager: scaled error %.3g (%s)", s, err,
            nondet ? "bound for a nondeterministic algorithm exceeded" : "must be bit-identical");
    if (nondet) printf("  step %d: stem weight gradient scaled error %.2e (bound %.0e)\n", s, err, stem_bound(prec));
    free(a);
    free(b);
}

/* Copy the eager model's stem weights and Adam moments into the graph model
 * (device to host to device; the graph reads them from the same buffers). */
static void resync_stem(const EffModel *e, EffModel *g) {
    EFF_CHECK(e->opt_nseg == 1 && e->opt_seg[0].lo == 0, "resync_stem: needs the unsharded optimizer state");
    const size_t n = (size_t)27 * e->stem_c, at = e->stem_w;
    float *const src[3] = {e->param + at, e->adam_m + at, e->adam_v + at};
    float *const dst[3] = {g->param + at, g->adam_m + at, g->adam_v + at};
    for (int k = 0; k < 3; k++) {
        float *h = host_copy(e, src[k], n);
        g->be->upload(g->be, dst[k], h, n * sizeof(float));
        free(h);
    }
}

int main(int argc, char **argv) {
    const char *prec = "fp32";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--precision") && i + 1 < argc) prec = argv[++i];
        else { fprintf(stderr, "usage: test_cuda_graph [--precision fp32|bf16|fp16]\n"); return 2; }
    }
    const int p = eff_precision_parse(prec);
    EFF_CHECK(p >= 0, "unknown precision '%s'", prec);
    EffModelSpec spec;
    EFF_CHECK(eff_model_spec("efficientnet-b0", &spec), "no B0");
    TestState ts = {0, 0};
    const size_t nx = (size_t)N * R * R * 3;
    float *x = eff_malloc(nx * sizeof(float), "input");
    int32_t y[N];
    EffRng rng;
    eff_rng_seed(&rng, 13);
    t_fill_normal(&rng, x, nx, 1.0);
    for (int i = 0; i < N; i++) y[i] = (int32_t)(eff_rng_next(&rng) % 10);

    cpu_half(&ts, &spec, x, y);
    rehearse_stem_compare(&ts);
    if (eff_cuda_device_count() == 0) {
        if (ts.failures) return t_finish(&ts, "test_cuda_graph");
        printf("no CUDA device: skipped\n");
        return 77;
    }

    EffBackend *ge = eff_backend_cuda_create(0, (EffPrecision)p, 1), *gg = eff_backend_cuda_create(0, (EffPrecision)p, 1);
    EffModel e, g;
    setup(&e, ge, &spec, x, y);
    setup(&g, gg, &spec, x, y);
    g.use_graph = 1;
    int tails_e = 0, tails_g = 0;
    const EffStepHooks he = {.tail = tail_count, .wait = wait_count, .arg = &tails_e};
    const EffStepHooks hg = {.tail = tail_count, .wait = wait_count, .arg = &tails_g};
    int nondet = 0;
    for (int s = 0; s < STEPS; s++) {
        float le = eff_model_train_step(&e, key_of(s), scale_of(s), &he);
        float lg = eff_model_train_step(&g, key_of(s), scale_of(s), &hg);
        T_CHECK(&ts, isfinite(le) && memcmp(&le, &lg, sizeof le) == 0, "step %d: eager loss %.9g, graph loss %.9g", s, le, lg);
        printf("  step %d: loss eager %.7f graph %.7f%s\n", s, le, lg, s == 1 ? " (captured)" : s > 1 ? " (replayed)" : " (eager warm-up)");
        if (s == 0) nondet = report_algorithms(&ts, ge, gg);
        compare_stem(&ts, &e, &g, s, nondet, p);
        eff_model_adam_step(&e, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, 0);
        eff_model_adam_step(&g, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, 0);
        if (nondet) resync_stem(&e, &g);
    }
    T_CHECK(&ts, gg->graph_ready(gg, &g), "the graph model never captured a graph");
    T_CHECK(&ts, !gg->graph_ready(gg, &e), "graph_ready must be false for a model that did not record it");
    T_CHECK(&ts, !ge->graph_ready(ge, &e), "the eager model captured a graph");
    /* graph model: tails in the warm-up and the recording, a wait after each of the STEPS-1 replays */
    T_CHECK(&ts, tails_e == STEPS && tails_g == 2 + 1000 * (STEPS - 1),
            "hooks: eager %d tails %d waits (want %d, 0); graph %d tails %d waits (want 2, %d)", tails_e % 1000,
            tails_e / 1000, STEPS, tails_g % 1000, tails_g / 1000, STEPS - 1);
    T_CHECK(&ts, e.bn_batches == g.bn_batches && e.bn_batches == STEPS, "BN batches eager %lld graph %lld",
            (long long)e.bn_batches, (long long)g.bn_batches);
    eff_model_alloc_acts(&g, N, R); /* new buffers: the recording must be dropped */
    T_CHECK(&ts, !gg->graph_ready(gg, &g), "the graph survived eff_model_alloc_acts");
    float *pe = host_copy(&e, e.param, e.ptab.total), *pg = host_copy(&g, g.param, g.ptab.total);
    float *be_ = host_copy(&e, e.bufs, e.btab.total), *bg = host_copy(&g, g.bufs, g.btab.total);
    size_t dp = bit_diffs(pe, pg, e.ptab.total), db = bit_diffs(be_, bg, e.btab.total);
    T_CHECK(&ts, dp == 0, "%zu of %zu parameters differ after %d steps", dp, (size_t)e.ptab.total, STEPS);
    T_CHECK(&ts, db == 0, "%zu of %zu BN statistics differ after %d steps", db, (size_t)e.btab.total, STEPS);
    printf("test_cuda_graph: %s: %d steps, graph vs eager: %zu parameter and %zu BN-statistic bit differences\n", prec,
           STEPS, dp, db);
    free(pe); free(pg); free(be_); free(bg);
    eff_model_destroy(&e);
    eff_model_destroy(&g);
    eff_backend_cuda_destroy(ge);
    eff_backend_cuda_destroy(gg);
    free(x);
    return t_finish(&ts, "test_cuda_graph");
}
