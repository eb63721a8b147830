/* cmd_train.c: `effnet train` -- MPI data-parallel training on the CPU or
 * the CUDA backend (train.backend).
 *
 * Every rank holds the whole model, trains on its slice of each global batch
 * (rank-aware sampler), and gradients are averaged over the contiguous
 * gradient buffer -- CPU: one MPI_Allreduce; CUDA: NCCL buckets launched as
 * backward finishes them (src/comm/comm_nccl.c) -- so every rank takes the
 * identical optimizer step. fp16 uses dynamic loss scaling (src/amp.h).
 * Rank 0 logs, writes metrics.jsonl and checkpoints. Exit codes:
 *   0 done; 1 error (any rank: MPI_Abort ends all); 3 non-finite loss or
 *   gradient; 75 checkpointed after SIGTERM/SIGUSR1/SIGINT, please requeue. */
#define _POSIX_C_SOURCE 200809L
#include "amp.h"
#include "checkpoint.h"
#include "comm/comm_nccl.h"
#include "common.h"
#include "config.h"
#include "context.h"
#include "data/loader.h"
#include "data/sampler.h"
#include "data/shard.h"
#include "evaluate.h"
#include "rng.h"
#ifdef EFFNET_HAVE_CUDA
#include "augment_cuda.h"
#endif

#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef EFFNET_VERSION
#define EFFNET_VERSION "unknown"
#endif
#ifndef EFFNET_GIT_COMMIT
#define EFFNET_GIT_COMMIT "unknown"
#endif

enum { EXIT_NONFINITE = 3, EXIT_REQUEUE = 75 };

/* The one piece of process-global state: a signal handler can only reach a
 * global. It is read once per step and agreed on by all ranks. */
static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

static void mpi_abort_hook(int code) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin) MPI_Abort(MPI_COMM_WORLD, code);
}

typedef struct Trainer {
    EffContext ctx;
    EffBackend *cuda;   /* the CUDA backend instance, when selected */
    EffComm *comm;      /* NCCL gradient all-reduce (CUDA backend, world > 1) */
    EffLossScaler scaler;
    /* data.gpu_augment: the train split resident on the GPU, augmented there
     * (the loader then only supplies indices and labels) */
    struct EffGpuAugment *gaug;
    EffConfig cfg;
    int rank, world, R;
    char *config_ini;
    eff_dataset train, test;
    eff_loader *tl, *el;
    int64_t steps_per_epoch, eval_steps, total_steps;
    EffTrainState st;
    FILE *metrics;
    char path[1200];
} Trainer;

