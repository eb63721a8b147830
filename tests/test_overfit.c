/* test_overfit.c: B0 at 32x32 with its own dropout schedule, trained with the
 * seed's Adam (lr 1e-3, wd 1e-4) on one fixed batch of 16 random images,
 * must start near ln(10) and drive the loss below 0.1 within 30 steps. */
#include "common.h"
#include "model.h"
#include "rng.h"
#include "test_util.h"

int main(void) {
    TestState ts = {0};
    EffModelSpec spec;
    eff_model_spec("efficientnet-b0", &spec);
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
    /* 1.0: a sane init starts near chance; measured |first - ln 10| = 0.202 (2.5046, both kernels, this CPU,
     * 2026-12-02), 5x inside; a broken init or loss is off by O(ln 10) */
    T_CHECK(&ts, fabsf(first - logf(10.0f)) < 1.0f, "initial loss %.4f far from ln(10)", first);
    /* 0.1 is the goal (4% of ln 10: the batch is memorised), not a noise bound */
    T_CHECK(&ts, loss < 0.1f, "loss %.4f after %d steps, want < 0.1", loss, s);
    eff_free(x);
    eff_model_destroy(&m);
    return t_finish(&ts, "test_overfit");
}
