/* test_recompute.c: train.recompute = bnswish must not change a single bit.
 * Two B0 models with the same weights, one keeping every BN+swish output and
 * one rebuilding the blocks' expand and depthwise outputs in backward, take
 * three training steps (forward with dropout and drop-connect, backward,
 * Adam) on the same batch, with an evaluation forward in between (it
 * overwrites the shared buffers). After each step the loss, every gradient,
 * the parameters and the BN running statistics must be bitwise equal; and
 * the recomputing model must keep fewer activation bytes. Run with 1 and 2
 * OpenMP threads (ctest). */
#include "common.h"
#include "model.h"
#include "rng.h"
#include "test_util.h"

#include <string.h>

static void setup(EffModel *m, int recompute, int N, int R) {
    EffModelSpec spec;
    eff_model_spec("efficientnet-b0", &spec);
    memset(m, 0, sizeof *m);
    eff_model_create(m, eff_backend_cpu(), &spec, 10);
    eff_model_init_weights(m, 7);
    m->recompute = recompute;
    eff_model_alloc_acts(m, N, R);
}

static int same(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

int main(void) {
    TestState ts = {0};
    const int N = 4, R = 64;
    EffModel a, b;
    setup(&a, 0, N, R);
    setup(&b, 1, N, R);
    float *x = eff_malloc((size_t)N * R * R * 3 * sizeof(float), "x");
    int32_t y[4] = {1, 3, 5, 7};
    EffRng rng;
    eff_rng_seed(&rng, 11);
    t_fill_normal(&rng, x, (size_t)N * R * R * 3, 1.0);
    printf("activations: %.1f MiB kept, %.1f MiB with recompute\n", eff_model_act_bytes(&a) / 1048576.0,
           eff_model_act_bytes(&b) / 1048576.0);
    T_CHECK(&ts, eff_model_act_bytes(&b) < eff_model_act_bytes(&a), "recompute keeps %zu bytes, not fewer than %zu",
            eff_model_act_bytes(&b), eff_model_act_bytes(&a));
    for (int s = 0; s < 3; s++) {
        EffModel *ms[2] = {&a, &b};
        float loss[2];
        for (int k = 0; k < 2; k++) {
            eff_model_zero_grad(ms[k]);
            loss[k] = eff_model_forward(ms[k], x, y, 1, eff_key3(3, (uint64_t)s, 0));
            eff_model_backward(ms[k], 1.0f);
        }
        const size_t P = a.ptab.total;
        T_CHECK(&ts, memcmp(&loss[0], &loss[1], sizeof(float)) == 0, "step %d: loss %.9g vs %.9g", s, loss[0], loss[1]);
        T_CHECK(&ts, same(a.grad, b.grad, P), "step %d: gradients differ (rel err %.3e)", s, t_rel_err(b.grad, a.grad, P));
        for (int k = 0; k < 2; k++) {
            eff_model_adam_step(ms[k], 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, 0);
            eff_model_forward(ms[k], x, y, 0, 0); /* evaluation between steps: reuses the shared buffers */
        }
        T_CHECK(&ts, same(a.param, b.param, P), "step %d: parameters differ", s);
        T_CHECK(&ts, same(a.bufs, b.bufs, a.btab.total), "step %d: BN running statistics differ", s);
        printf("  step %d: loss %.6f, gradients, parameters and BN statistics bit-identical: %s\n", s, loss[0],
               ts.failures ? "NO" : "yes");
    }
    eff_free(x);
    eff_model_destroy(&a);
    eff_model_destroy(&b);
    return t_finish(&ts, "test_recompute");
}
