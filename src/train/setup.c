/* setup.c: everything before the first step of `effnet train` -- backend,
 * data, model, the resume (with its batch split), an identical start on
 * every rank, the communicators, the loaders, the directory lock, and a
 * signal that arrived during start-up (train/signals.h). */
#define _POSIX_C_SOURCE 200809L
#include "train/trainer.h"
#include "comm/buckets.h"
#include "comm/exchange.h"

#include "common.h"
#include "data/sampler.h"
#include "train/data_pipeline.h"
#include "train/dirlock.h"
#include "train/elastic.h"
#include "train/threads.h"
#ifdef EFFNET_HAVE_CUDA
#include "augment_cuda.h"
#endif

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>



/* MPI_Bcast from rank 0 of a backend buffer (staged through the host, so it
 * works for device memory without a CUDA-aware MPI). */
static void bcast_floats(EffTrainer *T, float *buf, size_t n, const char *what) {
    const EffBackend *be = T->ctx.be;
    float *host = eff_malloc(n * sizeof(float), "broadcast staging");
    be->download(be, host, buf, n * sizeof(float));
    eff_mpi_bcast(T->mpi, host, n, MPI_FLOAT, 0, what);
    be->upload(be, buf, host, n * sizeof(float));
    be->synchronize(be);
    eff_free(host);
}

/* train.backend: auto picks cuda when this build has CUDA and EVERY rank sees
 * a GPU (agreed with an all-reduce, so ranks never mix backends). */
static void select_backend(EffTrainer *T) {
    const EffConfig *c = &T->cfg;
    int have = eff_cuda_available() && eff_cuda_device_count() > 0, all = have;
    eff_mpi_allreduce(T->mpi, &all, 1, MPI_INT, MPI_MIN, "backend agreement");
    const int cuda = !strcmp(c->backend, "cuda") || (!strcmp(c->backend, "auto") && all);
    if (!strcmp(c->backend, "cuda"))
        EFF_CHECK(have, "rank %d: train.backend = cuda, but %s\nHINT: run on GPU nodes or set train.backend = cpu",
                  T->rank, eff_cuda_available() ? "no CUDA device is usable here" : "this effnet was built without CUDA");
    if (!cuda) {
        T->ctx.be = eff_backend_cpu();
        eff_scaler_init(&T->scaler, 0);
        return;
    }
    const int device = eff_comm_select_device(MPI_COMM_WORLD, 1);
    const int prec = eff_precision_parse(c->precision);
    T->cuda = eff_backend_cuda_create(device, (EffPrecision)prec, (int)c->deterministic);
    T->ctx.be = T->cuda;
    eff_scaler_init(&T->scaler, prec == EFF_PREC_FP16);
}

static void load_split(EffTrainer *T, const char *split, eff_dataset *ds, long subset) {
    char index[1100], err[1024];
    snprintf(index, sizeof index, "%s/%s", T->cfg.data_dir, EFF_SHARD_INDEX_NAME);
    EFF_CHECK(eff_dataset_load(index, split, 0, ds, err, sizeof err) == 0, "data: %s\nHINT: convert CIFAR-10 with "
              "'cifar10-to-h5 --input DIR --output %s --shards N' or set data.dir", err, T->cfg.data_dir);
    char what[512]; /* data.classes: before the subset, so N samples of those classes */
    eff_data_select(&T->cfg, ds, what, sizeof what);
    if (what[0]) eff_trainer_log(T, "data: %s\n", what);
    if (subset > 0 && subset < ds->n) ds->n = subset;
}

