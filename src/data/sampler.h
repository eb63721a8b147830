/* sampler.h: the rank-aware sampler.
 *
 * Each epoch has one global order of the n samples: a Fisher-Yates permutation
 * drawn from the counter-based stream keyed by (seed, epoch) (data_rng.h), or
 * the identity when shuffling is off. The order is cut into global batches of
 * world x batch samples; at step t rank r takes positions
 *     t*world*batch + r*batch ... t*world*batch + (r+1)*batch - 1.
 * So every rank runs the same number of steps, and the samples of a step do
 * not depend on the shard count (indices are global) nor on anything but
 * (seed, epoch, world, batch).
 *
 * Remainder:  drop_last=1 (training): steps = floor(n / (world*batch)); the
 *             n mod (world*batch) samples at the end of the permutation are
 *             skipped this epoch (a different set each epoch).
 *             drop_last=0 (evaluation): steps = ceil(n / (world*batch)); the
 *             positions past n are padding: they repeat samples from the start
 *             of the order and are reported as invalid (valid count), so every
 *             sample is counted exactly once.
 * Resume: a batch is a pure function of (epoch, step): restart at the saved
 * (epoch, step) and the rest of the epoch is the same. */
#ifndef EFFNET_DATA_SAMPLER_H
#define EFFNET_DATA_SAMPLER_H

#include <stdint.h>

typedef struct {
    int64_t n;
    int rank, world, batch;
    int shuffle, drop_last;
    uint64_t seed;
    int64_t steps_per_epoch;
    int64_t *perm;       /* cached order of perm_epoch */
    int64_t perm_epoch;  /* -1: none cached */
} eff_sampler;

/* Fills the global order of one epoch (n entries). */
void eff_epoch_permutation(uint64_t seed, int64_t epoch, int shuffle, int64_t n, int64_t *perm);

/* Exits with a clear message when the arguments cannot give one step. */
void eff_sampler_init(eff_sampler *s, int64_t n, int rank, int world, int batch, uint64_t seed, int shuffle,
                      int drop_last);
void eff_sampler_free(eff_sampler *s);

/* Global sample indices of rank s->rank at (epoch, step) into idx[batch].
 * Returns how many of them are real samples (batch, except for padding in the
 * last evaluation step, where it may be less, even 0). */
int eff_sampler_batch(eff_sampler *s, int64_t epoch, int64_t step, int64_t *idx);

#endif
