/* epoch.c: what `effnet train` does around the steps -- the seed's log lines
 * and metrics.jsonl, evaluation, best/last/keep checkpoints, the timing
 * summary and the teardown. Rank 0 logs and writes; collectives go through
 * the watchdog (T->mpi). */
#define _POSIX_C_SOURCE 200809L
#include "train/trainer.h"
#include "comm/exchange.h"
#include "train/dirlock.h"

#include "common.h"
#include "evaluate.h"
#ifdef EFFNET_HAVE_CUDA
#include "augment_cuda.h"
#endif

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>



static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* min, median, max of column col of rows[world][cols]; v: world doubles of scratch */
static void spread(const double *rows, int world, int cols, int col, double *v, double out[3]) {
    for (int r = 0; r < world; r++) v[r] = rows[r * cols + col];
    qsort(v, (size_t)world, sizeof v[0], cmp_double);
    out[0] = v[0];
    out[1] = world % 2 ? v[world / 2] : 0.5 * (v[world / 2 - 1] + v[world / 2]);
    out[2] = v[world - 1];
}

/* Rank 0's "ranks" row of metrics.jsonl: per phase, min/median/max over ranks
 * of ms per step, and the slowest rank (the most compute + data wait: the one
 * the others wait for in the reduction) with its host and its phases. */
static void write_straggler(EffTrainer *T, const double *rows, int cols, int slowest) {
    static const char *const name[] = {"data_wait_ms", "compute_ms", "comm_ms", "optimizer_ms", "step_ms"};
    cJSON *row = eff_json_object();
    eff_json_str(row, "type", "ranks");
    eff_json_int(row, "epoch", (long long)T->st.epoch);
    eff_json_int(row, "step", (long long)T->st.global_step);
    eff_json_int(row, "ranks", T->world);
    for (int c = 0; c < cols; c++) {
        double s[3];
        spread(rows, T->world, cols, c, T->straggler_rows + (size_t)(cols + 1) * T->world, s);
        cJSON *ph = eff_json_add_object(row, name[c]);
        eff_json_num(ph, "min", s[0], "%.3f");
        eff_json_num(ph, "median", s[1], "%.3f");
        eff_json_num(ph, "max", s[2], "%.3f");
    }
    cJSON *slow = eff_json_add_object(row, "slowest");
    eff_json_int(slow, "rank", slowest);
    eff_json_str(slow, "host", eff_mpi_host(T->mpi, slowest));
    for (int c = 0; c < cols; c++) eff_json_num(slow, name[c], rows[slowest * cols + c], "%.3f");
    eff_trainer_metrics(T, row);
}

/* Every log interval: each rank's phase times (ms per step) to rank 0, which
 * reports the spread and the slowest rank (metrics.jsonl, and the log when
 * the slowest is 10% above the median). */
static void straggler_report(EffTrainer *T, double window_s, int64_t steps) {
    enum { COLS = EFF_PHASES + 1 };
    double mine[COLS], *rows = T->straggler_rows; /* COLS x world, allocated at setup */
    for (int p = 0; p < EFF_PHASES; p++) mine[p] = 1e3 * T->win_phase[p] / (double)steps;
    mine[EFF_PHASES] = 1e3 * window_s / (double)steps;
    memset(T->win_phase, 0, sizeof T->win_phase);
    eff_mpi_allgather(T->mpi, mine, rows, COLS, MPI_DOUBLE, "straggler report all-gather");
    int slowest = 0;
    for (int r = 1; r < T->world; r++)
        if (rows[r * COLS + EFF_PH_DATA] + rows[r * COLS + EFF_PH_COMPUTE] >
            rows[slowest * COLS + EFF_PH_DATA] + rows[slowest * COLS + EFF_PH_COMPUTE]) slowest = r;
    if (T->rank == 0) {
        write_straggler(T, rows, COLS, slowest);
        double *busy = rows + (size_t)COLS * T->world, s[3]; /* the spare column block */
        for (int r = 0; r < T->world; r++) busy[r] = rows[r * COLS + EFF_PH_DATA] + rows[r * COLS + EFF_PH_COMPUTE];
        spread(busy, T->world, 1, 0, busy + T->world, s);
        if (s[2] > 1.1 * s[1])
            eff_trainer_log(T, "ranks: compute + data wait per step min/median/max %.1f/%.1f/%.1f ms; slowest rank %d "
                            "(%s)\n", s[0], s[1], s[2], slowest, eff_mpi_host(T->mpi, slowest));
    }
}

/* The seed's "Train Epoch" line every output.log_interval steps and at the
 * epoch's end, with throughput; a "train" row in metrics.jsonl. */
