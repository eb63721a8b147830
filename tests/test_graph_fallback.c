/* test_graph_fallback.c: when a step's CUDA graph capture fails,
 * eff_model_train_step (what `effnet bench` and training call) must run the
 * step eagerly, with the same loss and gradients, and keep running eagerly
 * (m->use_graph becomes 0) instead of exiting.
 *
 * The backend is the CPU table plus a fake capture group that fails, once
 * at graph_begin and once at graph_end. Each model takes 3 steps (step 0 is
 * the eager warm-up, step 1 tries the capture) beside an eager reference
 * from the same weights. Checked: every loss and gradient bit for bit, the
 * BN batch counter, use_graph cleared, graph_end never called after a
 * failed graph_begin, the discard hook called once (so the all-reduce
 * buckets the dropped recording launched are relaunched), no replay.
 *
 * The fake's "recording" runs the ops for real on the CPU (a real capture
 * records them without running), so the BN running statistics get one
 * extra update and are not compared. */
#include "backend/backend.h"
#include "common.h"
#include "model.h"
#include "rng.h"
#include "test_util.h"

#include <string.h>

enum { N = 4, R = 32, STEPS = 3 };

typedef struct Fake {
    EffBackend be; /* first member */
    int fail_at_end, begins, ends;
} Fake;

static Fake *F(const EffBackend *be) { return (Fake *)be; }
static int fake_begin(const EffBackend *be, const void *owner) {
    (void)owner;
    F(be)->begins++;
    return F(be)->fail_at_end; /* fail here unless failing at the end */
}
static int fake_end(const EffBackend *be) {
    F(be)->ends++;
    return 0;
}
static int fake_ready(const EffBackend *be, const void *owner) { (void)be; (void)owner; return 0; }
static void fake_launch(const EffBackend *be, const uint64_t sc[EFF_STEP_NSCALARS]) {
    (void)be; (void)sc;
    EFF_FATAL("graph_launch after a failed capture");
}
static float fake_loss(const EffBackend *be) { (void)be; EFF_FATAL("graph_loss after a failed capture"); }
static void fake_reset(const EffBackend *be) { (void)be; }

static void counter(void *arg) { (*(int *)arg)++; }

static void setup(EffModel *m, const EffBackend *be, const float *x, const int32_t *y) {
    EffModelSpec spec;
    EFF_CHECK(eff_model_spec("efficientnet-b0", &spec), "no B0");
    eff_model_create(m, be, &spec, 10);
    eff_model_init_weights(m, 5);
    eff_model_set_dropout(m, 0.3);
    eff_model_alloc_acts(m, N, R);
    eff_model_set_input(m, x, y);
}

static void run_case(TestState *ts, int fail_at_end, const float *x, const int32_t *y) {
    const char *where = fail_at_end ? "graph_end" : "graph_begin";
    Fake fk = {*eff_backend_cpu(), fail_at_end, 0, 0};
    fk.be.graph_begin = fake_begin;
    fk.be.graph_end = fake_end;
    fk.be.graph_ready = fake_ready;
    fk.be.graph_launch = fake_launch;
    fk.be.graph_loss = fake_loss;
    fk.be.graph_reset = fake_reset;
    EffModel ref, m;
    setup(&ref, eff_backend_cpu(), x, y);
    setup(&m, &fk.be, x, y);
    m.use_graph = 1;
    int tails = 0, discards = 0;
    const EffStepHooks hooks = {.tail = counter, .discard = counter, .arg = &tails};
    const EffStepHooks hd = {.tail = counter, .discard = counter, .arg = &discards};
    for (int s = 0; s < STEPS; s++) {
        const uint64_t key = eff_key3(3, (uint64_t)s, 0);
        const float lr = eff_model_train_step(&ref, key, 0.5f, &hooks);
        const float lm = eff_model_train_step(&m, key, 0.5f, &hd);
        T_CHECK(ts, memcmp(&lr, &lm, sizeof lr) == 0, "%s step %d: loss %.9g, eager %.9g", where, s, lm, lr);
        size_t d = 0;
        for (size_t i = 0; i < ref.ptab.total; i++) d += memcmp(ref.grad + i, m.grad + i, sizeof(float)) != 0;
        T_CHECK(ts, d == 0, "%s step %d: %zu gradient entries differ from the eager step", where, s, d);
        eff_model_adam_step(&ref, 1e-3f, 0.9f, 0.999f, 1e-8f, 0, 0);
        eff_model_adam_step(&m, 1e-3f, 0.9f, 0.999f, 1e-8f, 0, 0);
    }
    T_CHECK(ts, m.use_graph == 0, "%s: use_graph still set after the failed capture", where);
    T_CHECK(ts, fk.begins == 1 && fk.ends == fail_at_end, "%s: %d graph_begin and %d graph_end calls", where,
            fk.begins, fk.ends);
    /* the same counter takes tails and the discard: 3 tails + 1 discard, and
     * with a failed graph_end the dropped recording's tail too */
    T_CHECK(ts, tails == STEPS && discards == STEPS + 1 + fail_at_end, "%s: tails %d (eager), %d (+discard)", where,
            tails, discards);
    T_CHECK(ts, m.bn_batches == ref.bn_batches && m.bn_batches == STEPS, "%s: BN batches %lld, eager %lld", where,
            (long long)m.bn_batches, (long long)ref.bn_batches);
    printf("test_graph_fallback: capture failing at %s: %d steps eager, equal to the eager model bit for bit\n",
           where, STEPS);
    eff_model_destroy(&ref);
    eff_model_destroy(&m);
}

int main(void) {
    TestState ts = {0, 0};
    const size_t nx = (size_t)N * R * R * 3;
    float *x = eff_malloc(nx * sizeof(float), "input");
    int32_t y[N];
    EffRng rng;
    eff_rng_seed(&rng, 13);
    t_fill_normal(&rng, x, nx, 1.0);
    for (int i = 0; i < N; i++) y[i] = (int32_t)(eff_rng_next(&rng) % 10);
    run_case(&ts, 0, x, y);
    run_case(&ts, 1, x, y);
    eff_free(x);
    return t_finish(&ts, "test_graph_fallback");
}
