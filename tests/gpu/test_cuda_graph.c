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
 * CPU half (always): on the CPU backend (no graphs) eff_model_train_step
 * must equal the hand-written zero_grad / forward / backward sequence, call
 * its tail once per step, and count BN batches the same way.
 * GPU half: "no CUDA device: skipped", exit 77, without a device. */
#include "backend/backend.h"
#include "common.h"
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
    for (int s = 0; s < STEPS; s++) {
        float le = eff_model_train_step(&e, key_of(s), scale_of(s), &he);
        float lg = eff_model_train_step(&g, key_of(s), scale_of(s), &hg);
        T_CHECK(&ts, isfinite(le) && memcmp(&le, &lg, sizeof le) == 0, "step %d: eager loss %.9g, graph loss %.9g", s, le, lg);
        printf("  step %d: loss eager %.7f graph %.7f%s\n", s, le, lg, s == 1 ? " (captured)" : s > 1 ? " (replayed)" : " (eager warm-up)");
        eff_model_adam_step(&e, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, 0);
        eff_model_adam_step(&g, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, 0);
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
