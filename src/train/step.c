/* step.c: one optimizer step of `effnet train`:
 *   micro-batches (forward, backward) -> gradient all-reduce -> BN statistics
 *   -> loss and stop-flag reduction -> fp16 loss scaler -> optimizer.
 * Every rank holds the whole model, trains on its slice of the global batch,
 * and the gradients are averaged so every rank takes the identical step. */
#define _POSIX_C_SOURCE 200809L
#include "train/trainer.h"
#include "comm/exchange.h"

#include "common.h"
#include "rng.h"
#ifdef EFFNET_HAVE_CUDA
#include "augment_cuda.h"
#endif

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* The model's hooks into the gradient exchange (comm/exchange.h). */
static void on_grad_ready(void *arg, size_t first) { eff_exchange_grad_ready((EffExchange *)arg, first); }
static void on_progress(void *arg) {
    EffExchange *x = arg;
    x->ops->progress(x);
}
/* ZeRO-1: the forward about to read the parameters below `end` waits for them. */
static void on_params_needed(void *arg, size_t end) {
    EffTrainer *T = arg;
    if (!eff_exchange_params_pending(T->xchg, end)) return;
    const double t0 = eff_time();
    eff_trace_begin(T->trace, "parameter all-gather");
    eff_exchange_wait_params(T->xchg, end, "parameter all-gather");
    eff_trace_end(T->trace, "parameter all-gather");
    T->params_wait_s += eff_time() - t0;
}

/* accum > 1: every micro-batch updates the running statistics from the
 * step's starting values, and the step's result is their mean (then averaged
 * over the ranks, average_bn_stats). So any ranks x accum split of one global
 * batch into the same micro-batches gives the same running statistics: with
 * 2 x 1 and 1 x 2, bit for bit. The statistics from bn_lo on: with
 * train.freeze_bn = eval the frozen BNs' [0, bn_lo) do not change, and a mean
 * of equal floats need not be exactly that float, so they are left alone. */
static void bn_micro_begin(EffTrainer *T, int a) {
    EffModel *m = &T->ctx.model;
    const size_t lo = m->bn_lo, bytes = (m->btab.total - lo) * sizeof(float);
    if (T->cfg.accum == 1) return;
    if (a == 0) m->be->download(m->be, T->bn_start, m->bufs + lo, bytes);
    else m->be->upload(m->be, m->bufs + lo, T->bn_start, bytes);
}

static void bn_micro_end(EffTrainer *T, int a) {
    EffModel *m = &T->ctx.model;
    const size_t lo = m->bn_lo, n = m->btab.total - lo;
    if (T->cfg.accum == 1) return;
    if (a == 0) {
        m->be->download(m->be, T->bn_sum, m->bufs + lo, n * sizeof(float));
        return;
    }
    float *micro = T->bn_sum + n; /* staging half of bn_sum */
    m->be->download(m->be, micro, m->bufs + lo, n * sizeof(float));
    for (size_t i = 0; i < n; i++) T->bn_sum[i] += micro[i];
    if (a == T->cfg.accum - 1) m->be->upload(m->be, m->bufs + lo, T->bn_sum, n * sizeof(float)); /* the sum; divided below */
}

/* The model's BN running statistics := their mean over every micro-batch of
 * the global batch (an all-reduce next to the gradients'), so every rank holds
 * the same statistics at all times: evaluation and checkpoints see the
 * cross-rank average, and a resumed run continues from exactly the state an
 * uninterrupted run has. */
static void average_bn_stats(EffTrainer *T) {
    EffModel *m = &T->ctx.model;
    eff_exchange_average(T->xchg, m->bufs + m->bn_lo, m->btab.total - m->bn_lo, (int)T->cfg.accum);
}

/* debug.dump_indices: one line per micro-batch, "epoch step k i1 i2 ...", k
 * the global micro-batch index; sorted by (epoch, step, k) the lines of all
 * ranks give each step's global sample order, whatever the split. */
static void dump_indices(EffTrainer *T, const eff_batch *b) {
    const int B = (int)T->cfg.batch;
    for (long a = 0; a < T->cfg.accum; a++) {
        int ok = fprintf(T->index_dump, "%lld %lld %ld", (long long)b->epoch, (long long)b->step,
                         T->rank * T->cfg.accum + a) > 0;
        for (int i = 0; i < B; i++) ok = ok && fprintf(T->index_dump, " %lld", (long long)b->index[a * B + i]) > 0;
        EFF_CHECK(ok && fputc('\n', T->index_dump) != EOF && fflush(T->index_dump) == 0,
                  "writing indices-rank%d.txt failed: %s", T->rank, strerror(errno));
    }
}

