/* checkpoint.h: HDF5 checkpoints (model, optimizer, training state, config,
 * provenance), written atomically by rank 0 and loadable by PyTorch + h5py.
 * The file layout is specified in docs/checkpoint-format.md. */
#ifndef EFFNET_CHECKPOINT_H
#define EFFNET_CHECKPOINT_H

#include "model.h"

#include <stddef.h>
#include <stdint.h>

/* Version 1 throughout: attributes added later (the fp16 scaler's, the batch
 * split of /train) are optional, and a file without them reads as 0 (see
 * docs/checkpoint-format.md, "Versioning"): no older reader misreads a newer
 * file, and every older file still loads. */
#define EFF_CKPT_SCHEMA_VERSION 1
#define EFF_CKPT_FORMAT "effnet-checkpoint"

typedef struct EffTrainState {
    int64_t epoch;          /* epoch in progress (1-based) when saved */
    int64_t step_in_epoch;  /* optimizer steps completed within that epoch (sampler position) */
    int64_t global_step;    /* optimizer steps completed in total */
    int64_t best_epoch;     /* 0 if none yet */
    double best_acc;        /* percent, -1 if none yet */
    double last_acc;        /* percent, -1 if none yet */
    double last_loss;       /* test loss of the last eval, or NaN */
    uint64_t seed;          /* run seed: every RNG stream (sampler, augmentation, dropout) is a pure function of
                               (seed, epoch/step, index), so this plus the counters is the full RNG state */
    int world_size;
    int64_t batch_per_rank; /* the micro-batch: images per rank per forward (BN statistics and dropout keys) */
    int64_t accum;          /* micro-batches per optimizer step */
    int64_t global_batch;   /* world_size x batch_per_rank x accum: the recipe's batch, kept by elastic resume.
                               All three 0 when loaded from a file written before elastic resume: the
                               driver then takes batch and accum from the stored config */
    double lr;              /* current learning rate (schedule state is a pure function of global_step; stored
                               for provenance) */
    double loss_scale;      /* fp16 dynamic loss scale (src/amp.h); 0 when the run does not scale (bf16, fp32,
                               CPU) or the checkpoint predates it */
    int64_t loss_scale_good_steps, loss_scale_skipped; /* the scaler's growth counter and skipped-step count */
    /* Filled by eff_checkpoint_load from /optimizer's "name" attribute ("" if the
     * file has no /optimizer); ignored by eff_checkpoint_save, which takes the name
     * as an argument. Lets a resume check that the optimizer did not change. */
    char optimizer[32];
} EffTrainState;

/* Write model params + BN buffers (+ num_batches_tracked per BN as an int64
 * scalar, value m->bn_batches) under /model/<state_dict key> in PyTorch layout,
 * the optimizer moments (m->adam_m, m->adam_v) under /optimizer/exp_avg/<key>
 * and /optimizer/exp_avg_sq/<key> in PyTorch layout with attributes step =
 * m->adam_t and name = optimizer_name, the training state as attributes of
 * /train, and as root attributes: format, schema_version, model, classes,
 * resolution, created, config (config_ini; NULL is stored as ""), hdf5_version,
 * and the n_prov provenance pairs (a key may not repeat a reserved name).
 *
 * Atomic: the file is built in memory (HDF5 core driver; about twice the
 * file's size in host memory while saving), written to PATH.tmp.<pid> in the
 * same directory, fsynced, closed, renamed onto PATH, and the directory is
 * fsynced. On any HDF5 or I/O error, and for a NaN/Inf in any tensor, it
 * removes the temporary file, leaves PATH untouched, and exits through
 * EFF_FATAL with a message naming the file and what failed. */
void eff_checkpoint_save(const char *path, const EffModel *m, const EffTrainState *st, const char *optimizer_name,
                         int resolution, const char *config_ini, const char *const *prov_keys,
                         const char *const *prov_vals, int n_prov);

/* Read the header without loading tensors: model name, classes, resolution,
 * format and schema check. Returns 1 on success; on failure writes a message
 * (naming the file) to err and returns 0: missing file, not HDF5, truncated,
 * wrong format or schema version, missing header attribute. */
int eff_checkpoint_peek(const char *path, char *model_name, size_t model_cap, int *classes, int *resolution, char *err,
                        size_t errlen);

/* Load into an already-created model of the same spec. Checks format, schema
 * version, model name, classes, that /model holds exactly the model's
 * state_dict keys, and every tensor's shape and type class (EFF_FATAL naming
 * the file and tensor on a mismatch; tensor data is Fletcher-32 checked).
 * Loads params, BN buffers and bn_batches; if load_optimizer, also the moments
 * and adam_t (the file must then have /optimizer). Fills *st if non-NULL (the
 * file must then have /train). If config_out is non-NULL, returns the stored
 * config text (malloc'd, free with eff_free), or NULL if the file has none (a
 * file exported from PyTorch, say). /optimizer and /train are only required
 * when asked for, so a file with just the header and /model loads for
 * evaluation or fine-tuning. */
void eff_checkpoint_load(const char *path, EffModel *m, int load_optimizer, EffTrainState *st, char **config_out);

#endif
