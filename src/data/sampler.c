/* sampler.c: see sampler.h. */
#include "data/sampler.h"

#include <stdlib.h>

#include "common.h"
#include "data/data_rng.h"

void eff_epoch_permutation(uint64_t seed, int64_t epoch, int shuffle, int64_t n, int64_t *perm) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    if (!shuffle) return;
    eff_rng_stream st = eff_rng_stream_at(eff_rng_key(EFF_RNG_PERM, seed, (uint64_t)epoch, 0));
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)eff_rng_below(&st, (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

void eff_sampler_init(eff_sampler *s, int64_t n, int rank, int world, int batch, uint64_t seed, int shuffle,
                      int drop_last) {
    EFF_CHECK(world >= 1 && rank >= 0 && rank < world, "sampler: rank %d of world %d is invalid", rank, world);
    EFF_CHECK(batch >= 1, "sampler: batch size %d must be at least 1\nHINT: set a positive per-rank batch size", batch);
    EFF_CHECK(n >= 1, "sampler: the data set is empty");
    int64_t global = (int64_t)world * batch;
    EFF_CHECK(!drop_last || n >= global,
              "sampler: %lld samples cannot fill one global batch of %d ranks x %d = %lld\nHINT: use fewer ranks or a smaller batch size",
              (long long)n, world, batch, (long long)global);
    s->n = n;
    s->rank = rank;
    s->world = world;
    s->batch = batch;
    s->seed = seed;
    s->shuffle = shuffle;
    s->drop_last = drop_last;
    s->steps_per_epoch = drop_last ? n / global : (n + global - 1) / global;
    s->perm = eff_malloc((size_t)n * sizeof *s->perm, "sampler permutation");
    s->perm_epoch = -1;
}

void eff_sampler_free(eff_sampler *s) {
    eff_free(s->perm);
    s->perm = NULL;
}

int eff_sampler_batch(eff_sampler *s, int64_t epoch, int64_t step, int64_t *idx) {
    EFF_CHECK(epoch >= 0 && step >= 0 && step < s->steps_per_epoch,
              "sampler: (epoch %lld, step %lld) is outside 0..%lld steps per epoch\nHINT: the resume position does not fit this data set, world size and batch size",
              (long long)epoch, (long long)step, (long long)s->steps_per_epoch - 1);
    if (s->perm_epoch != epoch) {
        eff_epoch_permutation(s->seed, epoch, s->shuffle, s->n, s->perm);
        s->perm_epoch = epoch;
    }
    int64_t base = step * s->world * s->batch + (int64_t)s->rank * s->batch;
    int valid = 0;
    for (int k = 0; k < s->batch; k++) {
        int64_t p = base + k;
        if (p < s->n) valid++;
        idx[k] = s->perm[p % s->n];
    }
    return valid;
}