/* Forward and backward over the rank's micro-batches; returns the summed loss. */
static double micro_batches(EffTrainer *T, const eff_batch *b) {
    const EffConfig *c = &T->cfg;
    EffModel *m = &T->ctx.model;
    const size_t img = (size_t)T->R * T->R * 3;
    const int B = (int)c->batch;
    if (T->index_dump) dump_indices(T, b);
    if (!m->use_graph) eff_model_zero_grad(m); /* a (graph) train step zeroes its own */
    EffExchange *x = T->xchg;
    /* NCCL averages (ncclAvg); MPI sums, so its ranks pre-divide by the world size */
    const double loss_scale = eff_scaler_scale(&T->scaler), divisor = (double)c->accum * (x->averages ? 1 : T->world);
    eff_exchange_begin(x, (long)T->st.global_step + 1);
    const EffStepHooks *hooks = x->ops->graph_hooks ? x->ops->graph_hooks(x) : NULL;
    int params_pending = eff_exchange_params_pending(x, SIZE_MAX); /* the last step's ZeRO-1 all-gather */
    const int64_t bn_batches = m->bn_batches;
    double local_loss = 0;
    for (int a = 0; a < c->accum; a++) {
        /* dropout key: (seed, step, global micro-batch index), so 2 ranks x 1 and
         * 1 rank x 2 micro-batches draw the same masks */
        const uint64_t key = eff_key3(T->ctx.seed, (uint64_t)T->st.global_step, (uint64_t)(T->rank * c->accum + a));
        if (T->gaug) {
#ifdef EFFNET_HAVE_CUDA
            eff_gpu_aug_batch(T->gaug, c->augment ? 1 : 0, b->index + (size_t)a * B, NULL, B, T->ctx.seed,
                              (uint64_t)(b->epoch), m->x, NULL);
#endif
            m->be->upload(m->be, m->labels, b->y + (size_t)a * B, (size_t)B * sizeof(int32_t));
        } else {
            eff_model_set_input(m, b->x + (size_t)a * B * img, b->y + (size_t)a * B);
        }
        /* on the last micro-batch, buckets start as soon as backward finishes them */
        const int last = a == c->accum - 1, overlap = last && x->overlapped;
        m->grad_ready = overlap ? on_grad_ready : NULL;
        m->grad_ready_arg = x;
        m->progress = x->ops->progress && (overlap || params_pending) ? on_progress : NULL;
        m->params_needed = params_pending ? on_params_needed : NULL;
        m->params_needed_arg = T;
        bn_micro_begin(T, a);
        float loss;
        if (m->use_graph) { /* accum is 1: zero, forward, backward and all-reduce as one replayed step */
            eff_trace_begin(T->trace, "forward+backward (CUDA graph)");
            loss = eff_model_train_step(m, key, (float)(loss_scale / divisor), hooks);
            eff_trace_end(T->trace, "forward+backward (CUDA graph)");
        } else {
            eff_trace_begin(T->trace, "forward");
            loss = eff_model_forward_resident(m, 1, 1, key);
            eff_trace_end(T->trace, "forward");
            if (params_pending) { /* the forward's head waited for the last bucket */
                m->params_needed = NULL;
                params_pending = eff_exchange_params_pending(x, SIZE_MAX);
                if (!overlap) m->progress = NULL;
            }
            eff_trace_begin(T->trace, "backward");
            eff_model_backward(m, (float)(loss_scale / divisor));
            eff_trace_end(T->trace, "backward");
        }
        bn_micro_end(T, a);
        if (c->nan_at_step && T->st.global_step + 1 == c->nan_at_step) loss = NAN;
        local_loss += loss;
    }
    m->bn_batches = bn_batches + 1; /* one batch per optimizer step, whatever the split */
    m->grad_ready = NULL;
    m->progress = NULL;
    if (c->sleep_ms && (c->sleep_rank < 0 || c->sleep_rank == T->rank)) nanosleep(&(struct timespec){c->sleep_ms / 1000, (c->sleep_ms % 1000) * 1000000L}, NULL);
    return local_loss;
}

/* Gradients, BN statistics, then the loss and the stop flag (one small all-reduce). */
static void reduce(EffTrainer *T, double local_loss, EffStepResult *r) {
    EffExchangeStats s;
    eff_exchange_finish(T->xchg, T->ctx.model.use_graph, &s);
    r->buckets = s.buckets;
    r->buckets_in_backward = s.done_in_backward;
    r->exposed_s = s.exposed_s;
    average_bn_stats(T);
    double v[2] = {local_loss, eff_signals_caught(T->signals) ? 1.0 : 0.0};
    eff_mpi_allreduce(T->mpi, v, 2, MPI_DOUBLE, MPI_SUM, "loss and stop-flag all-reduce");
    r->loss = v[0] / (double)(T->cfg.accum * T->world);
    r->stop_signal = v[1] > 0;
}

/* fp16: unscale, or skip the step on Inf/NaN gradients as GradScaler does
 * (the flag is all-reduced so every rank decides the same). Returns 0 to skip. */
static int unscale(EffTrainer *T, EffStepResult *r) {
    EffModel *m = &T->ctx.model;
    if (!T->scaler.enabled || !isfinite(r->loss)) return 1;
    int finite = isfinite(r->gnorm2) ? 1 : 0;
    eff_mpi_allreduce(T->mpi, &finite, 1, MPI_INT, MPI_MIN, "fp16 finiteness all-reduce");
    const double used = T->scaler.scale;
    if (!eff_scaler_update(&T->scaler, finite)) {
        eff_trainer_log(T, "fp16: non-finite gradients at global step %lld with loss scale %g: step skipped, scale now "
                        "%g\n", (long long)T->st.global_step + 1, used, T->scaler.scale);
        r->gnorm2 = 0;
        return 0;
    }
    m->be->scale_inplace(m->be, m->grad, m->ptab.total, (float)(1.0 / used));
    r->gnorm2 /= used * used;
    return 1;
}