static void log0(const Trainer *T, const char *fmt, ...) EFF_PRINTF(2, 3);
static void log0(const Trainer *T, const char *fmt, ...) {
    if (T->rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static double lr_at(const EffConfig *c, int64_t step, int64_t total) {
    if (!strcmp(c->schedule, "constant")) return c->lr;
    if (step < c->warmup_steps) return c->lr * (double)(step + 1) / (double)c->warmup_steps;
    double span = (double)(total - c->warmup_steps), t = span > 0 ? (double)(step - c->warmup_steps) / span : 1.0;
    if (t > 1) t = 1;
    return c->min_lr + (c->lr - c->min_lr) * 0.5 * (1.0 + cos(3.14159265358979323846 * t));
}

static uint64_t fnv1a(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* Every rank must hold bit-identical parameters; checked at start-up and
 * before every checkpoint. */
static void check_identical(Trainer *T, const char *when) {
    EffModel *m = &T->ctx.model;
    size_t bytes = m->ptab.total * sizeof(float);
    float *host = eff_malloc(bytes, "parameter copy");
    m->be->download(m->be, host, m->param, bytes);
    unsigned long long h = fnv1a(host, bytes), *all = eff_malloc(sizeof(unsigned long long) * (size_t)T->world, "hashes");
    eff_free(host);
    MPI_CHECK(MPI_Allgather(&h, 1, MPI_UNSIGNED_LONG_LONG, all, 1, MPI_UNSIGNED_LONG_LONG, MPI_COMM_WORLD));
    for (int r = 1; r < T->world; r++)
        EFF_CHECK(all[r] == all[0], "%s: parameters on rank %d differ from rank 0 (hash %016llx vs %016llx)", when, r, all[r], all[0]);
    if (T->world > 1) log0(T, "%s: parameters identical on all %d ranks (hash %016llx)\n", when, T->world, all[0]);
    eff_free(all);
}

/* BN running statistics are averaged across ranks after every step (one small
 * all-reduce next to the gradients'), so every rank holds the same running
 * stats at all times: evaluation and checkpoints see the cross-rank average,
 * and a resumed run continues from exactly the state an uninterrupted run has. */
static void average_bn_stats(Trainer *T) {
    EffModel *m = &T->ctx.model;
    if (T->world == 1) return;
    size_t n = m->btab.total;
    if (T->comm) {
        eff_comm_allreduce_avg(T->comm, m->bufs, n);
        return;
    }
    float *host = eff_malloc(n * sizeof(float), "BN statistics");
    m->be->download(m->be, host, m->bufs, n * sizeof(float));
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, host, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    for (size_t i = 0; i < n; i++) host[i] /= (float)T->world;
    m->be->upload(m->be, m->bufs, host, n * sizeof(float));
    eff_free(host);
}

/* MPI_Bcast from rank 0 of a backend buffer (staged through the host, so it
 * works for device memory without a CUDA-aware MPI). */
static void bcast_floats(Trainer *T, float *buf, size_t n) {
    const EffBackend *be = T->ctx.be;
    float *host = eff_malloc(n * sizeof(float), "broadcast staging");
    be->download(be, host, buf, n * sizeof(float));
    MPI_CHECK(MPI_Bcast(host, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD));
    be->upload(be, buf, host, n * sizeof(float));
    be->synchronize(be);
    eff_free(host);
}

/* train.backend: auto picks cuda when this build has CUDA and EVERY rank sees
 * a GPU (agreed with an all-reduce, so ranks never mix backends). */
static void select_backend(Trainer *T) {
    const EffConfig *c = &T->cfg;
    int have = eff_cuda_available() && eff_cuda_device_count() > 0, all = have;
    MPI_CHECK(MPI_Allreduce(&have, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
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

static void on_grad_ready(void *arg, size_t first) { eff_comm_grad_ready((EffComm *)arg, first); }
static void on_step_tail(void *arg) { eff_comm_finish((EffComm *)arg); }
static void on_step_wait(void *arg) { eff_comm_wait((EffComm *)arg); }

static void save_checkpoint(Trainer *T, const char *name) {
    check_identical(T, "checkpoint");
    if (T->rank != 0) return;
    char path[1300], mpi_ver[MPI_MAX_LIBRARY_VERSION_STRING], world[16];
    int len = 0;
    MPI_Get_library_version(mpi_ver, &len);
    char *nl = strchr(mpi_ver, '\n');
    if (nl) *nl = '\0';
    snprintf(world, sizeof world, "%d", T->world);
    const char *keys[] = {"effnet_version", "git_commit", "world_size", "mpi_library", "backend"};
    const char *vals[] = {EFFNET_VERSION, EFFNET_GIT_COMMIT, world, mpi_ver, T->ctx.be->name};
    snprintf(path, sizeof path, "%s/%s", T->cfg.output_dir, name);
    T->st.loss_scale = T->scaler.enabled ? T->scaler.scale : 0.0; /* fp16: the scaler resumes where it was */
    T->st.loss_scale_good_steps = T->scaler.enabled ? T->scaler.good_steps : 0;
    T->st.loss_scale_skipped = T->scaler.enabled ? T->scaler.skipped : 0;
    eff_checkpoint_save(path, &T->ctx.model, &T->st, T->cfg.optimizer, T->R, T->config_ini, keys, vals, 5);
    printf("checkpoint: wrote %s (global step %lld, resumes at epoch %lld step %lld)\n", path, (long long)T->st.global_step,
           (long long)T->st.epoch, (long long)T->st.step_in_epoch);
    fflush(stdout);
}

/* Keep only the newest `keep` epoch-NNNN.h5 files (0: all). */
static void prune_epoch_checkpoints(Trainer *T, int64_t epoch) {
    if (T->rank != 0 || T->cfg.keep <= 0 || T->cfg.keep_every <= 0) return;
    int64_t old = epoch - T->cfg.keep * T->cfg.keep_every;
    if (old < 1) return;
    char path[1300];
    snprintf(path, sizeof path, "%s/epoch-%04lld.h5", T->cfg.output_dir, (long long)old);
    if (unlink(path) == 0) printf("checkpoint: removed %s (output.keep = %ld)\n", path, T->cfg.keep);
}

static void metrics_line(Trainer *T, const char *fmt, ...) EFF_PRINTF(2, 3);
static void metrics_line(Trainer *T, const char *fmt, ...) {
    if (T->rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    EFF_CHECK(vfprintf(T->metrics, fmt, ap) >= 0 && fflush(T->metrics) == 0, "writing %s/metrics.jsonl failed: %s",
              T->cfg.output_dir, strerror(errno));
    va_end(ap);
}

static double evaluate(Trainer *T, int64_t epoch, double *loss_out) {
    EffEvalSums s = {0, 0, 0};
    double t0 = eff_time();
    eff_evaluate(&T->ctx.model, T->el, T->eval_steps, &s);
    double v[3] = {s.loss_sum, s.correct, s.total};
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, v, 3, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
    double loss = v[0] / v[2], acc = 100.0 * v[1] / v[2];
    log0(T, "\nTest set: Average loss: %.4f, Accuracy: %.0f/%.0f (%.2f%%)\n\n", loss, v[1], v[2], acc);
    metrics_line(T, "{\"type\": \"eval\", \"epoch\": %lld, \"step\": %lld, \"loss\": %.6f, \"accuracy\": %.4f, "
                    "\"correct\": %.0f, \"total\": %.0f, \"eval_s\": %.3f}\n",
                 (long long)epoch, (long long)T->st.global_step, loss, acc, v[1], v[2], eff_time() - t0);
    *loss_out = loss;
    return acc;
}

static void load_split(Trainer *T, const char *split, eff_dataset *ds, long subset) {
    char index[1100], err[1024];
    snprintf(index, sizeof index, "%s/%s", T->cfg.data_dir, EFF_SHARD_INDEX_NAME);
    EFF_CHECK(eff_dataset_load(index, split, 0, ds, err, sizeof err) == 0, "data: %s\nHINT: convert CIFAR-10 with "
              "'cifar10-to-h5 --input DIR --output %s --shards N' or set data.dir", err, T->cfg.data_dir);
    if (subset > 0 && subset < ds->n) ds->n = subset;
}

static int parse_args(Trainer *T, int argc, char **argv, const char **resume) {
    const char *config = NULL;
    char err[1400];
    eff_config_defaults(&T->cfg);
    for (int a = 2; a < argc; a++)
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
            if (T->rank == 0) {
                printf("usage: effnet train --config FILE [--set section.key=value ...] [--resume [FILE]]\n\n"
                       "  --resume alone continues from OUTPUT_DIR/last.h5.\n"
                       "exit codes: 0 done, 1 error, 3 non-finite loss/gradient, 75 checkpointed on a signal (requeue)\n\n");
                eff_config_help(stdout);
            }
            return 1;
        }
    for (int a = 2; a < argc; a++) {
        if (!strcmp(argv[a], "--config")) {
            EFF_CHECK(a + 1 < argc, "--config needs a file");
            config = argv[++a];
        } else if (!strcmp(argv[a], "--set")) {
            a++; /* applied after the file, below */
            EFF_CHECK(a < argc, "--set needs section.key=value");
        } else if (!strcmp(argv[a], "--resume")) {
            *resume = (a + 1 < argc && strncmp(argv[a + 1], "--", 2) != 0) ? argv[++a] : "";
        } else {
            EFF_FATAL("effnet train: unknown option '%s' (see --help)", argv[a]);
        }
    }
    if (config) EFF_CHECK(eff_config_load_file(&T->cfg, config, err, sizeof err), "%s", err);
    for (int a = 2; a < argc; a++)
        if (!strcmp(argv[a], "--set")) EFF_CHECK(eff_config_set(&T->cfg, argv[++a], err, sizeof err), "%s", err);
        else if (!strcmp(argv[a], "--config")) a++;
    EFF_CHECK(eff_config_validate(&T->cfg, err, sizeof err), "config: %s", err);
    return 0;
}

int cmd_train(int argc, char **argv) {
    int provided = 0;
    MPI_CHECK(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided));
    eff_set_abort_hook(mpi_abort_hook);
    MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    Trainer T;
    memset(&T, 0, sizeof T);
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &T.rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &T.world));
    const char *resume = NULL;
    if (parse_args(&T, argc, argv, &resume)) {
        MPI_Finalize();
        return 0;
    }
    EffConfig *c = &T.cfg;
    T.config_ini = eff_config_to_ini(c);
    /* Every rank must run the same config (nodes may see different files). */
    unsigned long long h = fnv1a(T.config_ini, strlen(T.config_ini)), h0 = h;
    MPI_CHECK(MPI_Bcast(&h0, 1, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD));
    EFF_CHECK(h == h0, "rank %d: config differs from rank 0's\nHINT: give every rank the same --config file and --set options", T.rank);

    EffModelSpec spec;
    EFF_CHECK(eff_model_spec(c->model, &spec), "model.name '%s' unknown", c->model);
    T.R = c->resolution ? (int)c->resolution : spec.resolution;
    select_backend(&T);
    T.ctx.threads = (int)c->threads;
    T.ctx.seed = (uint64_t)c->seed;
    eff_set_threads(T.ctx.threads);
    if (T.rank == 0) {
        EFF_CHECK(eff_mkdir_p(c->output_dir) == 0, "cannot create output.dir '%s': %s", c->output_dir, strerror(errno));
        snprintf(T.path, sizeof T.path, "%s/metrics.jsonl", c->output_dir);
        T.metrics = eff_fopen(T.path, resume ? "a" : "w");
    }
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));

    char host[256] = "?";
    gethostname(host, sizeof host - 1);
    log0(&T, "effnet %s (%s): %s at %dx%d, %d rank(s) x batch %ld x accum %ld = global batch %ld, backend %s (%s), host %s\n",
         EFFNET_VERSION, EFFNET_GIT_COMMIT, spec.name, T.R, T.R, T.world, c->batch, c->accum,
         (long)T.world * c->batch * c->accum, T.ctx.be->name, eff_precision_name(T.ctx.be->precision), host);

    load_split(&T, "train", &T.train, c->train_subset);
    load_split(&T, "test", &T.test, c->test_subset);
    EFF_CHECK(T.train.num_classes == c->classes, "data has %d classes, model.classes is %ld", T.train.num_classes, c->classes);

    EffModel *m = &T.ctx.model;
    eff_model_create(m, T.ctx.be, &spec, (int)c->classes);
    if (c->dropout >= 0) eff_model_set_dropout(m, c->dropout);
    m->label_smoothing = (float)c->label_smoothing;
    eff_model_init_weights(m, T.ctx.seed);
    eff_model_alloc_acts(m, (int)c->batch, T.R);
    T.st = (EffTrainState){.epoch = 1, .step_in_epoch = 0, .global_step = 0, .best_epoch = 0, .best_acc = -1,
                           .last_acc = -1, .last_loss = NAN, .seed = T.ctx.seed, .world_size = T.world, .lr = c->lr};
    if (resume) {
        char path[1300];
        if (!resume[0]) snprintf(path, sizeof path, "%s/last.h5", c->output_dir);
        else snprintf(path, sizeof path, "%s", resume);
        eff_checkpoint_load(path, m, 1, &T.st, NULL);
        EFF_CHECK(T.st.world_size == T.world, "checkpoint '%s' was written with %d ranks, this run has %d\nHINT: "
                  "bit-exact resume needs the same world size; start a new run to change it", path, T.st.world_size, T.world);
        EFF_CHECK(!T.st.optimizer[0] || !strcmp(T.st.optimizer, c->optimizer), "checkpoint '%s' was written with "
                  "optimizer '%s', config optim.name is '%s'\nHINT: resume with the same optimizer", path, T.st.optimizer, c->optimizer);
        EFF_CHECK(T.st.seed == T.ctx.seed, "checkpoint '%s' has seed %llu, config train.seed is %ld", path,
                  (unsigned long long)T.st.seed, c->seed);
        log0(&T, "resume: %s at epoch %lld, step %lld of the epoch, global step %lld\n", path, (long long)T.st.epoch,
             (long long)T.st.step_in_epoch, (long long)T.st.global_step);
        if (T.scaler.enabled && T.st.loss_scale > 0) {
            T.scaler.scale = T.st.loss_scale;
            T.scaler.good_steps = (long)T.st.loss_scale_good_steps;
            T.scaler.skipped = (long)T.st.loss_scale_skipped;
            log0(&T, "resume: fp16 loss scale %g (%ld finite steps since its last change, %ld skipped so far)\n",
                 T.scaler.scale, T.scaler.good_steps, T.scaler.skipped);
        } else if (T.scaler.enabled) {
            log0(&T, "resume: the checkpoint has no fp16 loss-scaler state (written by a bf16/fp32/CPU run or an older "
                     "effnet): the scale starts at %g\n", T.scaler.scale);
        }
    }
    /* Identical start on every rank: broadcast rank 0's state, then verify. */
    bcast_floats(&T, m->param, m->ptab.total);
    bcast_floats(&T, m->bufs, m->btab.total);
    check_identical(&T, "start");
    if (T.cuda && T.world > 1) {
        T.comm = eff_comm_create(MPI_COMM_WORLD, T.ctx.be, m->grad, m->ptab.total, c->bucket_mb, c->comm_timeout);
        log0(&T, "comm: NCCL all-reduce (ncclAvg) in %d buckets of ~%.1f MiB, overlapped with backward; watchdog %.0f s\n",
             eff_comm_buckets(T.comm), c->bucket_mb, c->comm_timeout);
    }

    if (T.st.step_in_epoch > 0) { /* a checkpoint taken right after an epoch's last step */
        eff_sampler probe;
        eff_sampler_init(&probe, T.train.n, T.rank, T.world, (int)(c->batch * c->accum), T.ctx.seed, 1, 1);
        if (T.st.step_in_epoch >= probe.steps_per_epoch) { T.st.epoch++; T.st.step_in_epoch = 0; }
        eff_sampler_free(&probe);
    }
    eff_loader_config lc = {.rank = T.rank, .world = T.world, .batch = (int)(c->batch * c->accum), .train = 1,
                            .seed = T.ctx.seed, .start_epoch = T.st.epoch - 1, .start_step = T.st.step_in_epoch,
                            .threads = (int)c->loader_threads, .no_augment = !c->augment};
    eff_aug_config_default(&lc.aug, T.R);
    const int graph_ok = T.cuda && c->accum == 1;
    EFF_CHECK(graph_ok || strcmp(c->cuda_graph, "on") != 0, "train.cuda_graph = on needs the CUDA backend and "
              "train.accum = 1 (this run: backend %s, accum %ld)\nHINT: set train.cuda_graph = auto", T.ctx.be->name,
              c->accum);
    m->use_graph = graph_ok && strcmp(c->cuda_graph, "off") != 0;
    if (T.cuda)
        log0(&T, "step: %s\n", m->use_graph ? "captured in a CUDA graph after one eager step, then replayed"
                                              : "eager (train.cuda_graph off, or train.accum > 1)");
    const int gpu_aug = T.cuda && strcmp(c->gpu_augment, "off") != 0;
    EFF_CHECK(T.cuda || strcmp(c->gpu_augment, "on") != 0, "data.gpu_augment = on needs the CUDA backend (this run uses "
              "%s)\nHINT: set data.gpu_augment = auto", T.ctx.be->name);
    if (gpu_aug) {
#ifdef EFFNET_HAVE_CUDA
        /* the loader's sampler and labels; the kernel draws the same (seed, epoch, index) parameters */
        lc.indices_only = 1;
        T.gaug = eff_gpu_aug_create(&lc.aug, T.train.images, T.train.n, T.train.height, T.train.width,
                                    eff_cuda_stream(T.ctx.be));
        log0(&T, "data: %lld train images resident on the GPU (%.1f MiB uint8), augmented there\n",
             (long long)T.train.n, (double)T.train.n * T.train.height * T.train.width * 3 / 1048576.0);
#endif
    }
    T.tl = eff_loader_open(&T.train, &lc);
    T.steps_per_epoch = eff_loader_steps_per_epoch(T.tl);
    eff_loader_config ec = lc;
    ec.indices_only = 0;
    ec.batch = (int)c->batch;
    ec.train = 0;
    ec.start_epoch = 0;
    ec.start_step = 0;
    T.el = eff_loader_open(&T.test, &ec);
    T.eval_steps = eff_loader_steps_per_epoch(T.el);
    T.total_steps = T.steps_per_epoch * c->epochs;
    if (c->max_steps > 0 && c->max_steps < T.total_steps) T.total_steps = c->max_steps;
    log0(&T, "data: %lld train / %lld test images, %lld steps per epoch, %lld steps planned; model %zu params\n",
         (long long)T.train.n, (long long)T.test.n, (long long)T.steps_per_epoch, (long long)T.total_steps,
         (size_t)m->ptab.total);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    EFF_CHECK(sigaction(SIGTERM, &sa, NULL) == 0 && sigaction(SIGUSR1, &sa, NULL) == 0 && sigaction(SIGINT, &sa, NULL) == 0,
              "installing signal handlers failed: %s", strerror(errno));

    const size_t img = (size_t)T.R * T.R * 3;
    const int B = (int)c->batch;
    int exit_code = 0, finished = 0;
    double window_t0 = eff_time(), window_loss = 0, epoch_loss = 0;
    /* Step-time split for scaling studies: compute (data wait + forward +
     * backward), wait (barrier before the all-reduce: load imbalance, only
     * with output.comm_timing), all-reduce (gradients, BN stats, loss/flags),
     * optimizer. Skips the first step (warm-up). */
    double t_compute = 0, t_wait = 0, t_allreduce = 0, t_optim = 0;
    int64_t timed_steps = 0, steps_run = 0;
    const double allreduce_bytes = T.world > 1 ? (double)(m->ptab.total + m->btab.total) * sizeof(float) + 2 * sizeof(double) : 2 * sizeof(double);
    int64_t window_steps = 0, epoch_samples = 0;
    while (!finished && T.st.epoch <= c->epochs) {
        const int64_t epoch = T.st.epoch;
        while (T.st.step_in_epoch < T.steps_per_epoch) {
            if (c->max_steps > 0 && T.st.global_step >= c->max_steps) { finished = 1; break; }
            const eff_batch *b = eff_loader_next(T.tl);
            EFF_CHECK(b->epoch == epoch - 1 && b->step == T.st.step_in_epoch, "loader out of step: got (%lld, %lld), want (%lld, %lld)",
                      (long long)b->epoch, (long long)b->step, (long long)epoch - 1, (long long)T.st.step_in_epoch);
            const int timed = steps_run++ > 0;
            double t0 = eff_time();
            if (!m->use_graph) eff_model_zero_grad(m); /* a (graph) train step zeroes its own */
            double local_loss = 0;
            /* NCCL averages (ncclAvg); MPI sums, so its ranks pre-divide by the world size */
            const double loss_scale = eff_scaler_scale(&T.scaler), divisor = (double)c->accum * (T.comm ? 1 : T.world);
            if (T.comm) eff_comm_begin(T.comm, (long)T.st.global_step + 1);
            const EffStepHooks hooks = {.tail = on_step_tail, .wait = on_step_wait, .arg = T.comm};
            for (int a = 0; a < c->accum; a++) {
                /* dropout key: (seed, step, global micro-batch index), so 2 ranks x 1 and
                 * 1 rank x 2 micro-batches draw the same masks */
                uint64_t key = eff_key3(T.ctx.seed, (uint64_t)T.st.global_step, (uint64_t)(T.rank * c->accum + a));
                if (T.gaug) {
#ifdef EFFNET_HAVE_CUDA
                    eff_gpu_aug_batch(T.gaug, c->augment ? 1 : 0, b->index + (size_t)a * B, NULL, B, T.ctx.seed,
                                      (uint64_t)(epoch - 1), m->x, NULL);
#endif
                    m->be->upload(m->be, m->labels, b->y + (size_t)a * B, (size_t)B * sizeof(int32_t));
                } else {
                    eff_model_set_input(m, b->x + (size_t)a * B * img, b->y + (size_t)a * B);
                }
                /* on the last micro-batch, buckets start as soon as backward finishes them */
                m->grad_ready = T.comm && a == c->accum - 1 ? on_grad_ready : NULL;
                m->grad_ready_arg = T.comm;
                float loss;
                if (m->use_graph) { /* accum is 1: zero, forward, backward and all-reduce as one replayed step */
                    loss = eff_model_train_step(m, key, (float)(loss_scale / divisor), T.comm ? &hooks : NULL);
                } else {
                    loss = eff_model_forward_resident(m, 1, 1, key);
                    eff_model_backward(m, (float)(loss_scale / divisor));
                }
                if (c->nan_at_step && T.st.global_step + 1 == c->nan_at_step) loss = NAN;
                local_loss += loss;
            }
            m->grad_ready = NULL;
            if (c->sleep_ms) nanosleep(&(struct timespec){c->sleep_ms / 1000, (c->sleep_ms % 1000) * 1000000L}, NULL);
            double t1 = eff_time();
            if (c->comm_timing) MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
            double t2 = eff_time();
            if (T.comm) {
                if (!m->use_graph) eff_comm_finish(T.comm); /* else the step's tail did */
                eff_comm_wait(T.comm);
            } else if (T.world > 1) { /* with one rank the sum is the identity: skip the 28 MB copy Open MPI makes */
                MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, m->grad, (int)m->ptab.total, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
            }
            average_bn_stats(&T);
            double v[2] = {local_loss, stop_signal ? 1.0 : 0.0};
            MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
            double t3 = eff_time(); /* the finiteness check and the step count as "optimizer" */
            const double step_loss = v[0] / (double)(c->accum * T.world);
            double gnorm2 = m->be->sumsq(m->be, m->grad, m->ptab.total);
            int do_step = 1;
            if (T.scaler.enabled && isfinite(step_loss)) {
                /* fp16: skip the step on Inf/NaN gradients, as GradScaler does; the
                 * flag is all-reduced so every rank decides the same */
                int finite = isfinite(gnorm2) ? 1 : 0;
                MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &finite, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
                const double used = T.scaler.scale;
                if (!eff_scaler_update(&T.scaler, finite)) {
                    log0(&T, "fp16: non-finite gradients at global step %lld with loss scale %g: step skipped, scale now %g\n",
                         (long long)T.st.global_step + 1, used, T.scaler.scale);
                    do_step = 0;
                    gnorm2 = 0;
                } else {
                    m->be->scale_inplace(m->be, m->grad, m->ptab.total, (float)(1.0 / used));
                    gnorm2 /= used * used;
                }
            }
            if (!isfinite(step_loss) || !isfinite(gnorm2)) {
                log0(&T, "effnet: error: non-finite %s at epoch %lld, global step %lld (loss %g, grad norm^2 %g); "
                         "stopping without writing a checkpoint, last.h5/best.h5 keep the last good weights\n",
                     isfinite(step_loss) ? "gradient" : "loss", (long long)epoch, (long long)T.st.global_step + 1, step_loss, gnorm2);
                exit_code = EXIT_NONFINITE;
                finished = 1;
                break;
            }
            const double lr = lr_at(c, T.st.global_step, T.total_steps);
            if (!do_step) { /* fp16 overflow: no optimizer step (the schedule still advances, as with GradScaler) */
            } else if (!strcmp(c->optimizer, "sgd")) eff_model_sgd_step(m, (float)lr, (float)c->momentum, (float)c->weight_decay, (int)c->nesterov);
            else eff_model_adam_step(m, (float)lr, (float)c->beta1, (float)c->beta2, (float)c->eps, (float)c->weight_decay,
                                     !strcmp(c->optimizer, "adamw"));
            if (timed) {
                double t4 = eff_time();
                t_compute += t1 - t0;
                t_wait += t2 - t1;
                t_allreduce += t3 - t2;
                t_optim += t4 - t3;
                timed_steps++;
            }
            T.st.global_step++;
            T.st.step_in_epoch++;
            T.st.lr = lr;
            window_steps++;
            window_loss += step_loss;
            epoch_loss += step_loss * (double)(T.world * B * c->accum);
            epoch_samples += T.world * B * c->accum;
            if (T.st.global_step % c->log_interval == 0 || T.st.step_in_epoch == T.steps_per_epoch) {
                double dt = eff_time() - window_t0, ips = (double)window_steps * T.world * B * c->accum / dt;
                log0(&T, "Train Epoch: %lld [%lld/%lld (%.0f%%)]\tAVG_Loss: %.6f\t%.1f img/s (%.1f per rank), step %.1f ms, lr %.3g\n",
                     (long long)epoch, (long long)(T.st.step_in_epoch * T.world * B * c->accum), (long long)T.train.n,
                     100.0 * (double)T.st.step_in_epoch / (double)T.steps_per_epoch, epoch_loss / (double)epoch_samples,
                     ips, ips / T.world, 1e3 * dt / (double)window_steps, lr);
                metrics_line(&T, "{\"type\": \"train\", \"epoch\": %lld, \"step\": %lld, \"loss\": %.6f, \"avg_loss\": %.6f, "
                                 "\"lr\": %.6g, \"grad_norm\": %.6g, \"img_per_s\": %.2f, \"img_per_s_per_rank\": %.2f, \"step_ms\": %.2f, \"ranks\": %d}\n",
                             (long long)epoch, (long long)T.st.global_step, window_loss / (double)window_steps,
                             epoch_loss / (double)epoch_samples, lr, sqrt(gnorm2), ips, ips / T.world, 1e3 * dt / (double)window_steps, T.world);
                window_t0 = eff_time();
                window_steps = 0;
                window_loss = 0;
            }
            if (v[1] > 0) {
                log0(&T, "signal received: checkpointing at epoch %lld, global step %lld, then exiting %d (requeue)\n",
                     (long long)epoch, (long long)T.st.global_step, EXIT_REQUEUE);
                save_checkpoint(&T, "last.h5");
                exit_code = EXIT_REQUEUE;
                finished = 1;
                break;
            }
        }
        if (exit_code) break;
        const int epoch_done = T.st.step_in_epoch == T.steps_per_epoch;
        if (epoch_done) {
            T.st.epoch++;
            T.st.step_in_epoch = 0;
            epoch_loss = 0;
            epoch_samples = 0;
        }
        const int last = finished || T.st.epoch > c->epochs;
        if ((epoch_done && epoch % c->eval_interval == 0) || last) {
            double loss;
            double acc = evaluate(&T, epoch, &loss);
            T.st.last_acc = acc;
            T.st.last_loss = loss;
            if (acc > T.st.best_acc) {
                T.st.best_acc = acc;
                T.st.best_epoch = epoch;
                save_checkpoint(&T, "best.h5");
            }
        }
        if ((epoch_done && epoch % c->checkpoint_interval == 0) || last) {
            save_checkpoint(&T, "last.h5");
        }
        if (epoch_done && c->keep_every > 0 && epoch % c->keep_every == 0) {
            char name[64];
            snprintf(name, sizeof name, "epoch-%04lld.h5", (long long)epoch);
            save_checkpoint(&T, name);
            prune_epoch_checkpoints(&T, epoch);
        }
    }
    if (!exit_code)
        log0(&T, "Best Epoch: %lld   Best Accuracy: %.2f%%\n", (long long)T.st.best_epoch, T.st.best_acc);
    if (timed_steps > 0) {
        /* rank 0's view; img/s counts only the timed training steps */
        const double n = (double)timed_steps, gb = (double)T.world * c->batch * c->accum;
        const double step_s = (t_compute + t_wait + t_allreduce + t_optim) / n;
        log0(&T, "timing: %lld steps, %.1f ms/step = compute %.1f + wait %.1f + all-reduce %.1f + optimizer %.1f ms; "
                 "%.1f img/s (%.1f per rank); %.1f MB all-reduced per step\n",
             (long long)timed_steps, 1e3 * step_s, 1e3 * t_compute / n, 1e3 * t_wait / n, 1e3 * t_allreduce / n,
             1e3 * t_optim / n, gb / step_s, gb / step_s / T.world, allreduce_bytes / 1e6);
        if (m->use_graph && T.comm)
            log0(&T, "timing: CUDA graph: the gradient all-reduce runs inside each replay and is counted in compute; "
                     "the all-reduce figure is the BN statistics and loss reductions only\n");
        metrics_line(&T, "{\"type\": \"summary\", \"model\": \"%s\", \"resolution\": %d, \"ranks\": %d, \"threads_per_rank\": %ld, "
                         "\"batch_per_rank\": %ld, \"accum\": %ld, \"global_batch\": %.0f, \"steps\": %lld, \"step_ms\": %.3f, "
                         "\"compute_ms\": %.3f, \"wait_ms\": %.3f, \"allreduce_ms\": %.3f, \"optimizer_ms\": %.3f, "
                         "\"img_per_s\": %.3f, \"img_per_s_per_rank\": %.3f, \"allreduce_bytes_per_step\": %.0f, \"comm_timing\": %s, "
                         "\"cuda_graph\": %s}\n",
                     spec.name, T.R, T.world, c->threads, c->batch, c->accum, gb, (long long)timed_steps, 1e3 * step_s,
                     1e3 * t_compute / n, 1e3 * t_wait / n, 1e3 * t_allreduce / n, 1e3 * t_optim / n, gb / step_s,
                     gb / step_s / T.world, allreduce_bytes, c->comm_timing ? "true" : "false", m->use_graph ? "true" : "false");
    }
    eff_loader_close(T.tl);
    eff_loader_close(T.el);
#ifdef EFFNET_HAVE_CUDA
    eff_gpu_aug_destroy(T.gaug);
#endif
    eff_dataset_free(&T.train);
    eff_dataset_free(&T.test);
    eff_model_destroy(m);
    eff_comm_destroy(T.comm);
    eff_backend_cuda_destroy(T.cuda);
    eff_free(T.config_ini);
    if (T.metrics) eff_fclose(T.metrics, "metrics.jsonl");
    MPI_CHECK(MPI_Finalize());
    return exit_code;
}
