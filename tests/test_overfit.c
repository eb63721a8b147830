/* test_overfit.c: B0 at 32x32 with its own dropout schedule, trained with the
 * seed's Adam (lr 1e-3, wd 1e-4) on one fixed batch of 16 random images,
 * must start near ln(10) and drive the loss below 0.1 within 30 steps; the
 * same for the torchvision variant with its own dropout and stochastic depth. */
#include "common.h"
#include "model.h"
#include "rng.h"
#include "test_util.h"

/* One variant: 30 steps on the batch; returns the steps taken. */
static int overfit(TestState *ts, const char *variant, float first_lo, float first_hi) {
    EffModelSpec spec;
    eff_model_spec("efficientnet-b0", &spec);
    eff_model_spec_set_variant(&spec, variant);
    EffModel m;
    eff_model_create(&m, eff_backend_cpu(), &spec, 10);
    eff_model_init_weights(&m, 3);
    const int N = 16, R = 32;
    eff_model_alloc_acts(&m, N, R);
    float *x = eff_malloc((size_t)N * R * R * 3 * sizeof(float), "x");
    int32_t y[16];
    EffRng rng;
    eff_rng_seed(&rng, 5);
    t_fill_normal(&rng, x, (size_t)N * R * R * 3, 1.0);
    for (int i = 0; i < N; i++) y[i] = i % 10;
    float first = 0, loss = 0;
    int s;
    printf("%s variant (dropout %.2f, stochastic depth %.2f):\n", variant, m.head_drop, spec.stochastic_depth);
    /* 30 steps: measured 7 to reach < 0.1 (default OpenBLAS kernel and Haswell, this CPU, AMD EPYC,
     * 2026-12-02; was 100, 14x slack), 4.3x headroom for other kernels' rounding of the trajectory. */
    for (s = 0; s < 30; s++) {
        eff_model_zero_grad(&m);
        loss = eff_model_forward(&m, x, y, 1, eff_key3(1, (uint64_t)s, 0));
        if (s == 0) first = loss;
        if (s % 10 == 0) printf("  step %3d loss %.4f\n", s, loss);
        if (loss < 0.1f) break;
        eff_model_backward(&m, 1.0f);
        eff_model_adam_step(&m, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f, 0);
    }
    printf("  step %3d loss %.4f\n", s, loss);
    T_CHECK(ts, first > first_lo && first < first_hi, "%s: initial loss %.4f outside (%.2f, %.2f)", variant, first,
            first_lo, first_hi);
    /* 0.1 is the goal (4% of ln 10: the batch is memorised), not a noise bound */
    T_CHECK(ts, loss < 0.1f, "%s: loss %.4f after %d steps, want < 0.1", variant, loss, s);
    eff_free(x);
    eff_model_destroy(&m);
    return s;
}

int main(void) {
    TestState ts = {0};
    /* ln 10 +- 1.0: a sane init starts near chance; measured |first - ln 10| = 0.202 (2.5046, both kernels,
     * this CPU, 2026-12-02), 5x inside; a broken init or loss is off by O(ln 10) */
    overfit(&ts, "seed", logf(10.0f) - 1.0f, logf(10.0f) + 1.0f);
    /* torchvision's init does not start at chance: its Linear U(+-1/sqrt(out_features)) over 1280 features
     * gives logits of std ~4. torchvision's own efficientnet_b0 on this setup (N(0,1) input, 16 x 32x32,
     * train mode, torch seeds 0-7) starts at 5.13-7.57; ours at 7.12. (3.5, 9.5) is 1.6 beyond that range
     * each side; the seed's init (2.50) or a non-normalising BN falls outside. Dropout 0.2 and stochastic
     * depth 0.2 stay on (keys per step), so this also trains through them. */
    overfit(&ts, "torchvision", 3.5f, 9.5f);
    return t_finish(&ts, "test_overfit");
}
