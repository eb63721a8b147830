/* loader.h: batches of augmented float NHWC images, prepared on a background
 * thread while the caller runs its step (two buffers: the caller holds one,
 * the producer fills the other).
 *
 * Which samples: eff_sampler (sampler.h). How they are augmented: augment.h,
 * with parameters keyed by (seed, epoch, global sample index). Both are pure
 * functions of the position, so a batch does not depend on the thread count,
 * and resuming at (epoch, step) reproduces the rest of the run. */
#ifndef EFFNET_DATA_LOADER_H
#define EFFNET_DATA_LOADER_H

#include <stdint.h>

#include "data/augment.h"
#include "data/shard.h"

typedef struct {
    int rank, world;
    int batch;              /* per-rank batch size */
    int train;              /* 1: shuffled, remainder dropped, train augmentation;
                               0: in order, padded (n_valid), test pipeline */
    uint64_t seed;
    int64_t start_epoch, start_step; /* resume position */
    int threads;            /* threads augmenting each batch (>= 1) */
    int no_augment;         /* train == 1 but the test pipeline (resize + normalize) */
    int indices_only;       /* fill only index and y (x stays NULL): the caller augments
                               the images itself, e.g. on the GPU (kernels/augment_cuda.h) */
    eff_aug_config aug;     /* the pipeline: train/data_pipeline.h builds it from the config */
} eff_loader_config;

typedef struct {
    float *x;               /* batch x S x S x 3 */
    int32_t *y;             /* labels */
    int64_t *index;         /* global sample indices */
    int n;                  /* = batch */
    int n_valid;            /* leading entries that are real samples (see sampler.h) */
    int64_t epoch, step;    /* position; resume after it at (epoch, step + 1) */
} eff_batch;

typedef struct eff_loader eff_loader;

eff_loader *eff_loader_open(const eff_dataset *ds, const eff_loader_config *cfg);
/* The next batch. It stays valid until the next call (or close). */
const eff_batch *eff_loader_next(eff_loader *L);
int64_t eff_loader_steps_per_epoch(const eff_loader *L);
/* Batches prepared and waiting (0 or 1); with a timeout in seconds, waits for
 * one to be ready first. For tests of the prefetch. */
int eff_loader_ready(eff_loader *L, double timeout_s);
void eff_loader_close(eff_loader *L);

#endif
