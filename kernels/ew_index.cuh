/* ew_index.cuh: the index math of the row-wise elementwise kernels over
 * [rows][C] (batchnorm.cu, se.cu) and of the flat ones (elementwise.cu);
 * plain C and CUDA C++ (index_math.cuh), tested on the CPU by
 * tests/test_kernel_index.c.
 *
 * A grid-stride loop over the total = rows * CV vectors of V channels
 * (CV = C / V) needs each vector's channel group i % CV. Instead of a
 * division per element, the walk carries it: the thread starts at vector
 * tid with group tid % CV (one division per thread) and each step adds the
 * grid's stride to the index and stride % CV to the group, wrapping once.
 * total <= EFF_INDEX_MAX and stride <= EFF_GRID_X_CAP * EFF_BLOCK < 2^31,
 * so index + stride never wraps 32 bits. Launchers split larger tensors
 * into row pieces (eff_rows_per_piece). */
#ifndef EFFNET_EW_INDEX_CUH
#define EFFNET_EW_INDEX_CUH

#include "index_math.cuh"

typedef struct EffWalk {
    uint32_t total, cv, step, cstep; /* vectors, groups per row, grid stride, stride % cv */
    EffDivmod cvd;                   /* division by cv */
} EffWalk;

static inline EffWalk eff_walk_make(uint32_t total, uint32_t cv, uint32_t nthreads) {
    EffWalk w;
    w.total = total, w.cv = cv, w.step = nthreads, w.cstep = nthreads % cv, w.cvd = eff_divmod_make(cv);
    return w;
}

EFF_HD static inline void eff_walk_first(const EffWalk *w, uint32_t tid, uint32_t *i, uint32_t *c) {
    *i = tid;
    *c = tid - eff_div(w->cvd, tid) * w->cv; /* tid < 2^31: threads <= EFF_GRID_X_CAP * EFF_BLOCK */
}

EFF_HD static inline void eff_walk_next(const EffWalk *w, uint32_t *i, uint32_t *c) {
    *i += w->step;
    *c += w->cstep;
    if (*c >= w->cv) *c -= w->cv;
}

/* Rows per launch so that rows * cv <= limit (EFF_INDEX_MAX in the
 * launchers; smaller in the tests). */
static inline long eff_rows_per_piece(int cv, uint32_t limit) {
    const long r = (long)(limit / (uint32_t)cv);
    return r < 1 ? 1 : r;
}

/* The grid of a walk over `total` vectors (per image for grid.y > 1). */
static inline EffWalk eff_walk_for(uint32_t total, int cv, uint32_t *blocks) {
    *blocks = eff_grid_x(total, EFF_GRID_X_CAP);
    return eff_walk_make(total, (uint32_t)cv, *blocks * EFF_BLOCK);
}

#endif
