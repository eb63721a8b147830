/* amp.c: the GradScaler state machine (see amp.h). */
#include "amp.h"

void eff_scaler_init(EffLossScaler *s, int enabled) {
    s->enabled = enabled;
    s->scale = enabled ? 65536.0 : 1.0;
    s->growth_factor = 2.0;
    s->backoff_factor = 0.5;
    s->growth_interval = 2000;
    s->good_steps = 0;
    s->skipped = 0;
}

double eff_scaler_scale(const EffLossScaler *s) { return s->enabled ? s->scale : 1.0; }

int eff_scaler_update(EffLossScaler *s, int grads_finite) {
    if (!s->enabled) return 1;
    if (!grads_finite) { /* GradScaler.update: backoff, reset the growth tracker, step skipped */
        s->scale *= s->backoff_factor;
        s->good_steps = 0;
        s->skipped++;
        return 0;
    }
    if (++s->good_steps == s->growth_interval) {
        s->scale *= s->growth_factor;
        s->good_steps = 0;
    }
    return 1;
}