void eff_trainer_log_step(EffTrainer *T, const EffStepResult *r) {
    const EffConfig *c = &T->cfg;
    const long gb = (long)T->world * c->batch * c->accum;
    T->window_steps++;
    T->window_loss += r->loss;
    T->epoch_loss += r->loss * (double)gb;
    T->epoch_samples += gb;
    if (T->st.global_step % c->log_interval != 0 && T->st.step_in_epoch != T->steps_per_epoch) return;
    const double dt = eff_time() - T->window_t0, ips = (double)T->window_steps * gb / dt;
    const double avg = T->epoch_loss / (double)T->epoch_samples, step_ms = 1e3 * dt / (double)T->window_steps;
    eff_trainer_log(T, "Train Epoch: %lld [%lld/%lld (%.0f%%)]\tAVG_Loss: %.6f\t%.1f img/s (%.1f per rank), step %.1f "
                    "ms, lr %.3g\n", (long long)T->st.epoch, (long long)(T->st.step_in_epoch * gb), (long long)T->train.n,
                    100.0 * (double)T->st.step_in_epoch / (double)T->steps_per_epoch, avg, ips, ips / T->world, step_ms,
                    r->lr);
    cJSON *row = eff_json_object();
    eff_json_str(row, "type", "train");
    eff_json_int(row, "epoch", (long long)T->st.epoch);
    eff_json_int(row, "step", (long long)T->st.global_step);
    eff_json_num(row, "loss", T->window_loss / (double)T->window_steps, "%.9g");
    eff_json_num(row, "avg_loss", avg, "%.6f");
    eff_json_num(row, "lr", r->lr, "%.6g");
    eff_json_num(row, "grad_norm", sqrt(r->gnorm2), "%.6g");
    eff_json_num(row, "img_per_s", ips, "%.2f");
    eff_json_num(row, "img_per_s_per_rank", ips / T->world, "%.2f");
    eff_json_num(row, "step_ms", step_ms, "%.2f");
    eff_json_int(row, "ranks", T->world);
    eff_trainer_metrics(T, row);
    if (T->world > 1) straggler_report(T, dt, T->window_steps);
    else memset(T->win_phase, 0, sizeof T->win_phase);
    T->window_t0 = eff_time();
    T->window_steps = 0;
    T->window_loss = 0;
}

/* ZeRO-1: rank 0 gathers every rank's optimizer pieces into full moments, so
 * a sharded run's checkpoint is the same as a replicated run's. Staged
 * through host memory (any backend). Returns the full buffers (backend
 * memory: the trainable range [train_lo, total)) on rank 0, NULL elsewhere,
 * to swap into the model for the save. */
static void gather_optimizer(EffTrainer *T, float **full_m, float **full_v) {
    EffModel *m = &T->ctx.model;
    const EffBackend *be = m->be;
    const size_t total = m->ptab.total, lo = m->train_lo;
    int *counts = eff_malloc(sizeof(int) * 3 * (size_t)T->world, "optimizer gather counts");
    int *displs = counts + T->world, *nseg = displs + T->world;
    EffSeg **seg = eff_malloc(sizeof(EffSeg *) * (size_t)T->world, "optimizer ranges of every rank");
    for (int r = 0, at = 0; r < T->world; at += counts[r++]) { /* each rank's packed state, rank after rank */
        seg[r] = eff_trainer_owned(T, r, &nseg[r]);
        size_t n = 0;
        for (int i = 0; i < nseg[r]; i++) n += seg[r][i].n;
        counts[r] = (int)n;
        displs[r] = at;
    }
    float *mine = eff_malloc(sizeof(float) * (m->opt_n ? m->opt_n : 1), "optimizer pieces (host)");
    float *packed = T->rank == 0 ? eff_malloc(sizeof(float) * total, "gathered optimizer pieces") : NULL;
    float *full = T->rank == 0 ? eff_malloc(sizeof(float) * total, "gathered optimizer state") : NULL;
    float *src[2] = {m->adam_m, m->adam_v}, **dst[2] = {full_m, full_v};
    for (int k = 0; k < 2; k++) {
        be->download(be, mine, src[k], m->opt_n * sizeof(float));
        eff_mpi_gatherv(T->mpi, mine, (int)m->opt_n, packed, counts, displs, 0, "optimizer state gather");
        *dst[k] = NULL;
        if (T->rank != 0) continue;
        for (int r = 0; r < T->world; r++) eff_seg_copy(seg[r], nseg[r], full, packed + displs[r], 1);
        *dst[k] = be->alloc(be, (total - lo) * sizeof(float), k ? "gathered Adam second moments"
                                                                : "gathered Adam first moments");
        be->upload(be, *dst[k], full + lo, (total - lo) * sizeof(float));
    }
    for (int r = 0; r < T->world; r++) eff_free(seg[r]);
    eff_free(seg);
    eff_free(full);
    eff_free(packed);
    eff_free(mine);
    eff_free(counts);
}

