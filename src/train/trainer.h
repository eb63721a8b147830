/* trainer.h: the training loop of `effnet train`, in the steps a reader
 * expects (src/cmd/cmd_train.c calls them in this order):
 *
 *   trainer.c the shared pieces (the log, metrics rows, the parameter hash
 *             check, ZeRO-1's ranges and parameter all-gather)
 *   setup.c   eff_trainer_setup    backend, data, model; the resume with its
 *                                  batch split (elastic: train/elastic.h);
 *                                  identical start on every rank; loaders
 *   step.c    eff_trainer_step     one optimizer step: micro-batches (forward,
 *                                  backward), gradient and BN-statistic
 *                                  reduction, the fp16 loss scaler, the
 *                                  optimizer
 *   epoch.c   eff_trainer_end_epoch evaluate; best/last/keep checkpoints
 *             eff_trainer_log_step  the seed's log line and metrics.jsonl
 *             eff_trainer_finish    the timing summary; free everything
 *
 * Every MPI collective goes through T->mpi (comm/comm_mpi.h), the stall
 * watchdog; the gradients move through T->xchg (comm/exchange.h), MPI or NCCL
 * behind one interface. Exit codes: 0 done;
 * 1 error (any rank: MPI_Abort ends all); 3 non-finite loss or gradient;
 * 4 a collective stalled past comm.timeout_s; 75 checkpointed after
 * SIGTERM/SIGUSR1/SIGINT, please requeue. */
#ifndef EFFNET_TRAIN_TRAINER_H
#define EFFNET_TRAIN_TRAINER_H

#include "amp.h"
#include "checkpoint.h"
#include "comm/comm_mpi.h"
#include "comm/comm_nccl.h"
#include "config.h"
#include "context.h"
#include "data/loader.h"
#include "data/shard.h"
#include "jsonout.h"
#include "train/signals.h"
#include "train/trace.h"

#include <stdint.h>
#include <stdio.h>

enum { EFF_EXIT_NONFINITE = 3, EFF_EXIT_REQUEUE = 75 };

/* set by CMake for the effnet executable (the log header, checkpoint provenance) */
#ifndef EFFNET_VERSION
#define EFFNET_VERSION "unknown"
#endif
#ifndef EFFNET_GIT_COMMIT
#define EFFNET_GIT_COMMIT "unknown"
#endif


struct EffGpuAugment;

/* A step's phases, per rank, for the straggler report (every step counts). */
enum { EFF_PH_DATA, EFF_PH_COMPUTE, EFF_PH_COMM, EFF_PH_OPTIM, EFF_PHASES };

/* Step-time split for scaling studies (rank 0's view, first step skipped). */
typedef struct {
    double compute, wait, allreduce, optim; /* seconds, summed */
    double data;                            /* waiting for the loader's next batch */
    double exposed;                         /* overlapped path: waiting for the buckets after backward */
    int64_t buckets, buckets_in_backward;   /* overlapped path: buckets, and those done before backward ended */
    int64_t steps;
} EffStepTimes;

typedef struct {
    double loss;      /* mean over the global batch */
    double gnorm2;    /* squared gradient norm (unscaled) */
    double lr;
    int stop_signal;  /* some rank got SIGTERM/SIGUSR1/SIGINT */
    int nonfinite;    /* the loss or the gradient is not finite: stop */
    int buckets, buckets_in_backward; /* overlapped MPI path: buckets, and those done before backward ended */
    double exposed_s; /* overlapped MPI path: waiting for the buckets after backward */
} EffStepResult;

typedef struct EffTrainer {
    EffContext ctx;
    EffBackend *cuda;            /* the CUDA backend instance, when selected */
    EffMpi *mpi;                 /* every MPI collective, under the stall watchdog */
    struct EffExchange *xchg;    /* the gradient exchange (comm/exchange.h): MPI, or NCCL with CUDA on several ranks */
    int sharded;                 /* optim.shard: ZeRO-1, this rank updates piece `rank` of every bucket */
    double params_wait_s;        /* sharded: the step's forward waited this long for it */
    EffLossScaler scaler;
    struct EffGpuAugment *gaug;  /* data.gpu_augment: the train split resident on the GPU */
    EffConfig cfg;
    int set_batch, set_accum;    /* given with --set on the command line (elastic resume honours them) */
    int rank, world, R;
    char *config_ini;
    char *hosts;                 /* every rank's hostname, comma-separated, in rank order */
    eff_dataset train, test;
    eff_loader *tl, *el;
    int64_t steps_per_epoch, eval_steps, total_steps;
    EffTrainState st;
    FILE *metrics;
    FILE *index_dump;            /* debug.dump_indices: this rank's sample indices per step */
    EffTrace *trace;             /* output.trace: this rank's timeline, or NULL */
    float *bn_start, *bn_sum;    /* accum > 1 (host): the step's starting BN statistics; their sum over the
                                    micro-batches, followed by a staging copy (2 x the BN buffer) */
    const char *iallreduce;      /* how MPI_Iallreduce's algorithm was chosen (cmd_train.c) */
    EffSignals *signals;
    int dir_lock;                /* rank 0: the descriptor holding OUTPUT_DIR/effnet.lock, or -1 */         /* SIGTERM/SIGUSR1/SIGINT, taken by a thread of their own (train/signals.h) */
    /* progress of this process */
    int64_t steps_run, window_steps, epoch_samples;
    double window_t0, window_loss, epoch_loss;
    double win_phase[EFF_PHASES];  /* this rank's phase times in the log window (the straggler report) */
    double *straggler_rows;        /* world > 1: (EFF_PHASES + 3) x world: the report's gather, busy and sort buffers */
    EffStepTimes times;
    int exit_code, finished;
} EffTrainer;

/* trainer.c -- shared by every stage below. rank 0 only: a log line to stdout
 * (flushed); row (a jsonout.h object) as one line of metrics.jsonl.
 * eff_trainer_metrics deletes row on every rank. */
void eff_trainer_log(const EffTrainer *T, const char *fmt, ...) EFF_PRINTF(2, 3);
void eff_trainer_metrics(EffTrainer *T, cJSON *row);

/* Every rank holds bit-identical parameters (a hash all-gather; "when" names
 * the occasion in the log and the error). */
void eff_trainer_check_identical(EffTrainer *T, const char *when);
/* ZeRO-1: the parameter ranges rank `rank` owns, pieces of the buckets of
 * the trainable range [train_lo, total) (eff_free the result). */
EffSeg *eff_trainer_owned(const EffTrainer *T, int rank, int *nseg);
/* ZeRO-1: finish the parameter all-gather of the last step, if in flight.
 * Everything that reads the parameters outside a step calls it first. */
void eff_trainer_params_sync(EffTrainer *T);
/* FNV-1a 64 of n bytes (config and parameter hashes). */
uint64_t eff_fnv1a(const void *p, size_t n);
/* setup.c. resume: NULL for a fresh run, "" for OUTPUT_DIR/last.h5, else a path. */
void eff_trainer_setup(EffTrainer *T, const char *resume);
/* step.c */
EffStepResult eff_trainer_step(EffTrainer *T, const eff_batch *b);
/* epoch.c */
void eff_trainer_log_step(EffTrainer *T, const EffStepResult *r);
void eff_trainer_checkpoint(EffTrainer *T, const char *name);
void eff_trainer_end_epoch(EffTrainer *T, int64_t epoch, int epoch_done);
void eff_trainer_finish(EffTrainer *T);

#endif
