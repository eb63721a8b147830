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
    double bytes[EFF_PROF_COUNT]; /* compulsory traffic: each tensor an op reads or writes, once;
                                     activations at the backend's act_size, everything else fp32 */
    double act_bytes;             /* bytes per activation element used (m->be->act_size, 4 without a backend) */
    double matmul_fwd;            /* forward FLOPs of the convolutions and FC layers alone: 2 x the
                                     multiply-adds eff_model_macs counts (a cross-check of the walk) */
} EffStepCost;

/* The cost of one training step at the model's allocated batch and resolution
 * (eff_model_alloc_acts), Adam or SGD over the parameters this rank updates. */
void eff_step_cost(const EffModel *m, int adam, EffStepCost *c);

/* One op family's row of the roofline table, from its cost, its measured
 * seconds per step and the roofs (GFLOP/s, GB/s): achieved GFLOP/s and GB/s
 * (0 when not timed), the fraction of each peak, and of the family's bound
 * min(peak GFLOP/s, intensity x peak GB/s). */
typedef struct {
    double ms, gflop, mb, gflops, gbs, intensity; /* intensity: FLOP per byte */
    double frac_flops, frac_gbs, frac_bound;       /* achieved / peak, achieved / bound (0..1, more if above) */
    int memory_bound;                              /* the bound is the memory roof */
} EffRoofRow;
void eff_roofline_row(double flops, double bytes, double seconds, double peak_gflops, double peak_gbs, EffRoofRow *r);

/* A GPU's nominal peaks (datasheet figures, dense) for the precision's math:
 * bf16/fp16 tensor cores, or fp32 FMA. Known by name: H100 SXM (HBM3), H100
 * PCIe, H100 NVL, H200, A100; any other device gets the H100 SXM figures and
 * *known = 0. what: a short description of the source, for the table. */
void eff_gpu_peaks(const char *device_name, int precision, double *gflops, double *gbs, const char **what,
                   int *known);

/* sgemm (m = n = k = 1024, cblas) GFLOP/s and a copy's GB/s (bytes read +
 * written) with the current OpenMP/BLAS threads, each timed for ~seconds. */
double eff_peak_sgemm_gflops(double seconds);
double eff_peak_copy_gbs(double seconds);

#endif
