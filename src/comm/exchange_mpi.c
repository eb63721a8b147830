/* exchange_mpi.c: the MPI transport of exchange.h. Three shapes, chosen at
 * creation: one rank (nothing moves); the bucketed reduce-scatter or
 * all-reduce of buckets_mpi.c (comm.overlap, or ZeRO-1); one MPI all-reduce
 * after backward. MPI sums, so the ranks pre-divide their gradients
 * (averages = 0). */
#include "comm/exchange.h"

#include "common.h"

#include <stdint.h>

typedef struct {
    EffMpi *w;
    const EffBackend *be;
    float *grad;            /* the exchanged range: the model's gradients from exchange base on */
    size_t n;
    int world;
    EffMpiBuckets *buckets; /* NULL: one all-reduce (world > 1) or nothing (world 1) */
    int params_pending;     /* ZeRO-1: the parameter all-gather is in flight */
} Mpi;

static Mpi *M(EffExchange *x) { return x->impl; }

static void mpi_begin(EffExchange *x, long step) {
    (void)step;
    if (M(x)->buckets) eff_mpi_buckets_begin(M(x)->buckets);
}

static void mpi_grad_ready(EffExchange *x, size_t first) { eff_mpi_grad_ready(M(x)->buckets, first); }

static void mpi_progress(EffExchange *x) {
    if (M(x)->buckets) eff_mpi_buckets_progress(M(x)->buckets);
}

static void mpi_finish(EffExchange *x, int tail_done, EffExchangeStats *stats) {
    (void)tail_done;
    Mpi *m = M(x);
    EffMpiBucketStats s = {0, 0, 0};
    if (m->buckets) eff_mpi_buckets_finish(m->buckets, &s); /* overlapped, or ZeRO-1's reduce-scatter */
    else if (m->world > 1) /* with one rank the sum is the identity: skip the 28 MB copy Open MPI makes */
        eff_mpi_allreduce(m->w, m->grad, m->n, MPI_FLOAT, MPI_SUM, "gradient all-reduce");
    if (stats) *stats = (EffExchangeStats){s.buckets, s.done_in_backward, s.exposed_s};
}

/* Through the host: sum over ranks, then one division by every micro-batch. */
static void mpi_average(EffExchange *x, float *buf, size_t n, int accum) {
    Mpi *m = M(x);
    if (m->world == 1 && accum == 1) return;
    float *host = eff_malloc(n * sizeof(float), "BN statistics");
    m->be->download(m->be, host, buf, n * sizeof(float));
    if (m->world > 1) eff_mpi_allreduce(m->w, host, n, MPI_FLOAT, MPI_SUM, "BN statistics all-reduce");
    const float parts = (float)(m->world * accum);
    for (size_t i = 0; i < n; i++) host[i] /= parts;
    m->be->upload(m->be, buf, host, n * sizeof(float));
    eff_free(host);
}

static void mpi_gather_params(EffExchange *x, float *param) {
    eff_mpi_buckets_allgather_start(M(x)->buckets, param);
    M(x)->params_pending = 1;
}

static int mpi_params_pending(EffExchange *x, size_t end) {
    Mpi *m = M(x);
    if (!m->params_pending) return 0;
    if (eff_mpi_buckets_params_pending(m->buckets, end)) return 1;
    if (end == SIZE_MAX) m->params_pending = 0; /* all arrived */
    return 0;
}

static void mpi_wait_params(EffExchange *x, size_t end, const char *what) {
    Mpi *m = M(x);
    if (!m->params_pending) return;
    eff_mpi_buckets_allgather_wait(m->buckets, end, what);
    if (end == SIZE_MAX) m->params_pending = 0;
}

static void mpi_on_event(EffExchange *x, void (*fn)(void *, int, int), void *arg) {
    if (M(x)->buckets) eff_mpi_buckets_on_event(M(x)->buckets, fn, arg);
}

static void mpi_destroy(EffExchange *x) {
    eff_mpi_buckets_destroy(M(x)->buckets);
    eff_free(x->impl);
    eff_free(x);
}

const EffExchangeOps eff_exchange_mpi_ops = {
    .begin = mpi_begin, .finish = mpi_finish, .average = mpi_average, .destroy = mpi_destroy,
    .grad_ready = mpi_grad_ready, .progress = mpi_progress, .gather_params = mpi_gather_params,
    .params_pending = mpi_params_pending, .wait_params = mpi_wait_params, .on_event = mpi_on_event,
};

EffExchange *eff_exchange_mpi(EffMpi *w, const EffBackend *be, float *grad, size_t base, size_t n, double bucket_mb,
                              int overlap, int sharded) {
    EFF_CHECK(base < n, "gradient exchange: range [%zu, %zu) is empty (internal error)", base, n);
    EffExchange *x = eff_calloc(1, sizeof *x, "gradient exchange");
    Mpi *m = eff_calloc(1, sizeof *m, "MPI gradient exchange");
    *m = (Mpi){.w = w, .be = be, .grad = grad + base, .n = n - base, .world = eff_mpi_size(w)};
    const int buckets = m->world > 1 && (overlap || sharded);
    if (buckets)
        m->buckets = eff_mpi_buckets_create(w, m->grad, m->n, bucket_mb,
                                            sharded ? EFF_BUCKETS_REDUCE_SCATTER : EFF_BUCKETS_ALLREDUCE);
    *x = (EffExchange){.ops = &eff_exchange_mpi_ops, .impl = m, .base = base, .averages = 0, .sharded = buckets && sharded,
                       .overlapped = buckets && overlap, .counts_overlap = buckets && overlap,
                       .nbuckets = buckets ? eff_mpi_buckets_count(m->buckets) : 0,
                       .name = buckets ? "MPI buckets" : m->world > 1 ? "MPI all-reduce" : "none (1 rank)"};
    return x;
}
