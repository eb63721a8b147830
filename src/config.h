/* config.h: the training configuration -- every key, its type, default, range
 * and help text in one table. Files are INI (parsed by iniparser: Debian
 * libiniparser-dev, Spack iniparser), keys are "section.key", and
 * `--set section.key=value` overrides a file. Unknown keys, wrong types and
 * out-of-range values are errors that name the key. */
#ifndef EFFNET_CONFIG_H
#define EFFNET_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef struct EffConfig {
    /* [model] */
    char model[32];
    long resolution;      /* 0: the model's own */
    long classes;
    double dropout;       /* < 0: the model's own */
    char variant[16];     /* seed | torchvision (src/model.h) */
    double stochastic_depth; /* torchvision's stochastic_depth_prob; < 0: the variant's own */
    long stem_stride;     /* 2 (the model's own) | 1 (the CIFAR adaptation) */
    /* [train] */
    long epochs;
    long max_steps;       /* 0: no limit; else stop after this many optimizer steps */
    long batch;           /* images per rank per micro-batch */
    long accum;           /* micro-batches per optimizer step */
    long max_batch;       /* elastic resume: largest micro-batch that fits (0: the checkpoint's or train.batch) */
    double label_smoothing;
    long seed;
    long threads;         /* 0: leave OpenMP's default */
    char backend[8];      /* auto | cpu | cuda */
    char precision[8];    /* fp32 | bf16 | fp16 (CUDA backend; the CPU is fp32) */
    long deterministic;   /* deterministic cuDNN algorithms */
    char cuda_graph[8];   /* auto | on | off: replay the step from a CUDA graph */
    char recompute[16];   /* none | bnswish: rebuild the blocks' BN+swish outputs in backward */
    /* [optim] */
    char optimizer[16];   /* adam | adamw | sgd */
    double lr, weight_decay, beta1, beta2, eps, momentum;
    long nesterov;
    double backbone_lr_mult; /* every parameter but the classifier's steps with lr x this */
    char shard[8];        /* auto | on | off: ZeRO-1 sharded optimizer state (MPI path) */
    char resume_fallback[8]; /* none | best: resume from best.h5 when the checkpoint is damaged */
    /* [schedule] */
    char schedule[16];    /* constant | cosine */
    long warmup_steps;
    double min_lr;
    /* [data] */
    char data_dir[1024];
    char class_subset[256];  /* data.classes: "5,6,7" -> those classes, relabelled 0..k-1 */
    char init_from[1024];    /* train.init_from: weights-only start (fine-tuning) */
    long init_strict;        /* train.init_strict */
    char freeze[8];          /* train.freeze: none | stem | 1..7 (the stem and stages 1..N) */
    char freeze_bn[8];       /* train.freeze_bn: train | eval (the frozen BNs) */
    long augment;
    long train_subset;    /* 0: the whole train split; else its first N samples */
    long test_subset;
    long loader_threads;
    char gpu_augment[8];  /* auto | on | off: augmentation on the GPU, data resident there */
    char pipeline[16];    /* auto | cifar | imagenet (train/data_pipeline.h) */
    char normalize[16];   /* auto | seed | dataset | imagenet */
    char interpolation[16]; /* bilinear | bicubic */
    long eval_resize;     /* imagenet pipeline: shorter side before the centre crop (0: resolution / 0.875) */
    double crop_scale_min; /* imagenet pipeline: RandomResizedCrop's smallest area fraction */
    /* [output] */
    char output_dir[1024];
    long log_interval;    /* optimizer steps */
    long eval_interval;   /* epochs */
    long checkpoint_interval; /* epochs: write last.h5 */
    long keep_every;      /* epochs: also keep epoch-NNNN.h5 every K epochs (0: never) */
    long keep;            /* how many epoch-NNNN.h5 to keep (0: all) */
    long trace;           /* output.trace: per-rank Chrome trace JSON */
    long lock;            /* output.lock: hold OUTPUT_DIR/effnet.lock (train/dirlock.h) */
    double lock_wait_s;   /* output.lock_wait_s: wait this long for it before refusing */
    long comm_timing;     /* barrier before the all-reduce, to split wait from transfer time */
    /* [comm] */
    double comm_timeout;  /* MPI and NCCL stall watchdog, seconds */
    double bucket_mb;     /* gradient bucket size (NCCL and MPI) */
    long overlap;         /* MPI path: bucketed all-reduce overlapped with backward */
    /* [debug] */
    long nan_at_step;     /* test hook: poison the loss at this global step (0: off) */
    long dump_indices;    /* test hook: per-step global sample indices to OUTPUT_DIR/indices-rankR.txt */
    long sleep_ms;        /* test hook: sleep per step, to make signal tests deterministic */
    long sleep_rank;      /* test hook: the one rank that sleeps (-1: all) */
    long setup_sleep_ms;  /* test hook: sleep in start-up, to make start-up signal tests deterministic */
} EffConfig;

void eff_config_defaults(EffConfig *c);
/* Each returns 1 on success, or 0 with a message naming the key in err. */
int eff_config_load_file(EffConfig *c, const char *path, char *err, size_t errlen);
/* A config given as a path, or by name ("efficientnet-b0", with or without
 * .ini): searched in $EFFNET_CONFIG_PATH (colon-separated), then the
 * installed PREFIX/share/effnet/configs next to the binary, then the source
 * tree's configs/ above a build directory. 1 with the file in out; 0 with the
 * places tried in searched. */
int eff_config_find(const char *name, char *out, size_t cap, char *searched, size_t scap);
int eff_config_set(EffConfig *c, const char *assignment, char *err, size_t errlen);
int eff_config_validate(const EffConfig *c, char *err, size_t errlen);
/* train.freeze as a stage count: -1 none, 0 stem, 1..7 (validated by the key's choices). */
int eff_config_freeze_stages(const EffConfig *c);
/* Print every key with its default and help. */
void eff_config_help(FILE *f);
/* Every key as canonical INI text (malloc'd); loading it gives the same config. */
char *eff_config_to_ini(const EffConfig *c);
/* Set the keys of such a text (a checkpoint's "config" attribute) on c.
 * Keys this version does not know are skipped and counted in *unknown (a
 * checkpoint of another version). 1, or 0 with a message in err. */
int eff_config_from_ini_text(EffConfig *c, const char *text, int *unknown, char *err, size_t errlen);

#endif
