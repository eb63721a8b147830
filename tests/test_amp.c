/* test_amp.c: the fp16 loss scaler (src/amp.c) against hand-computed
 * GradScaler behaviour (torch.cuda.amp.GradScaler defaults: init 65536,
 * growth x2 every 2000 finite steps, backoff x0.5 and skip on Inf/NaN).
 * Every comparison is exact: scales are powers of two, counters integers. */
#include "amp.h"
#include "test_util.h"

int main(void) {
    TestState ts = {0, 0};
    EffLossScaler s;
    eff_scaler_init(&s, 1);
    T_CHECK(&ts, eff_scaler_scale(&s) == 65536.0, "initial scale %g", eff_scaler_scale(&s));
    /* overflow: skip, halve, reset the growth tracker */
    T_CHECK(&ts, eff_scaler_update(&s, 0) == 0, "a non-finite step must be skipped");
    T_CHECK(&ts, s.scale == 32768.0 && s.good_steps == 0 && s.skipped == 1, "after overflow: scale %g good %ld", s.scale, s.good_steps);
    /* 1999 finite steps: no growth; the 2000th doubles */
    for (int i = 0; i < 1999; i++) T_CHECK(&ts, eff_scaler_update(&s, 1) == 1, "finite step %d skipped", i);
    T_CHECK(&ts, s.scale == 32768.0 && s.good_steps == 1999, "after 1999 good steps: scale %g good %ld", s.scale, s.good_steps);
    eff_scaler_update(&s, 1);
    T_CHECK(&ts, s.scale == 65536.0 && s.good_steps == 0, "after 2000 good steps: scale %g good %ld", s.scale, s.good_steps);
    /* an overflow in the middle of a streak resets it */
    for (int i = 0; i < 1500; i++) eff_scaler_update(&s, 1);
    eff_scaler_update(&s, 0);
    for (int i = 0; i < 1999; i++) eff_scaler_update(&s, 1);
    T_CHECK(&ts, s.scale == 32768.0 && s.skipped == 2, "streak reset by overflow: scale %g skipped %ld", s.scale, s.skipped);
    /* repeated overflows keep halving */
    for (int i = 0; i < 3; i++) eff_scaler_update(&s, 0);
    T_CHECK(&ts, s.scale == 4096.0, "three more overflows: scale %g (want 4096)", s.scale);
    /* disabled (bf16/fp32): scale 1, never skips */
    eff_scaler_init(&s, 0);
    T_CHECK(&ts, eff_scaler_scale(&s) == 1.0 && eff_scaler_update(&s, 0) == 1 && s.skipped == 0, "disabled scaler");
    return t_finish(&ts, "test_amp");
}
