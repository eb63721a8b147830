/* elastic.h: how a resumed run splits the checkpoint's global batch over a
 * new number of ranks (docs/training.md, "Elastic resume").
 *
 * Global batch = ranks x micro-batch x accumulation. The global batch is the
 * recipe (with the learning rate and the schedule) and is kept. The
 * micro-batch decides what BatchNorm normalises over and how dropout masks
 * are keyed, so it is kept too whenever it divides the new per-rank share:
 * then every step sees exactly the micro-batches of the uninterrupted run,
 * only their sum is formed in another order. When it cannot be kept, the
 * largest micro-batch within the memory limit that divides the share is
 * chosen and the log says that BN statistics now cover a different number of
 * images. A split the user gives explicitly (--set train.batch / train.accum)
 * is honoured; if it changes the global batch, that is reported as a recipe
 * change. Pure functions: no MPI, no I/O. */
#ifndef EFFNET_TRAIN_ELASTIC_H
#define EFFNET_TRAIN_ELASTIC_H

#include <stddef.h>

typedef enum {
    EFF_SPLIT_SAME,    /* same ranks, same split */
    EFF_SPLIT_ACCUM,   /* same micro-batch and global batch, accumulation rescaled */
    EFF_SPLIT_MICRO,   /* same global batch, another micro-batch (BN statistics over another count) */
    EFF_SPLIT_USER,    /* the user's explicit split, same global batch */
    EFF_SPLIT_RECIPE   /* the user's explicit split changes the global batch */
} EffSplitKind;

typedef struct {
    long batch, accum;         /* this run's micro-batch and accumulation */
    long global_old, global_new;
    EffSplitKind kind;
    char why[600];             /* one log line: what was chosen and why */
} EffBatchPlan;

/* ckpt_*: the run that wrote the checkpoint. world: this run's ranks.
 * batch/accum: this run's config; set_batch/set_accum: given explicitly on
 * the command line. max_batch: the largest micro-batch that fits in memory
 * (0: the checkpoint's micro-batch, or train.batch if larger); min 2 (a
 * BatchNorm over one image at 1x1 is undefined). Returns 1 and fills *plan,
 * or 0 with an error in err that names the options. */
int eff_batch_plan(int ckpt_world, long ckpt_batch, long ckpt_accum, int world, long batch, long accum, int set_batch,
                   int set_accum, long max_batch, EffBatchPlan *plan, char *err, size_t errlen);

/* Resume position after a global-batch change: samples consumed in the epoch
 * (step x old global batch) rounded up to whole new steps. *skipped gets the
 * samples of the epoch that will not be seen (0 when it divides). */
long long eff_resume_step(long long step_in_epoch, long global_old, long global_new, long long *skipped);

#endif
