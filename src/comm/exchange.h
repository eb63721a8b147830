/* exchange.h: the trainer's one gradient-exchange interface. Two transports
 * sit behind it, as the CPU and CUDA ops sit behind the backend table:
 *
 *   MPI (exchange_mpi.c): gradients in host memory; the bucketed
 *     reduce-scatter/all-reduce of buckets_mpi.c (comm.overlap, or ZeRO-1),
 *     or one MPI all-reduce after backward, or nothing on one rank
 *   NCCL (exchange_nccl.c): one GPU per rank, buckets on the comm stream
 *     (comm_nccl.c), also inside a captured CUDA graph
 *
 * setup.c picks the transport once (eff_exchange_mpi / eff_exchange_nccl);
 * step.c, epoch.c and trainer.c call only these functions.
 *
 * The exchange covers the gradients [base, n) (train.freeze: the frozen
 * prefix [0, base) takes no gradient and is never sent). The model and the
 * trainer speak in offsets of the whole parameter buffer; the eff_exchange_*
 * calls below translate them, so a transport only ever sees its own range
 * [0, n - base) (its buckets, ZeRO-1's pieces and parameter gather). What every
 * transport provides is listed in EffExchangeOps; eff_exchange_check (and the
 * test exchange_table) enforces it, groups all-or-none. A third transport
 * (UCC, an NCCL-free GPU path) fills the same table: kernels/README.md,
 * "Adding a transport". */
#ifndef EFFNET_COMM_EXCHANGE_H
#define EFFNET_COMM_EXCHANGE_H

#include "comm/comm_mpi.h"
#include "model.h" /* EffStepHooks */

#include <stddef.h>

typedef struct EffExchange EffExchange;

typedef struct {
    int buckets;           /* in the step */
    int done_in_backward;  /* buckets complete before backward ended (overlapped transports) */
    double exposed_s;      /* waiting after backward */
} EffExchangeStats;

typedef struct EffExchangeOps {
    /* required */
    void (*begin)(EffExchange *x, long step);                   /* a step's exchange begins */
    /* start the rest (unless the step's captured tail did: tail_done); wait
     * until every gradient is reduced (stats may be NULL) */
    void (*finish)(EffExchange *x, int tail_done, EffExchangeStats *stats);
    /* the BN statistics (backend memory, n floats): the mean over every rank's
     * accum micro-batches, each rank holding the sum of its accum */
    void (*average)(EffExchange *x, float *buf, size_t n, int accum);
    void (*destroy)(EffExchange *x);
    /* optional: backward reports gradients at offsets >= first as final (an
     * exchange with overlapped = 1 has it) */
    void (*grad_ready)(EffExchange *x, size_t first);
    /* optional: a transport moved by the host advances between ops */
    void (*progress)(EffExchange *x);
    /* ZeRO-1 (optional; a sharded exchange has it): after the step every
     * rank's updated pieces go to every rank */
    void (*gather_params)(EffExchange *x, float *param);
    /* host-side parameter waits (both or neither): is the gather of the
     * parameters below `end` in flight; wait for them */
    int (*params_pending)(EffExchange *x, size_t end);
    void (*wait_params)(EffExchange *x, size_t end, const char *what);
    /* optional: the hooks a captured CUDA graph step's tail calls */
    const EffStepHooks *(*graph_hooks)(EffExchange *x);
    /* optional: fn(arg, bucket, 0|1) as a bucket starts and completes (output.trace) */
    void (*on_event)(EffExchange *x, void (*fn)(void *arg, int bucket, int done), void *arg);
} EffExchangeOps;

struct EffExchange {
    const EffExchangeOps *ops;
    const char *name;   /* for the log: "MPI buckets", "MPI all-reduce", "NCCL", "none (1 rank)" */
    int averages;       /* 1: the gradient exchange averages (ncclAvg); 0: it sums, so the ranks pre-divide */
    int sharded;        /* ZeRO-1: rank r keeps piece r of every bucket (buckets.h) */
    int overlapped;     /* gradients move during backward (grad_ready set) */
    int counts_overlap; /* finish's stats say how many buckets were done in backward */
    int nbuckets;
    size_t base;        /* the first offset exchanged (train.freeze: the frozen prefix below it is not) */
    void *impl;
};

/* 0 if ops is complete, else -1 with the missing slot named in err. */
int eff_exchange_check(const EffExchangeOps *ops, char *err, size_t errlen);

/* Thin calls, NULL-safe where a slot is optional. */
static inline void eff_exchange_begin(EffExchange *x, long step) { x->ops->begin(x, step); }
static inline void eff_exchange_finish(EffExchange *x, int tail_done, EffExchangeStats *s) {
    x->ops->finish(x, tail_done, s);
}
static inline void eff_exchange_average(EffExchange *x, float *buf, size_t n, int accum) {
    x->ops->average(x, buf, n, accum);
}
/* An offset of the whole buffer as one of the exchanged range (below base: 0; SIZE_MAX stays "all"). */
static inline size_t eff_exchange_offset(const EffExchange *x, size_t off) {
    return off == SIZE_MAX ? SIZE_MAX : off > x->base ? off - x->base : 0;
}
/* the gradients at offsets >= first are final (an overlapped exchange has grad_ready) */
static inline void eff_exchange_grad_ready(EffExchange *x, size_t first) {
    x->ops->grad_ready(x, eff_exchange_offset(x, first));
}
static inline int eff_exchange_params_pending(EffExchange *x, size_t end) {
    return x->ops->params_pending ? x->ops->params_pending(x, eff_exchange_offset(x, end)) : 0;
}
static inline void eff_exchange_wait_params(EffExchange *x, size_t end, const char *what) {
    x->ops->wait_params(x, eff_exchange_offset(x, end), what);
}
/* ZeRO-1: param is the whole parameter buffer */
static inline void eff_exchange_gather_params(EffExchange *x, float *param) { x->ops->gather_params(x, param + x->base); }
void eff_exchange_destroy(EffExchange *x);

/* The MPI transport: on one rank nothing moves; else the bucketed exchange of
 * buckets_mpi.c when overlap or sharded, one MPI all-reduce otherwise. grad:
 * the n gradients (host memory, the CPU backend or a staging copy), of which
 * [base, n) are exchanged. */
EffExchange *eff_exchange_mpi(EffMpi *w, const EffBackend *be, float *grad, size_t base, size_t n, double bucket_mb,
                              int overlap, int sharded);
/* The NCCL transport (CUDA builds; comm_nccl_stub.c otherwise exits); [base, n) of grad as above. */
EffExchange *eff_exchange_nccl(MPI_Comm comm, const EffBackend *be, float *grad, size_t base, size_t n,
                               double bucket_mb, double timeout_s, int sharded);
extern const EffExchangeOps eff_exchange_mpi_ops, eff_exchange_nccl_ops;

#endif
