/* test_roofline.c: the roofline's cost walk (src/roofline.c) against the
 * independent multiply-add count of `effnet info` (eff_model_macs), for
 * B0-B2 at two resolutions, and the sanity of its per-family figures. */
#include "common.h"
#include "model.h"
#include "roofline.h"
#include "test_util.h"

#include <math.h>

int main(void) {
    TestState ts = {0};
    const char *models[] = {"efficientnet-b0", "efficientnet-b1", "efficientnet-b2"};
    const int res[] = {32, 64};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++) {
            EffModelSpec spec;
            EFF_CHECK(eff_model_spec(models[i], &spec), "no %s", models[i]);
            EffModel m;
            eff_model_create(&m, eff_backend_cpu(), &spec, 10);
            const int N = 4;
            eff_model_alloc_acts(&m, N, res[j]);
            EffStepCost c;
            eff_step_cost(&m, 1, &c);
            const double want = 2.0 * eff_model_macs(&m, res[j]) * N;
            /* both are exact integer sums in double: any difference is a shape the walk got wrong */
            T_CHECK(&ts, fabs(c.matmul_fwd - want) <= 1e-12 * want, "%s %d: conv+FC forward %.0f FLOPs, info counts %.0f",
                    models[i], res[j], c.matmul_fwd, want);
            double total = 0;
            for (int k = 0; k < EFF_PROF_COUNT; k++) {
                T_CHECK(&ts, c.flops[k] > 0 && c.bytes[k] > 0, "%s %d: family %s has no cost", models[i], res[j],
                        eff_prof_names[k]);
                total += c.flops[k];
            }
            /* without the optimizer, a step is forward + about twice that backward (the stem's input needs no
             * gradient; BN, SE pooling, adds add a few %): 2.5-3.5x the conv+FC forward */
            const double model_flops = total - c.flops[EFF_PROF_OPTIM];
            T_CHECK(&ts, model_flops > 2.5 * want && model_flops < 3.5 * want, "%s %d: step %.3g FLOPs vs forward %.3g",
                    models[i], res[j], model_flops, want);
            /* Adam moves 28 bytes per parameter this rank updates */
            T_CHECK(&ts, c.bytes[EFF_PROF_OPTIM] == 28.0 * (double)m.opt_n, "optimizer bytes %.0f", c.bytes[EFF_PROF_OPTIM]);
            printf("  %s %dx%d batch %d: conv+FC forward %.4f GFLOP (= 2 x info's MACs), step %.4f GFLOP\n", models[i],
                   res[j], res[j], N, want / 1e9, total / 1e9);
            eff_model_destroy(&m);
        }
    return t_finish(&ts, "test_roofline");
}
