/* trainer.c: the pieces every stage of the trainer shares -- rank 0's log
 * lines and metrics rows, the parameter hash check, ZeRO-1's ranges and its
 * parameter all-gather. The files of src/train depend one way: trainer.c on
 * nothing above it, step.c on trainer.c, setup.c and epoch.c on both
 * (tests/check_structure.py checks it). */
#define _POSIX_C_SOURCE 200809L
#include "train/trainer.h"
#include "comm/buckets.h"
#include "comm/exchange.h"

#include "common.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

void eff_trainer_log(const EffTrainer *T, const char *fmt, ...) {
    if (T->rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

void eff_trainer_metrics(EffTrainer *T, cJSON *row) {
    if (T->rank != 0) {
        cJSON_Delete(row);
        return;
    }
    char what[1200];
    snprintf(what, sizeof what, "%s/metrics.jsonl", T->cfg.output_dir);
    eff_json_write(row, T->metrics, what);
}

uint64_t eff_fnv1a(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* Every rank must hold bit-identical parameters; checked at start-up and
 * before every checkpoint. */
void eff_trainer_check_identical(EffTrainer *T, const char *when) {
    eff_trainer_params_sync(T);
    EffModel *m = &T->ctx.model;
    size_t bytes = m->ptab.total * sizeof(float);
    float *host = eff_malloc(bytes, "parameter copy");
    m->be->download(m->be, host, m->param, bytes);
    unsigned long long h = eff_fnv1a(host, bytes), *all = eff_malloc(sizeof(unsigned long long) * (size_t)T->world, "hashes");
    eff_free(host);
    eff_mpi_allgather(T->mpi, &h, all, 1, MPI_UNSIGNED_LONG_LONG, "parameter hash all-gather");
    for (int r = 1; r < T->world; r++)
        EFF_CHECK(all[r] == all[0], "%s: parameters on rank %d differ from rank 0 (hash %016llx vs %016llx)", when, r, all[r], all[0]);
    if (T->world > 1) eff_trainer_log(T, "%s: parameters identical on all %d ranks (hash %016llx)\n", when, T->world, all[0]);
    eff_free(all);
}

EffSeg *eff_trainer_owned(const EffTrainer *T, int rank, int *nseg) {
    const EffModel *m = &T->ctx.model;
    int nb = 0; /* the buckets of the exchanged range [train_lo, total), as the exchange cuts it */
    size_t *lo = eff_bucket_bounds(m->ptab.total - m->train_lo, T->cfg.bucket_mb, &nb);
    EffSeg *seg = eff_malloc(sizeof(EffSeg) * (size_t)nb, "optimizer ranges");
    *nseg = eff_bucket_owned(lo, nb, rank, T->world, seg);
    for (int i = 0; i < *nseg; i++) seg[i].lo += m->train_lo;
    eff_free(lo);
    return seg;
}

void eff_trainer_params_sync(EffTrainer *T) {
    if (!T->xchg || !eff_exchange_params_pending(T->xchg, SIZE_MAX)) return;
    eff_trace_begin(T->trace, "parameter all-gather");
    eff_exchange_wait_params(T->xchg, SIZE_MAX, "parameter all-gather");
    eff_trace_end(T->trace, "parameter all-gather");
}