/* model.classes = 0: say where the count comes from, with the first names. */
static void log_classes(EffTrainer *T) {
    char names[256] = "";
    for (int k = 0; k < T->train.num_classes && strlen(names) < 200; k++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%.40s", k ? ", " : "", T->train.class_names[k]);
    eff_trainer_log(T, "data: %d classes from the shards (model.classes = 0): %s%s\n", T->train.num_classes, names,
                    strlen(names) >= 200 ? ", ..." : "");
}

/* Every rank's hostname, comma-separated in rank order (checkpoint provenance). */
/* train.threads; or, at 0, OMP_NUM_THREADS when set, else the cores of this
 * rank's affinity mask over the ranks on its host that share them
 * (train/threads.h). The masks are exchanged whenever train.threads = 0
 * (the same on every rank): the environment may differ between ranks. */
static void choose_threads(EffTrainer *T) {
    int n = (int)T->cfg.threads;
    char why[400] = "train.threads";
    if (n == 0) {
        const size_t mb = eff_threads_mask_bytes();
        unsigned char *masks = eff_calloc((size_t)T->world + 1, mb, "affinity masks"), *mine = masks + T->world * mb;
        EFF_CHECK(eff_threads_mask(mine) == 0, "rank %d: sched_getaffinity failed: %s\n"
                  "HINT: set train.threads (--set train.threads=N)", T->rank, strerror(errno));
        eff_mpi_allgather(T->mpi, mine, masks, mb, MPI_BYTE, "affinity masks");
        const char **hosts = eff_calloc((size_t)T->world, sizeof *hosts, "host names");
        for (int r = 0; r < T->world; r++) hosts[r] = eff_mpi_host(T->mpi, r);
        const char *env = getenv("OMP_NUM_THREADS");
        if (env && *env) {
            snprintf(why, sizeof why, "OMP_NUM_THREADS=%s", env);
            n = omp_get_max_threads();
        } else {
            n = eff_threads_auto(T->rank, T->world, hosts, masks, mb, why, sizeof why);
        }
        free(hosts);
        free(masks);
    }
    T->ctx.threads = n;
    eff_set_threads(n);
    eff_trainer_log(T, "threads: %d OpenMP/BLAS thread(s) per rank (rank 0: %s)\n", n, why);
}

static void gather_hosts(EffTrainer *T) {
    size_t cap = 1;
    for (int r = 0; r < T->world; r++) cap += strlen(eff_mpi_host(T->mpi, r)) + 1;
    T->hosts = eff_calloc(cap, 1, "host list");
    for (int r = 0; r < T->world; r++) {
        if (r) strcat(T->hosts, ",");
        strcat(T->hosts, eff_mpi_host(T->mpi, r));
    }
}

/* The config stored in a checkpoint: the recipe as it was given (file and
 * --set), before any resume adjusted the split. */
static void stored_config(const char *path, const char *ini, EffConfig *out) {
    EFF_CHECK(ini && ini[0], "checkpoint '%s' has no stored config, so it cannot be resumed\nHINT: it can be evaluated "
              "or fine-tuned from (effnet eval)", path);
    char tmp[] = "/tmp/effnet-ckpt-config-XXXXXX", err[1400];
    int fd = mkstemp(tmp);
    EFF_CHECK(fd >= 0, "cannot create a temporary file for the stored config: %s", strerror(errno));
    FILE *f = fdopen(fd, "w");
    EFF_CHECK(f && fputs(ini, f) >= 0 && fclose(f) == 0, "writing %s failed: %s", tmp, strerror(errno));
    eff_config_defaults(out);
    const int ok = eff_config_load_file(out, tmp, err, sizeof err);
    unlink(tmp);
    EFF_CHECK(ok, "checkpoint '%s': its stored config does not parse: %s", path, err);
}

/* The resume's batch split (train/elastic.h): keeps the global batch unless
 * the command line asks for another split. */
static void plan_split(EffTrainer *T, const char *path, const char *stored_ini) {
    EffConfig *c = &T->cfg, given;
    stored_config(path, stored_ini, &given);
    /* the split that ran: in /train since elastic resume, else the stored config's */
    const long b0 = T->st.global_batch > 0 ? (long)T->st.batch_per_rank : given.batch;
    const long a0 = T->st.global_batch > 0 ? (long)T->st.accum : given.accum;
    /* --set values that repeat the stored recipe (the same command resubmitted) ask for nothing new */
    const int asks = (T->set_batch && c->batch != given.batch) || (T->set_accum && c->accum != given.accum);
    const int set_batch = asks && T->set_batch, set_accum = asks && T->set_accum;
    EffBatchPlan p;
    char err[1400];
    EFF_CHECK(eff_batch_plan(T->st.world_size, b0, a0, T->world, c->batch, c->accum, set_batch, set_accum,
                             c->max_batch, &p, err, sizeof err), "%s", err);
    eff_trainer_log(T, "resume: batch split %s\n", p.why);
    if (p.kind == EFF_SPLIT_RECIPE) {
        long long skipped = 0;
        T->st.step_in_epoch = eff_resume_step(T->st.step_in_epoch, p.global_old, p.global_new, &skipped);
        eff_trainer_log(T, "resume: RECIPE CHANGE: the epoch continues at step %lld of global batch %ld (%lld samples "
                        "of this epoch skipped to reach a whole step)\n", (long long)T->st.step_in_epoch, p.global_new,
                        skipped);
    }
    c->batch = p.batch; /* what runs; the stored config (T->config_ini) stays the recipe as given */
    c->accum = p.accum;
}

/* train.resume_fallback = best: a checkpoint that fails its checksum is
 * replaced by OUTPUT_DIR/best.h5 (rank 0 decides, so every rank loads the
 * same file). Without it, eff_checkpoint_load stops with the damage named. */
static void fall_back_if_damaged(EffTrainer *T, char *path, size_t cap) {
    const EffConfig *c = &T->cfg;
    if (strcmp(c->resume_fallback, "best") != 0) return;
    char err[1400] = "";
    int bad = T->rank == 0 && eff_ckpt_verify(path, err, sizeof err) < 0;
    eff_mpi_bcast(T->mpi, &bad, 1, MPI_INT, 0, "resume fallback broadcast");
    if (!bad) return;
    char best[1300];
    snprintf(best, sizeof best, "%s/best.h5", c->output_dir);
    EFF_CHECK(strcmp(best, path) != 0, "%s\nHINT: train.resume_fallback = best, but this is best.h5 itself", err);
    eff_trainer_log(T, "resume: %s\nresume: train.resume_fallback = best: resuming from %s instead (an earlier "
                    "state: the steps since it are trained again)\n", err, best);
    snprintf(path, cap, "%s", best);
}

static void resume(EffTrainer *T, const char *resume_arg) {
    const EffConfig *c = &T->cfg;
    EffModel *m = &T->ctx.model;
    char path[1300], *stored = NULL;
    if (!resume_arg[0]) snprintf(path, sizeof path, "%s/last.h5", c->output_dir);
    else snprintf(path, sizeof path, "%s", resume_arg);
    fall_back_if_damaged(T, path, sizeof path);
    eff_checkpoint_load(path, m, 1, &T->st, &stored);
    EFF_CHECK(!T->st.optimizer[0] || !strcmp(T->st.optimizer, c->optimizer), "checkpoint '%s' was written with "
              "optimizer '%s', config optim.name is '%s'\nHINT: resume with the same optimizer", path, T->st.optimizer,
              c->optimizer);
    EFF_CHECK(T->st.seed == T->ctx.seed, "checkpoint '%s' has seed %llu, config train.seed is %ld", path,
              (unsigned long long)T->st.seed, c->seed);
    plan_split(T, path, stored);
    eff_free(stored);
    eff_trainer_log(T, "resume: %s at epoch %lld, step %lld of the epoch, global step %lld\n", path,
                    (long long)T->st.epoch, (long long)T->st.step_in_epoch, (long long)T->st.global_step);
    if (T->scaler.enabled && T->st.loss_scale > 0) {
        T->scaler.scale = T->st.loss_scale;
        T->scaler.good_steps = (long)T->st.loss_scale_good_steps;
        T->scaler.skipped = (long)T->st.loss_scale_skipped;
        eff_trainer_log(T, "resume: fp16 loss scale %g (%ld finite steps since its last change, %ld skipped so far)\n",
                        T->scaler.scale, T->scaler.good_steps, T->scaler.skipped);
    } else if (T->scaler.enabled) {
        eff_trainer_log(T, "resume: the checkpoint has no fp16 loss-scaler state (written by a bf16/fp32/CPU run or an "
                        "older effnet): the scale starts at %g\n", T->scaler.scale);
    }
}

/* The MPI transport (comm/exchange.h) on the CPU backend, or on one GPU: the
 * bucketed exchange of buckets_mpi.c whenever comm.overlap or the sharded
 * optimizer asks for it, else one MPI all-reduce after backward, or nothing
 * on one rank. With CUDA on several ranks NCCL is set up in start_identical. */
static void setup_mpi_exchange(EffTrainer *T) {
    const EffConfig *c = &T->cfg;
    EffModel *m = &T->ctx.model;
    if (T->cuda && T->world > 1) return;
    T->xchg = eff_exchange_mpi(T->mpi, T->ctx.be, m->grad, m->train_lo, m->ptab.total, c->bucket_mb, (int)c->overlap,
                               T->sharded);
    if (!T->xchg->nbuckets) return;
    eff_trainer_log(T, "comm: MPI %s in %d buckets of ~%.1f MiB, %s; watchdog %.0f s\n",
                    T->sharded ? "reduce-scatter" : "all-reduce", T->xchg->nbuckets, c->bucket_mb,
                    c->overlap ? "started as backward finishes them (comm.overlap = 1)" : "after backward (comm.overlap = 0)",
                    c->comm_timeout);
}

/* train.freeze: what is frozen, and what that saves (logged once). */
static void log_freeze(EffTrainer *T) {
    const EffModel *m = &T->ctx.model;
    int frozen = 0;
    while (frozen < m->ptab.count && m->ptab.views[frozen].offset < m->train_lo) frozen++;
    char what[64];
    if (m->freeze_stages == 0) snprintf(what, sizeof what, "the stem");
    else snprintf(what, sizeof what, "the stem and stages 1-%d (%d blocks)", m->freeze_stages, m->freeze_blocks);
    eff_trainer_log(T, "freeze: train.freeze = %s: %s frozen, %d of %d parameter tensors (%zu of %zu parameters, up "
                    "to %s): no gradient, no all-reduce, no optimizer state; backward stops above them; their BNs in "
                    "%s mode\n", T->cfg.freeze, what, frozen, m->ptab.count, m->train_lo, (size_t)m->ptab.total,
                    m->ptab.views[frozen > 0 ? frozen - 1 : 0].name, m->freeze_bn_eval ? "eval" : "train");
}

/* The optimizer's ranges: the trainable parameters [train_lo, total)
 * (train.freeze), and with optim.shard (ZeRO-1) rank r's piece r of every
 * gradient bucket of them (src/comm/buckets.h); the gradient is then
 * reduce-scattered in buckets and the updated parameters all-gathered: over
 * MPI (buckets_mpi.c) on the CPU backend, over NCCL (comm_nccl.c) on the
 * CUDA backend. */
static void setup_shard(EffTrainer *T) {
    const EffConfig *c = &T->cfg;
    EffModel *m = &T->ctx.model;
    /* auto: on over MPI; over NCCL only when asked (optim.shard = on): that
     * path is compiled but has not yet run on a GPU */
    T->sharded = T->world > 1 && (!strcmp(c->shard, "on") || (!strcmp(c->shard, "auto") && !T->cuda));
    setup_mpi_exchange(T);
    if (m->freeze_stages >= 0) log_freeze(T);
    if (m->backbone_lr_mult != 1.0f)
        eff_trainer_log(T, "optim: optim.backbone_lr_mult = %g: every parameter before classifier.1.weight steps with "
                        "the learning rate x %g, the classifier with the learning rate\n", c->backbone_lr_mult,
                        c->backbone_lr_mult);
    /* (called before the optimizer state is first written: a fresh run never touches the full state's pages) */
    if (!T->sharded) {
        const EffSeg trainable = {m->train_lo, m->ptab.total - m->train_lo};
        if (m->train_lo > 0) eff_model_set_optimizer_ranges(m, &trainable, 1);
        if (m->train_lo > 0)
            eff_trainer_log(T, "optim: the %s state of the %zu trainable parameters only (%.1f MiB)\n", c->optimizer,
                            m->opt_n, 2.0 * (double)m->opt_n * sizeof(float) / 1048576.0);
        return;
    }
    int nseg = 0;
    EffSeg *seg = eff_trainer_owned(T, T->rank, &nseg);
    eff_model_set_optimizer_ranges(m, seg, nseg);
    eff_free(seg);
    eff_trainer_log(T, "optim: sharded (ZeRO-1): each rank keeps the %s state of ~%zu parameters (1/%d, one piece of "
                    "each bucket), parameters all-gathered %s\n", c->optimizer, m->opt_n, T->world,
                    T->cuda ? "after the step (NCCL)" : "during the next forward");
}


/* train.init_from: the weights of a checkpoint, nothing else (fine-tuning). */
static void init_from(EffTrainer *T) {
    const EffConfig *c = &T->cfg;
    EffInitReport r;
    eff_checkpoint_init_from(c->init_from, &T->ctx.model, (int)c->init_strict, &r);
    eff_trainer_log(T, "init: weights from %s: %d tensors loaded, %d re-initialised%s%s%s, %d ignored%s%s%s; optimizer "
                    "state and position start afresh\n", c->init_from, r.loaded, r.reinit, r.reinit ? " (" : "",
                    r.reinit_names, r.reinit ? ")" : "", r.ignored, r.ignored ? " (" : "", r.ignored_names,
                    r.ignored ? ")" : "");
    if (r.reinit && T->ctx.model.spec.variant == EFF_VARIANT_TORCHVISION) {
        eff_model_reinit_head_linear(&T->ctx.model, T->ctx.seed);
        eff_trainer_log(T, "init: the checkpoint has %d classes, the model %d: the classifier starts as a fresh "
                        "nn.Linear(%d, %d), U(+-1/sqrt(%d)) (not torchvision's U(+-1/sqrt(%d)): docs/finetuning.md)\n",
                        r.file_classes, T->ctx.model.classes, T->ctx.model.head_c, T->ctx.model.classes,
                        T->ctx.model.head_c, T->ctx.model.classes);
    } else if (r.reinit) {
        eff_trainer_log(T, "init: the checkpoint has %d classes, the model %d: the classifier starts from its "
                        "initialisation (the seed's: nn.Linear's default)\n", r.file_classes, T->ctx.model.classes);
    }
    if (r.file_stem_stride != T->ctx.model.spec.stem_stride)
        eff_trainer_log(T, "init: the checkpoint's stem had stride %d, this model's has %d (model.stem_stride): the "
                        "same weights, applied at another resolution\n", r.file_stem_stride,
                        T->ctx.model.spec.stem_stride);
}

static void create_model(EffTrainer *T, const EffModelSpec *spec, const char *resume_arg) {
    const EffConfig *c = &T->cfg;
    EffModel *m = &T->ctx.model;
    eff_model_create(m, T->ctx.be, spec, (int)c->classes);
    if (c->dropout >= 0) eff_model_set_dropout(m, c->dropout);
    m->label_smoothing = (float)c->label_smoothing;
    eff_model_set_freeze(m, eff_config_freeze_stages(c), !strcmp(c->freeze_bn, "eval"));
    m->backbone_lr_mult = (float)c->backbone_lr_mult;
    if (!resume_arg) setup_shard(T); /* a resume loads the full state first */
    eff_model_init_weights(m, T->ctx.seed);
    if (c->init_from[0] && !resume_arg) init_from(T);
    else if (c->init_from[0]) eff_trainer_log(T, "init: train.init_from is ignored: --resume continues the run\n");
    T->st = (EffTrainState){.epoch = 1, .step_in_epoch = 0, .global_step = 0, .best_epoch = 0, .best_acc = -1,
                            .last_acc = -1, .last_loss = NAN, .seed = T->ctx.seed, .lr = c->lr};
    if (resume_arg) {
        resume(T, resume_arg);
        setup_shard(T);
    }
    T->st.world_size = T->world;
    T->st.batch_per_rank = c->batch;
    T->st.accum = c->accum;
    T->st.global_batch = (int64_t)T->world * c->batch * c->accum;
    m->recompute = !strcmp(c->recompute, "bnswish");
    eff_model_alloc_acts(m, (int)c->batch, T->R);
}

static void open_output(EffTrainer *T, int appending) {
    const EffConfig *c = &T->cfg;
    if (T->rank == 0) {
        char path[1200];
        EFF_CHECK(eff_mkdir_p(c->output_dir) == 0, "cannot create output.dir '%s': %s", c->output_dir, strerror(errno));
        snprintf(path, sizeof path, "%s/metrics.jsonl", c->output_dir);
        T->metrics = eff_fopen(path, appending ? "a" : "w");
    }
    eff_mpi_barrier(T->mpi, "output directory barrier");
    if (c->dump_indices) {
        char path[1200];
        snprintf(path, sizeof path, "%s/indices-rank%d.txt", c->output_dir, T->rank);
        T->index_dump = eff_fopen(path, "a");
    }
    if (c->trace) T->trace = eff_trace_open(c->output_dir, T->rank, eff_mpi_host(T->mpi, T->rank));
}

/* Identical start on every rank: broadcast rank 0's state, then verify. */
static void start_identical(EffTrainer *T) {
    EffModel *m = &T->ctx.model;
    const EffConfig *c = &T->cfg;
    bcast_floats(T, m->param, m->ptab.total, "parameter broadcast");
    bcast_floats(T, m->bufs, m->btab.total, "BN statistics broadcast");
    eff_trainer_check_identical(T, "start");
    if (T->cuda && T->world > 1) {
        T->xchg = eff_exchange_nccl(MPI_COMM_WORLD, T->ctx.be, m->grad, m->train_lo, m->ptab.total, c->bucket_mb,
                                    c->comm_timeout, T->sharded);
        eff_trainer_log(T, "comm: NCCL %s (ncclAvg) in %d buckets of ~%.1f MiB, overlapped with backward; "
                        "watchdog %.0f s\n", T->sharded ? "reduce-scatter" : "all-reduce", T->xchg->nbuckets,
                        c->bucket_mb, c->comm_timeout);
    }
    if (c->accum > 1) {
        T->bn_start = eff_malloc(m->btab.total * sizeof(float), "BN statistics at the step's start");
        T->bn_sum = eff_malloc(2 * m->btab.total * sizeof(float), "BN statistics sum over micro-batches");
    }
}

/* The step's execution mode: CUDA graph or eager; GPU-resident augmentation. */
static void choose_step_mode(EffTrainer *T, eff_loader_config *lc) {
    const EffConfig *c = &T->cfg;
    EffModel *m = &T->ctx.model;
    const int graph_ok = T->cuda && c->accum == 1;
    EFF_CHECK(graph_ok || strcmp(c->cuda_graph, "on") != 0, "train.cuda_graph = on needs the CUDA backend and "
              "train.accum = 1 (this run: backend %s, accum %ld)\nHINT: set train.cuda_graph = auto", T->ctx.be->name,
              c->accum);
    m->use_graph = graph_ok && strcmp(c->cuda_graph, "off") != 0;
    if (T->cuda)
        eff_trainer_log(T, "step: %s\n", m->use_graph ? "captured in a CUDA graph after one eager step, then replayed"
                                                      : "eager (train.cuda_graph off, or train.accum > 1)");
    EFF_CHECK(T->cuda || strcmp(c->gpu_augment, "on") != 0, "data.gpu_augment = on needs the CUDA backend (this run "
              "uses %s)\nHINT: set data.gpu_augment = auto", T->ctx.be->name);
    if (!T->cuda || !strcmp(c->gpu_augment, "off")) return;
    EFF_CHECK(lc->aug.pipeline == EFF_PIPE_SEED || strcmp(c->gpu_augment, "on") != 0, "data.gpu_augment = on: only "
              "the cifar pipeline runs on the GPU\nHINT: set data.gpu_augment = auto (the imagenet pipeline then runs "
              "in the CPU loader)");
    if (lc->aug.pipeline != EFF_PIPE_SEED) {
        eff_trainer_log(T, "data: augmented in the CPU loader (the imagenet pipeline has no GPU version)\n");
        return;
    }
#ifdef EFFNET_HAVE_CUDA
    /* the loader's sampler and labels; the kernel draws the same (seed, epoch, index) parameters */
    lc->indices_only = 1;
    T->gaug = eff_gpu_aug_create(&lc->aug, T->train.images, T->train.n, T->train.height, T->train.width,
                                 eff_cuda_stream(T->ctx.be));
    eff_trainer_log(T, "data: %lld train images resident on the GPU (%.1f MiB uint8), augmented there\n",
                    (long long)T->train.n, (double)T->train.n * T->train.height * T->train.width * 3 / 1048576.0);
#else
    (void)lc;
#endif
}

static void open_loaders(EffTrainer *T) {
    const EffConfig *c = &T->cfg;
    if (T->st.step_in_epoch > 0) { /* a checkpoint taken right after an epoch's last step */
        eff_sampler probe;
        eff_sampler_init(&probe, T->train.n, T->rank, T->world, (int)(c->batch * c->accum), T->ctx.seed, 1, 1);
        if (T->st.step_in_epoch >= probe.steps_per_epoch) { T->st.epoch++; T->st.step_in_epoch = 0; }
        eff_sampler_free(&probe);
    }
    eff_loader_config lc = {.rank = T->rank, .world = T->world, .batch = (int)(c->batch * c->accum), .train = 1,
                            .seed = T->ctx.seed, .start_epoch = T->st.epoch - 1, .start_step = T->st.step_in_epoch,
                            .threads = (int)c->loader_threads, .no_augment = !c->augment};
    char what[512];
    eff_data_aug_config(c, &T->train, T->R, &lc.aug, what, sizeof what);
    eff_trainer_log(T, "data: pipeline %s\n", what);
    choose_step_mode(T, &lc);
    T->tl = eff_loader_open(&T->train, &lc);
    T->steps_per_epoch = eff_loader_steps_per_epoch(T->tl);
    eff_loader_config ec = lc;
    ec.indices_only = 0;
    ec.batch = (int)c->batch;
    ec.train = 0;
    ec.start_epoch = 0;
    ec.start_step = 0;
    T->el = eff_loader_open(&T->test, &ec);
    T->eval_steps = eff_loader_steps_per_epoch(T->el);
    T->total_steps = T->steps_per_epoch * c->epochs;
    if (c->max_steps > 0 && c->max_steps < T->total_steps) T->total_steps = c->max_steps;
    eff_trainer_log(T, "data: %lld train / %lld test images, %lld steps per epoch, %lld steps planned; model %zu "
                    "params\n", (long long)T->train.n, (long long)T->test.n, (long long)T->steps_per_epoch,
                    (long long)T->total_steps, (size_t)T->ctx.model.ptab.total);
}

/* A SIGTERM/SIGUSR1/SIGINT that arrived during start-up (train/signals.h
 * keeps it): every rank learns of it here, and the job exits 75 before its
 * first step, without writing, so the previous last.h5 stays as it was. */
static void stop_if_signalled(EffTrainer *T) {
    int sig = eff_signals_caught(T->signals);
    eff_mpi_allreduce(T->mpi, &sig, 1, MPI_INT, MPI_MAX, "start-up signal all-reduce");
    if (!sig) return;
    eff_trainer_log(T, "signal received during start-up (%s on at least one rank): exiting %d before the first step; "
                    "nothing written, so %s/last.h5 is as it was\n", eff_signal_name(sig), EFF_EXIT_REQUEUE,
                    T->cfg.output_dir);
    T->exit_code = EFF_EXIT_REQUEUE;
    T->finished = 1;
}

/* output.trace: a bucket's all-reduce as an async span, start to completion. */
static void trace_bucket(void *arg, int bucket, int done) {
    eff_trace_async((EffTrace *)arg, "comm", "gradient bucket all-reduce", bucket, done ? 'e' : 'b');
}

/* With the directory lock held, a checkpoint's temporary file there
 * (NAME.h5.tmp.PID, checkpoint.c) can only be left by a job that died while
 * writing it: remove it, and say so. */
static void remove_stale_temporaries(EffTrainer *T) {
    const char *dir = T->cfg.output_dir;
    DIR *d = opendir(dir);
    EFF_CHECK(d, "cannot list output.dir '%s': %s", dir, strerror(errno));
    for (struct dirent *e; (e = readdir(d));) {
        const char *t = strstr(e->d_name, ".h5.tmp.");
        if (!t || strspn(t + 8, "0123456789") != strlen(t + 8) || !t[8]) continue;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) == 0)
            eff_trainer_log(T, "output: removed %s, a checkpoint a job did not finish writing (it died; the "
                            "checkpoint it was replacing is intact)\n", path);
        else
            eff_trainer_log(T, "output: warning: cannot remove the unfinished checkpoint %s: %s\n", path,
                            strerror(errno));
    }
    closedir(d);
}