static EffCkptWritten save(EffTrainer *T, const char *path) {
    const char *keys[] = {"effnet_version", "git_commit", "world_size", "mpi_library", "backend", "hosts"};
    char mpi_ver[MPI_MAX_LIBRARY_VERSION_STRING], world[16];
    int len = 0;
    MPI_Get_library_version(mpi_ver, &len);
    char *nl = strchr(mpi_ver, '\n');
    if (nl) *nl = '\0';
    snprintf(world, sizeof world, "%d", T->world);
    const char *vals[] = {EFFNET_VERSION, EFFNET_GIT_COMMIT, world, mpi_ver, T->ctx.be->name, T->hosts};
    return eff_checkpoint_save(path, &T->ctx.model, &T->st, T->cfg.optimizer, T->R, T->config_ini, keys, vals, 6);
}

static void checkpoint(EffTrainer *T, const char *name);

void eff_trainer_checkpoint(EffTrainer *T, const char *name) {
    eff_trace_begin(T->trace, "checkpoint");
    checkpoint(T, name);
    eff_trace_end(T->trace, "checkpoint");
    eff_trace_flush(T->trace);
}

static void checkpoint(EffTrainer *T, const char *name) {
    eff_trainer_check_identical(T, "checkpoint");
    EffModel *m = &T->ctx.model;
    float *full_m = NULL, *full_v = NULL;
    if (T->sharded) gather_optimizer(T, &full_m, &full_v);
    if (T->rank != 0) return;
    char path[1300];
    snprintf(path, sizeof path, "%s/%s", T->cfg.output_dir, name);
    T->st.loss_scale = T->scaler.enabled ? T->scaler.scale : 0.0; /* fp16: the scaler resumes where it was */
    T->st.loss_scale_good_steps = T->scaler.enabled ? T->scaler.good_steps : 0;
    T->st.loss_scale_skipped = T->scaler.enabled ? T->scaler.skipped : 0;
    EffCkptWritten wr;
    if (T->sharded) { /* the model's view of the full state, for the save only */
        float *shard_m = m->adam_m, *shard_v = m->adam_v;
        EffSeg *seg = m->opt_seg, all = {m->train_lo, m->ptab.total - m->train_lo}; /* every trainable parameter */
        const int nseg = m->opt_nseg;
        const size_t n = m->opt_n;
        m->adam_m = full_m, m->adam_v = full_v, m->opt_seg = &all, m->opt_nseg = 1, m->opt_n = all.n;
        wr = save(T, path);
        m->adam_m = shard_m, m->adam_v = shard_v, m->opt_seg = seg, m->opt_nseg = nseg, m->opt_n = n;
        m->be->release(m->be, full_m);
        m->be->release(m->be, full_v);
    } else {
        wr = save(T, path);
    }
    printf("checkpoint: wrote %s (global step %lld, resumes at epoch %lld step %lld; %lld bytes, sha256 %s)\n", path,
           (long long)T->st.global_step, (long long)T->st.epoch, (long long)T->st.step_in_epoch, wr.bytes, wr.sha256);
    cJSON *row = eff_json_object(); /* what was written, for tools that check it later (tests/soak) */
    eff_json_str(row, "type", "checkpoint");
    eff_json_str(row, "file", name);
    eff_json_int(row, "step", (long long)T->st.global_step);
    eff_json_int(row, "bytes", wr.bytes);
    eff_json_str(row, "sha256", wr.sha256);
    eff_trainer_metrics(T, row);
    fflush(stdout);
}

/* Keep only the newest `keep` epoch-NNNN.h5 files (0: all). */
static void prune_epoch_checkpoints(EffTrainer *T, int64_t epoch) {
    if (T->rank != 0 || T->cfg.keep <= 0 || T->cfg.keep_every <= 0) return;
    int64_t old = epoch - T->cfg.keep * T->cfg.keep_every;
    if (old < 1) return;
    char path[1300];
    snprintf(path, sizeof path, "%s/epoch-%04lld.h5", T->cfg.output_dir, (long long)old);
    if (unlink(path) == 0) printf("checkpoint: removed %s (output.keep = %ld)\n", path, T->cfg.keep);
}