static double lr_at(const EffConfig *c, int64_t step, int64_t total) {
    if (!strcmp(c->schedule, "constant")) return c->lr;
    if (step < c->warmup_steps) return c->lr * (double)(step + 1) / (double)c->warmup_steps;
    double span = (double)(total - c->warmup_steps), t = span > 0 ? (double)(step - c->warmup_steps) / span : 1.0;
    if (t > 1) t = 1;
    return c->min_lr + (c->lr - c->min_lr) * 0.5 * (1.0 + cos(3.14159265358979323846 * t));
}

/* The squared gradient norm: sharded, each rank's pieces summed over ranks. */
static double grad_sumsq(EffTrainer *T) {
    double s = eff_model_grad_sumsq(&T->ctx.model);
    if (T->sharded) eff_mpi_allreduce(T->mpi, &s, 1, MPI_DOUBLE, MPI_SUM, "gradient norm all-reduce");
    return s;
}

EffStepResult eff_trainer_step(EffTrainer *T, const eff_batch *b) {
    EffModel *m = &T->ctx.model;
    const EffConfig *c = &T->cfg;
    EffStepResult r = {0};
    const int timed = T->steps_run++ > 0;
    const double t0 = eff_time();
    eff_mpi_set_step(T->mpi, T->st.global_step + 1);
    const double local_loss = micro_batches(T, b);
    const double t1 = eff_time();
    if (c->comm_timing) eff_mpi_barrier(T->mpi, "load-balance barrier (output.comm_timing)");
    const double t2 = eff_time();
    eff_trace_begin(T->trace, "gradient reduction");
    reduce(T, local_loss, &r);
    eff_trace_end(T->trace, "gradient reduction");
    eff_trace_begin(T->trace, "optimizer");
    const double t3 = eff_time(); /* the norm, the finiteness check and the step count as "optimizer" */
    r.lr = lr_at(c, T->st.global_step, T->total_steps);
    const EffOptimizer opt = {.name = c->optimizer, .lr = (float)r.lr, .beta1 = (float)c->beta1, .beta2 = (float)c->beta2,
                              .eps = (float)c->eps, .weight_decay = (float)c->weight_decay,
                              .momentum = (float)c->momentum, .nesterov = (int)c->nesterov};
    if (T->scaler.enabled) { /* fp16: the norm decides, before the step, whether to take it */
        r.gnorm2 = grad_sumsq(T);
        const int do_step = unscale(T, &r);
        if (!isfinite(r.loss) || !isfinite(r.gnorm2)) { r.nonfinite = 1; eff_trace_end(T->trace, "optimizer"); return r; }
        if (do_step) eff_model_optimizer_step(m, &opt); /* else no step (the schedule still advances, as GradScaler) */
    } else { /* one pass: the step returns the norm of the gradients it read; a non-finite one stops the run
                before anything is saved, so the step it took is never kept */
        r.gnorm2 = eff_model_optimizer_step(m, &opt);
        if (T->sharded) eff_mpi_allreduce(T->mpi, &r.gnorm2, 1, MPI_DOUBLE, MPI_SUM, "gradient norm all-reduce");
        if (!isfinite(r.loss) || !isfinite(r.gnorm2)) { r.nonfinite = 1; eff_trace_end(T->trace, "optimizer"); return r; }
    }
    eff_trace_end(T->trace, "optimizer");
    /* ZeRO-1: every rank's updated pieces to every rank; the next forward waits
     * for them (NCCL: on the stream; MPI: on_params_needed) */
    if (T->sharded) eff_exchange_gather_params(T->xchg, m->param);
    const double t_gather = T->params_wait_s; /* this step's forward waited for the last step's */
    T->params_wait_s = 0;
    T->win_phase[EFF_PH_COMPUTE] += t1 - t0 - t_gather;
    T->win_phase[EFF_PH_COMM] += t3 - t1 + t_gather; /* the load-balance barrier and the reduction */
    T->win_phase[EFF_PH_OPTIM] += eff_time() - t3;
    if (timed) {
        T->times.compute += t1 - t0 - t_gather;
        T->times.wait += t2 - t1;
        T->times.allreduce += t3 - t2 + t_gather; /* ZeRO-1's all-gather (what the forward waited) is communication */
        T->times.optim += eff_time() - t3;
        T->times.exposed += r.exposed_s;
        T->times.buckets += r.buckets;
        T->times.buckets_in_backward += r.buckets_in_backward;
        T->times.steps++;
    }
    eff_mpi_set_step(T->mpi, 0);
    T->st.global_step++;
    T->st.step_in_epoch++;
    T->st.lr = r.lr;
    return r;
}