/* Rank 0 takes OUTPUT_DIR/effnet.lock before anything is written there
 * (train/dirlock.h); a job that cannot ends, naming the holder. */
static void lock_output(EffTrainer *T) {
    const EffConfig *c = &T->cfg;
    T->dir_lock = -1;
    int rc = 0;
    char holder[1400] = "";
    if (T->rank == 0 && c->lock) {
        EFF_CHECK(eff_mkdir_p(c->output_dir) == 0, "cannot create output.dir '%s': %s", c->output_dir, strerror(errno));
        rc = eff_dirlock_acquire(c->output_dir, 0, holder, sizeof holder);
        if (rc == -1 && c->lock_wait_s > 0) {
            eff_trainer_log(T, "output: %s; waiting up to %.0f s (output.lock_wait_s) for it to end\n", holder,
                            c->lock_wait_s);
            rc = eff_dirlock_acquire(c->output_dir, c->lock_wait_s, holder, sizeof holder);
        }
        EFF_CHECK(rc != -1, "output.dir '%s' is in use by another job: %s\nHINT: wait for that job to end, or give "
                  "this one another output.dir; a lock left by a job that died is released with it, so it never "
                  "blocks", c->output_dir, holder);
        EFF_CHECK(rc != -3, "%s\nHINT: check that output.dir is writable", holder);
        if (rc == -2) eff_trainer_log(T, "output: warning: %s; running without the directory lock (set output.lock = "
                                      "false to silence this)\n", holder);
        T->dir_lock = rc >= 0 ? rc : -1;
        if (rc >= 0) remove_stale_temporaries(T);
    }
    eff_mpi_barrier(T->mpi, "output directory lock barrier");
}

