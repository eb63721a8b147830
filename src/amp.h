/* amp.h: dynamic loss scaling for fp16, with the semantics of PyTorch's
 * torch.cuda.amp.GradScaler defaults (the seed's): initial scale 65536,
 * growth x2 after 2000 consecutive finite steps, backoff x0.5 and the
 * optimizer step skipped when any gradient is Inf or NaN.
 *
 * Under data parallelism the decision is made on the all-reduced gradients
 * (and the finite flag is itself all-reduced), so every rank skips or steps
 * together. Disabled (bf16 / fp32): scale 1, never skips. */
#ifndef EFFNET_AMP_H
#define EFFNET_AMP_H

typedef struct EffLossScaler {
    int enabled;
    double scale;            /* multiplies d(loss) before backward */
    double growth_factor;    /* 2.0 */
    double backoff_factor;   /* 0.5 */
    long growth_interval;    /* 2000 */
    long good_steps;         /* consecutive finite steps since the last change */
    long skipped;            /* steps skipped so far */
} EffLossScaler;

void eff_scaler_init(EffLossScaler *s, int enabled);
/* The factor to multiply the loss gradient by (1 when disabled). */
double eff_scaler_scale(const EffLossScaler *s);
/* Record one step's outcome; returns 1 if the optimizer should step (the
 * gradients must then be unscaled by 1/scale-before-update), 0 to skip. */
int eff_scaler_update(EffLossScaler *s, int grads_finite);

#endif