static double evaluate(EffTrainer *T, int64_t epoch, double *loss_out) {
    EffEvalSums s = {0, 0, 0};
    eff_trace_begin(T->trace, "evaluation");
    double t0 = eff_time();
    eff_evaluate(&T->ctx.model, T->el, T->eval_steps, &s);
    double v[3] = {s.loss_sum, s.correct, s.total};
    eff_mpi_allreduce(T->mpi, v, 3, MPI_DOUBLE, MPI_SUM, "evaluation all-reduce");
    double loss = v[0] / v[2], acc = 100.0 * v[1] / v[2];
    eff_trainer_log(T, "\nTest set: Average loss: %.4f, Accuracy: %.0f/%.0f (%.2f%%)\n\n", loss, v[1], v[2], acc);
    cJSON *row = eff_json_object();
    eff_json_str(row, "type", "eval");
    eff_json_int(row, "epoch", (long long)epoch);
    eff_json_int(row, "step", (long long)T->st.global_step);
    eff_json_num(row, "loss", loss, "%.6f");
    eff_json_num(row, "accuracy", acc, "%.4f");
    eff_json_num(row, "correct", v[1], "%.0f");
    eff_json_num(row, "total", v[2], "%.0f");
    eff_json_num(row, "eval_s", eff_time() - t0, "%.3f");
    eff_trainer_metrics(T, row);
    *loss_out = loss;
    eff_trace_end(T->trace, "evaluation");
    return acc;
}

/* After the steps of `epoch` (all of them, or the run stopped early): move
 * to the next epoch, evaluate, and write best/last/epoch-NNNN checkpoints. */
void eff_trainer_end_epoch(EffTrainer *T, int64_t epoch, int epoch_done) {
    const EffConfig *c = &T->cfg;
    eff_trainer_params_sync(T); /* evaluation and checkpoints read the parameters */
    if (epoch_done) {
        T->st.epoch++;
        T->st.step_in_epoch = 0;
        T->epoch_loss = 0;
        T->epoch_samples = 0;
    }
    const int last = T->finished || T->st.epoch > c->epochs;
    if ((epoch_done && epoch % c->eval_interval == 0) || last) {
        double loss;
        const double acc = evaluate(T, epoch, &loss);
        T->st.last_acc = acc;
        T->st.last_loss = loss;
        if (acc > T->st.best_acc) {
            T->st.best_acc = acc;
            T->st.best_epoch = epoch;
            eff_trainer_checkpoint(T, "best.h5");
        }
    }
    if ((epoch_done && epoch % c->checkpoint_interval == 0) || last) eff_trainer_checkpoint(T, "last.h5");
    if (epoch_done && c->keep_every > 0 && epoch % c->keep_every == 0) {
        char name[64];
        snprintf(name, sizeof name, "epoch-%04lld.h5", (long long)epoch);
        eff_trainer_checkpoint(T, name);
        prune_epoch_checkpoints(T, epoch);
    }
}