void eff_trainer_setup(EffTrainer *T, const char *resume_arg) {
    EffConfig *c = &T->cfg;
    T->mpi = eff_mpi_create(MPI_COMM_WORLD, c->comm_timeout);
    T->config_ini = eff_config_to_ini(c);
    lock_output(T);
    /* Every rank must run the same config (nodes may see different files). */
    unsigned long long h = eff_fnv1a(T->config_ini, strlen(T->config_ini)), h0 = h;
    eff_mpi_bcast(T->mpi, &h0, 1, MPI_UNSIGNED_LONG_LONG, 0, "config hash broadcast");
    EFF_CHECK(h == h0, "rank %d: config differs from rank 0's\nHINT: give every rank the same --config file and --set "
              "options", T->rank);
    gather_hosts(T);
    EffModelSpec spec;
    eff_model_spec_config(c->model, c->variant, c->stochastic_depth, &spec); /* model.name, .variant, .stochastic_depth */
    eff_model_spec_set_stem_stride(&spec, c->stem_stride);
    T->R = c->resolution ? (int)c->resolution : spec.resolution;
    select_backend(T);
    choose_threads(T);
    T->ctx.seed = (uint64_t)c->seed;
    load_split(T, "train", &T->train, c->train_subset);
    load_split(T, "test", &T->test, c->test_subset);
    if (c->setup_sleep_ms) {
        eff_trainer_log(T, "setup: sleeping %ld ms (debug.setup_sleep_ms)\n", c->setup_sleep_ms);
        nanosleep(&(struct timespec){c->setup_sleep_ms / 1000, (c->setup_sleep_ms % 1000) * 1000000L}, NULL);
    }
    if (!c->classes) log_classes(T);
    T->cfg.classes = eff_data_classes(c, &T->train);
    EFF_CHECK(T->test.num_classes == T->train.num_classes, "data: the test split has %d classes, the train split %d\n"
              "HINT: convert both splits together", T->test.num_classes, T->train.num_classes);
    create_model(T, &spec, resume_arg); /* a resume that cannot keep the global batch fails here, before any write */
    open_output(T, resume_arg != NULL);
    eff_trainer_log(T, "effnet %s (%s): %s (%s%s) at %dx%d, %d rank(s) x batch %ld x accum %ld = global batch %ld, "
                    "backend %s (%s), hosts %.300s\n", EFFNET_VERSION, EFFNET_GIT_COMMIT, spec.name,
                    eff_variant_name(spec.variant), spec.stem_stride == 1 ? ", stem stride 1" : "", T->R, T->R, T->world, c->batch,
                    c->accum, (long)T->world * c->batch * c->accum, T->ctx.be->name,
                    eff_precision_name(T->ctx.be->precision), T->hosts);
    if (T->world > 1 && !T->cuda) eff_trainer_log(T, "mpi: MPI_Iallreduce algorithm: %s\n", T->iallreduce);
    start_identical(T);
    if (T->trace && T->xchg->ops->on_event) T->xchg->ops->on_event(T->xchg, trace_bucket, T->trace);
    if (T->world > 1)
        T->straggler_rows = eff_malloc(sizeof(double) * (EFF_PHASES + 3) * (size_t)T->world, "straggler report");
    open_loaders(T);
    stop_if_signalled(T);
    T->window_t0 = eff_time();
}
