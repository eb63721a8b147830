/* reduce.cuh: the deterministic column reduction behind BN statistics, SE and
 * global pooling, and the classifier bias gradient.
 *
 * Input: `batch` independent [rows][C] problems. For each (b, column c) it
 * sums two per-element quantities f(b, row, c) -> (q0, q1) in double.
 * Stage 1: grid (batch, min(ceil(C/32), 65535), chunks), 32x8 threads (the
 * geometry is eff_colreduce_grid in launch_geom.h: the batch, which may
 * exceed 65535, is grid.x; the column tiles grid.y, looped beyond 65535
 * (C > 2097120); the chunks, at most 256, grid.z); thread (tx, ty)
 * owns column c = 32*tile + tx (coalesced reads across a warp) and the
 * rows chunk_start + ty, +8, ...; the 8 partials are then summed in a fixed
 * order in shared memory and written to partial[b][chunk][2][C].
 * Stage 2 (per op): sum the chunks in chunk order. No atomics anywhere, and
 * the chunking depends on the shapes only, so results are bitwise
 * reproducible run to run and across devices. */
#ifndef EFFNET_REDUCE_CUH
#define EFFNET_REDUCE_CUH

#include "cuda_common.cuh"

#define EFF_RED_ROWS_PER_CHUNK 512
#define EFF_RED_MAX_CHUNKS 256

template <typename F>
__global__ void eff_colreduce_partial(F f, int rows, int C, int chunks, double *partial) {
    __shared__ double sh[2][EFF_RED_TY][EFF_RED_TX];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int b = blockIdx.x, k = blockIdx.z;
    const long r0 = (long)rows * k / chunks, r1 = (long)rows * (k + 1) / chunks;
    /* column tiles blockIdx.y, + gridDim.y, ...: one pass unless C > 65535 * 32 */
    for (unsigned c0 = blockIdx.y * EFF_RED_TX; c0 < (unsigned)C; c0 += gridDim.y * EFF_RED_TX) {
        const int live = tx < C - (int)c0, c = (int)c0 + (live ? tx : 0); /* no int overflow near 2^31 */
        double q0 = 0.0, q1 = 0.0;
        if (live)
            for (long r = r0 + ty; r < r1; r += EFF_RED_TY) f(b, r, c, q0, q1);
        sh[0][ty][tx] = q0;
        sh[1][ty][tx] = q1;
        __syncthreads();
        if (ty == 0 && live) {
            double s0 = 0.0, s1 = 0.0;
            for (int j = 0; j < EFF_RED_TY; j++) { s0 += sh[0][j][tx]; s1 += sh[1][j][tx]; }
            double *p = partial + (((size_t)b * chunks + k) * 2) * C;
            p[c] = s0;
            p[C + c] = s1;
        }
        __syncthreads(); /* sh is rewritten by the next tile */
    }
}

/* Launch stage 1; returns the chunk count. The partials take
 * batch*chunks*2*C doubles of cu's scratch; `extra` more doubles follow them
 * at *extra_out (NULL-able) for the op's own use. */
template <typename F>
static int eff_colreduce(EffCuda *cu, F f, int batch, long rows, int C, size_t extra, double **partial_out,
                         double **extra_out) {
    const int chunks = eff_row_chunks(rows, EFF_RED_ROWS_PER_CHUNK, EFF_RED_MAX_CHUNKS);
    long long g[3] = {1, 1, 1};
    char why[256];
    if (eff_colreduce_grid(batch, rows, C, chunks, g, why, sizeof why))
        eff_cuda_fail("eff_colreduce", why, __FILE__, __LINE__);
    const size_t np = (size_t)batch * chunks * 2 * C;
    double *partial = eff_cuda_reduce_scratch(cu, np + extra);
    if (extra_out) *extra_out = partial + np;
    const dim3 block(EFF_RED_TX, EFF_RED_TY);
    eff_colreduce_partial<<<eff_grid3(cu, "colreduce", g[0], g[1], g[2], block), block, 0, cu->stream>>>(
        f, (int)rows, C, chunks, partial);
    CUDA_LAUNCHED("colreduce");
    *partial_out = partial;
    return chunks;
}

/* Sum of quantity q of column c of problem b over the chunks, in order. */
__device__ static inline double eff_chunk_sum(const double *partial, int b, int chunks, int q, int C, int c) {
    double s = 0.0;
    for (int k = 0; k < chunks; k++) s += partial[(((size_t)b * chunks + k) * 2 + q) * C + c];
    return s;
}

#endif
