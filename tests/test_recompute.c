/* test_recompute.c: neither train.recompute = bnswish nor the CPU backend's
 * fused train-forward ops (backend.h, FUSED) may change a single bit.
 * Three B0 models with the same weights -- one keeping every BN+swish output
 * and running the unfused ops (the CPU backend with its FUSED slots NULL),
 * one keeping them with the fused ops, and one rebuilding the blocks' expand
 * and depthwise outputs in backward -- take
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

static void setup(EffModel *m, const EffBackend *be, int recompute, int N, int R) {
    EffModelSpec spec;
    eff_model_spec("efficientnet-b0", &spec);
    memset(m, 0, sizeof *m);
    eff_model_create(m, be, &spec, 10);
    eff_model_init_weights(m, 7);
    m->recompute = recompute;
    eff_model_alloc_acts(m, N, R);
}

static int same(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

int main(void) {
    TestState ts = {0};
    const int N = 4, R = 64;
    EffModel a, f, b; /* a: kept, unfused; f: kept, fused; b: recomputed, fused */
    EffBackend unfused = *eff_backend_cpu();
    T_CHECK(&ts, unfused.dwconv_forward_bnstats != NULL, "the CPU backend has no fused train-forward ops");
    unfused.dwconv_forward_bnstats = NULL;
    unfused.batchnorm_forward_train_sums = NULL;
    unfused.se_forward_pooled = NULL;
    setup(&a, &unfused, 0, N, R);
    setup(&f, eff_backend_cpu(), 0, N, R);
    setup(&b, eff_backend_cpu(), 1, N, R);
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
        EffModel *ms[3] = {&a, &f, &b};
        const char *what[3] = {"unfused", "fused", "fused + recompute"};
        float loss[3];
        for (int k = 0; k < 3; k++) {
            eff_model_zero_grad(ms[k]);
            loss[k] = eff_model_forward(ms[k], x, y, 1, eff_key3(3, (uint64_t)s, 0));
            eff_model_backward(ms[k], 1.0f);
        }
        const size_t P = a.ptab.total;
        for (int k = 1; k < 3; k++) {
            T_CHECK(&ts, memcmp(&loss[0], &loss[k], sizeof(float)) == 0, "step %d, %s: loss %.9g vs %.9g", s, what[k],
                    loss[k], loss[0]);
            T_CHECK(&ts, same(a.grad, ms[k]->grad, P), "step %d, %s: gradients differ (rel err %.3e)", s, what[k],
                    t_rel_err(ms[k]->grad, a.grad, P));
        }
        for (int k = 0; k < 3; k++) {
            eff_model_adam_step(ms[k], 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, 0);
            eff_model_forward(ms[k], x, y, 0, 0); /* evaluation between steps: reuses the shared buffers */
        }
        for (int k = 1; k < 3; k++) {
            T_CHECK(&ts, same(a.param, ms[k]->param, P), "step %d, %s: parameters differ", s, what[k]);
            T_CHECK(&ts, same(a.bufs, ms[k]->bufs, a.btab.total), "step %d, %s: BN running statistics differ", s,
                    what[k]);
        }
        printf("  step %d: loss %.6f; gradients, parameters and BN statistics of the unfused, fused and recomputing "
               "models bit-identical: %s\n", s, loss[0], ts.failures ? "NO" : "yes");
    }
    eff_free(x);
    eff_model_destroy(&a);
    eff_model_destroy(&f);
    eff_model_destroy(&b);
    return t_finish(&ts, "test_recompute");
}
