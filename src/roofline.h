/* roofline.h: effnet bench --profile's roofline. The FLOPs and the
 * compulsory memory traffic of one training step per op family (the
 * EFF_PROF_* slots of model.h), from the model's shapes; and the machine's
 * own peaks, measured at start: sgemm GFLOP/s and copy GB/s with the bench's
 * threads. An op family's bound is min(peak FLOP/s, intensity x peak B/s);
 * its fraction of that bound says how far it is from what the machine can
 * do, and whether compute or memory bounds it. */
#ifndef EFFNET_ROOFLINE_H
#define EFFNET_ROOFLINE_H

#include "model.h"

typedef struct {
    double flops[EFF_PROF_COUNT]; /* per training step (forward + backward + optimizer) */
    double bytes[EFF_PROF_COUNT]; /* compulsory traffic: each tensor an op reads or writes, once, fp32 */
    double matmul_fwd;            /* forward FLOPs of the convolutions and FC layers alone: 2 x the
                                     multiply-adds eff_model_macs counts (a cross-check of the walk) */
} EffStepCost;

/* The cost of one training step at the model's allocated batch and resolution
 * (eff_model_alloc_acts), Adam or SGD over the parameters this rank updates. */
void eff_step_cost(const EffModel *m, int adam, EffStepCost *c);

/* sgemm (m = n = k = 1024, cblas) GFLOP/s and a copy's GB/s (bytes read +
 * written) with the current OpenMP/BLAS threads, each timed for ~seconds. */
double eff_peak_sgemm_gflops(double seconds);
double eff_peak_copy_gbs(double seconds);

#endif