static void timing_summary(EffTrainer *T) {
    const EffConfig *c = &T->cfg;
    const EffStepTimes *t = &T->times;
    const EffModel *m = &T->ctx.model;
    /* peak RSS: rank 0's, and the largest of the others' (collective: every rank gets here) */
    double mine[2] = {T->rank == 0 ? eff_peak_rss_mb() : 0, T->rank == 0 ? 0 : eff_peak_rss_mb()}, rss[2];
    memcpy(rss, mine, sizeof rss);
    eff_mpi_allreduce(T->mpi, rss, 2, MPI_DOUBLE, MPI_MAX, "peak RSS all-reduce");
    if (t->steps == 0) return;
    /* rank 0's view; img/s counts only the timed training steps */
    const double n = (double)t->steps, gb = (double)T->world * c->batch * c->accum;
    const double step_s = (t->compute + t->wait + t->allreduce + t->optim) / n;
    /* the gradients and BN statistics exchanged (train.freeze: the trainable ones), the loss and stop flag */
    const double bytes = T->world > 1 ? (double)(m->ptab.total - m->train_lo + m->btab.total - m->bn_lo) * sizeof(float)
                                          + 2 * sizeof(double) : 2 * sizeof(double);
    eff_trainer_log(T, "timing: %lld steps, %.1f ms/step = compute %.1f + wait %.1f + all-reduce %.1f + optimizer %.1f "
                    "ms; %.1f img/s (%.1f per rank); %.1f MB all-reduced per step\n", (long long)t->steps,
                    1e3 * step_s, 1e3 * t->compute / n, 1e3 * t->wait / n, 1e3 * t->allreduce / n, 1e3 * t->optim / n,
                    gb / step_s, gb / step_s / T->world, bytes / 1e6);
    eff_trainer_log(T, "memory: peak RSS %.1f MiB on rank 0 (it writes the checkpoints), %.1f MiB the most of the "
                    "others; optimizer state %.1f MiB per rank (%s)\n", rss[0], rss[1],
                    2.0 * (double)m->opt_n * sizeof(float) / 1048576.0, T->sharded ? "sharded" : "replicated");
    if (T->xchg->counts_overlap)
        eff_trainer_log(T, "timing: gradient %s overlapped with backward: %.1f of %.1f buckets per step done "
                        "before backward ended; %.1f ms exposed (waiting after backward, inside the all-reduce "
                        "figure)\n", T->sharded ? "reduce-scatter" : "all-reduce", (double)t->buckets_in_backward / n, (double)t->buckets / n, 1e3 * t->exposed / n);
    if (m->use_graph && T->xchg->ops->graph_hooks)
        eff_trainer_log(T, "timing: CUDA graph: the gradient all-reduce runs inside each replay and is counted in "
                        "compute; the all-reduce figure is the BN statistics and loss reductions only\n");
    cJSON *row = eff_json_object();
    eff_json_str(row, "type", "summary");
    eff_json_str(row, "model", m->spec.name);
    eff_json_int(row, "resolution", T->R);
    eff_json_int(row, "ranks", T->world);
    eff_json_int(row, "threads_per_rank", T->ctx.threads);
    eff_json_int(row, "batch_per_rank", c->batch);
    eff_json_int(row, "accum", c->accum);
    eff_json_num(row, "global_batch", gb, "%.0f");
    eff_json_int(row, "steps", (long long)t->steps);
    eff_json_num(row, "step_ms", 1e3 * step_s, "%.3f");
    eff_json_num(row, "compute_ms", 1e3 * t->compute / n, "%.3f");
    eff_json_num(row, "wait_ms", 1e3 * t->wait / n, "%.3f");
    eff_json_num(row, "data_wait_ms", 1e3 * t->data / n, "%.3f"); /* outside step_ms: the loader was late */
    eff_json_num(row, "allreduce_ms", 1e3 * t->allreduce / n, "%.3f");
    eff_json_num(row, "optimizer_ms", 1e3 * t->optim / n, "%.3f");
    eff_json_num(row, "img_per_s", gb / step_s, "%.3f");
    eff_json_num(row, "img_per_s_per_rank", gb / step_s / T->world, "%.3f");
    eff_json_num(row, "allreduce_bytes_per_step", bytes, "%.0f");
    eff_json_bool(row, "comm_timing", c->comm_timing);
    eff_json_bool(row, "cuda_graph", m->use_graph);
    eff_json_bool(row, "overlap", T->xchg->counts_overlap);
    eff_json_num(row, "buckets", (double)t->buckets / n, "%.1f");
    eff_json_num(row, "buckets_done_in_backward", (double)t->buckets_in_backward / n, "%.1f");
    eff_json_num(row, "exposed_allreduce_ms", 1e3 * t->exposed / n, "%.3f");
    eff_json_bool(row, "sharded", T->sharded);
    eff_json_num(row, "peak_rss_mib_rank0", rss[0], "%.1f");
    eff_json_num(row, "peak_rss_mib_others", rss[1], "%.1f");
    eff_trainer_metrics(T, row);
}

void eff_trainer_finish(EffTrainer *T) {
    eff_trainer_params_sync(T);
    if (!T->exit_code)
        eff_trainer_log(T, "Best Epoch: %lld   Best Accuracy: %.2f%%\n", (long long)T->st.best_epoch, T->st.best_acc);
    timing_summary(T);
    eff_loader_close(T->tl);
    eff_loader_close(T->el);
#ifdef EFFNET_HAVE_CUDA
    eff_gpu_aug_destroy(T->gaug);
#endif
    eff_dataset_free(&T->train);
    eff_dataset_free(&T->test);
    eff_model_destroy(&T->ctx.model);
    eff_exchange_destroy(T->xchg);
    eff_backend_cuda_destroy(T->cuda);
    eff_mpi_destroy(T->mpi);
    eff_free(T->config_ini);
    eff_free(T->hosts);
    eff_free(T->bn_start);
    eff_free(T->straggler_rows);
    eff_free(T->bn_sum);
    if (T->metrics) eff_fclose(T->metrics, "metrics.jsonl");
    if (T->index_dump) eff_fclose(T->index_dump, "indices-rankR.txt");
    eff_trace_close(T->trace);
    eff_dirlock_release(T->dir_lock);
}
