/* exchange_nccl.c: the NCCL transport of exchange.h (comm_nccl.c; in a build
 * without CUDA comm_nccl_stub.c refuses to create it). NCCL averages
 * (ncclAvg), the buckets overlap backward on the comm stream, ZeRO-1's
 * all-gather is stream-ordered (no host-side parameter waits), and a
 * captured CUDA graph step records the tail itself (graph_hooks). */
#include "comm/exchange.h"

#include "comm/comm_nccl.h"
#include "common.h"

typedef struct {
    EffComm *c;
    const EffBackend *be;
    EffStepHooks hooks; /* the captured step's tail: finish, wait, and restart after a failed capture */
} Nccl;

static Nccl *N(EffExchange *x) { return x->impl; }

static void on_tail(void *arg) { eff_comm_finish((EffComm *)arg); }
static void on_wait(void *arg) { eff_comm_wait((EffComm *)arg); }
static void on_discard(void *arg) { eff_comm_restart((EffComm *)arg); }

static void nccl_begin(EffExchange *x, long step) { eff_comm_begin(N(x)->c, step); }
static void nccl_grad_ready(EffExchange *x, size_t first) { eff_comm_grad_ready(N(x)->c, first); }

static void nccl_finish(EffExchange *x, int tail_done, EffExchangeStats *stats) {
    if (!tail_done) eff_comm_finish(N(x)->c); /* else the captured step's tail did */
    eff_comm_wait(N(x)->c);
    if (stats) *stats = (EffExchangeStats){0, 0, 0};
}

static void nccl_average(EffExchange *x, float *buf, size_t n, int accum) {
    Nccl *m = N(x);
    if (accum > 1) m->be->scale_inplace(m->be, buf, n, 1.0f / (float)accum);
    eff_comm_allreduce_avg(m->c, buf, n);
}

static void nccl_gather_params(EffExchange *x, float *param) { eff_comm_allgather_params(N(x)->c, param); }
static const EffStepHooks *nccl_graph_hooks(EffExchange *x) { return &N(x)->hooks; }

static void nccl_destroy(EffExchange *x) {
    eff_comm_destroy(N(x)->c);
    eff_free(x->impl);
    eff_free(x);
}

const EffExchangeOps eff_exchange_nccl_ops = {
    .begin = nccl_begin, .finish = nccl_finish, .average = nccl_average, .destroy = nccl_destroy,
    .grad_ready = nccl_grad_ready, .gather_params = nccl_gather_params, .graph_hooks = nccl_graph_hooks,
};

EffExchange *eff_exchange_nccl(MPI_Comm comm, const EffBackend *be, float *grad, size_t base, size_t n,
                               double bucket_mb, double timeout_s, int sharded) {
    EFF_CHECK(base < n, "gradient exchange: range [%zu, %zu) is empty (internal error)", base, n);
    Nccl *m = eff_calloc(1, sizeof *m, "NCCL gradient exchange");
    m->c = eff_comm_create(comm, be, grad + base, n - base, bucket_mb, timeout_s, sharded); /* the trainable range */
    m->be = be;
    m->hooks = (EffStepHooks){.tail = on_tail, .wait = on_wait, .discard = on_discard, .arg = m->c};
    EffExchange *x = eff_calloc(1, sizeof *x, "gradient exchange");
    *x = (EffExchange){.ops = &eff_exchange_nccl_ops, .impl = m, .base = base, .name = "NCCL", .averages = 1, .sharded = sharded,
                       .overlapped = 1, .nbuckets = eff_comm_buckets(m->c)};
    return x;
}
