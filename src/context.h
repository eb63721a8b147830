/* context.h: all per-process state of one effnet run, passed down explicitly
 * (no mutable globals): backend, model, threads, seeds. */
#ifndef EFFNET_CONTEXT_H
#define EFFNET_CONTEXT_H

#include "backend/backend.h"
#include "model.h"

#include <stdint.h>

typedef struct EffContext {
    const EffBackend *be;
    EffModel model;
    int threads;
    uint64_t seed;
} EffContext;

/* Set OpenMP and BLAS thread counts (threads <= 0: leave the defaults). */
void eff_set_threads(int threads);

#endif
