/* reduce.cuh: the deterministic column reduction behind BN statistics, SE and
 * global pooling, the fused train-forward ops, and the classifier bias
 * gradient.
 *
 * Input: `batch` independent [rows][C] problems. For each (b, column c) it
 * sums two per-element quantities (q0, q1) in double.
 * Vectors: a thread owns V adjacent columns (V = 8 bf16/fp16 or 4 fp32 when
 * C is a multiple of it, else 1: eff_red_width, from C and the type alone,
 * so that a fused pass and the pass it replaces always share the layout;
 * 16-byte loads when the pointers are aligned, else V scalar loads of the
 * same values). A block is 256 threads: W = min(C / V, 32) column vectors
 * (tx) by RY = 256 / W rows (ty): no idle lanes for narrow C.
 * Stage 1: grid (batch, min(ceil(C / V / W), 65535), chunks) (EffRedGeom:
 * the batch, which may exceed 65535, is grid.x; the column tiles grid.y,
 * looped beyond 65535; the row chunks, at most EFF_RED_MAX_CHUNKS, grid.z).
 * Thread (tx, ty) sums its columns over the chunk's rows r0 + ty, + RY, ...;
 * then 2 V threads of each block column add its RY partials of one (quantity,
 * lane) in ty order (a fixed order) into partial[b][chunk][2][C].
 * Stage 2 (per op): sum the chunks in chunk order. No atomics anywhere, and
 * the layout depends on the shapes and type only, so results are bitwise
 * reproducible run to run and across devices. The thread and tree code is
 * EFF_HD: eff_colreduce_emulate runs it on the CPU for every thread. */
#ifndef EFFNET_REDUCE_CUH
#define EFFNET_REDUCE_CUH

#include "cuda_common.cuh"
#include "index_math.cuh"
#include "vec.cuh"

#define EFF_RED_ROWS_PER_CHUNK 512
#define EFF_RED_MAX_CHUNKS 1024
#define EFF_RED_THREADS 256

/* Columns per thread for C columns of T: one 16-byte vector if C allows. */
template <typename T> static inline int eff_red_width(long long C) {
    const int v = 16 / (int)sizeof(T);
    return C % v == 0 ? v : 1;
}

/* The layout of one reduction (see the header). */
struct EffRedGeom {
    int V, W, RY, chunks;
    long long grid[3];
};

/* 0, or 1 with the reason in why (eff_colreduce_grid's checks). */
static inline int eff_red_geom(EffRedGeom *g, long long batch, long long rows, long long C, int V, char *why,
                               size_t n) {
    g->chunks = eff_row_chunks((long)rows, EFF_RED_ROWS_PER_CHUNK, EFF_RED_MAX_CHUNKS);
    if (eff_colreduce_grid(batch, rows, C, g->chunks, g->grid, why, n)) return 1;
    const long long cv = C / V;
    g->V = V, g->W = cv < EFF_RED_TX ? (int)cv : EFF_RED_TX, g->RY = EFF_RED_THREADS / g->W;
    const long long tiles = (cv + g->W - 1) / g->W;
    g->grid[1] = tiles > EFF_RED_TILES_MAX ? EFF_RED_TILES_MAX : tiles;
    return 0;
}

/* Rows [r0, r1) of chunk k of `rows` (one division per thread, not per row). */
EFF_HD static inline void eff_chunk_rows(long rows, int k, int chunks, long *r0, long *r1) {
    *r0 = rows * k / chunks;
    *r1 = rows * (k + 1) / chunks;
}

/* The per-element quantities of the BN statistics, x and x^2 (x^2 of a float
 * is exact in double, so a fused multiply-add changes nothing). */
EFF_HD static inline void eff_stats_add(float x, double *q0, double *q1) {
    const double v = x;
    *q0 += v;
    *q1 += v * v;
}

/* V values at p: one 16-byte load when al, else V scalar loads (the same values). */
template <int V, typename T> EFF_HD inline void eff_load_v(float *x, const T *p, int al) {
    if (al) EffVec<V, T>::load(x, p);
    else
        for (int v = 0; v < V; v++) x[v] = eff_tof(p[v]);
}
template <int V, typename T> EFF_HD inline void eff_store_v(T *p, const float *x, int al) {
    if (al) EffVec<V, T>::store(p, x);
    else
        for (int v = 0; v < V; v++) p[v] = eff_fromf<T>(x[v]);
}

/* A row functor -- f.vec<V>(b, r, c0, q0[V], q1[V]) adds row r's quantities
 * of columns c0 .. c0 + V - 1 -- as the per-thread functor the kernel calls:
 * thread (tx, ty) of chunk k over rows r0 + ty, + RY, ... Fused kernels
 * (dwconv.cu) pass their own thread functor instead. */
template <int V, typename F> struct EffRows {
    F f;
    EFF_HD void operator()(int b, int rows, int chunks, int k, int j, int live, int ty, int RY, double *q0,
                           double *q1) const {
        long r0, r1;
        eff_chunk_rows(rows, k, chunks, &r0, &r1);
        for (int v = 0; v < V; v++) q0[v] = 0.0, q1[v] = 0.0;
        if (!live) return;
        EFF_NO_UNROLL /* stride RY: no trip-count division */
        for (long r = r0 + ty; r < r1; r += RY) f.template vec<V>(b, r, j * V, q0, q1);
    }
};

/* A scalar row functor f(b, r, c, q0, q1) (device-only ones) as a V = 1 one. */
template <typename F> struct EffLanes {
    F f;
    template <int V> __device__ void vec(int b, long r, int c0, double *q0, double *q1) const {
        f(b, r, c0, q0[0], q1[0]);
    }
};

/* Block column tx's RY partials of quantity / lane t (t = q V + v), in ty
 * order, into p[q C + v]. */
template <int V>
EFF_HD inline void eff_colreduce_tree(const double (*sh)[EFF_RED_THREADS][V], int tx, int W, int RY, int t,
                                      double *p, int C) {
    const int q = t / V, v = t - q * V; /* V is a constant: a shift */
    double s = 0.0;
    for (int y = 0; y < RY; y++) s += sh[q][y * W + tx][v];
    p[(size_t)q * C + v] = s;
}

/* partial[b][chunk][2][C]: quantity 0 of column c at the result, 1 at + C. */
EFF_HD static inline size_t eff_partial_at(int b, int k, int chunks, int C, int c) {
    return ((size_t)b * chunks + k) * 2 * C + c;
}

template <int V, typename Th>
__global__ void __launch_bounds__(EFF_RED_THREADS)
    eff_colreduce_partial(Th th, int rows, int C, int chunks, double *partial) {
    __shared__ double sh[2][EFF_RED_THREADS][V];
    const int W = blockDim.x, RY = blockDim.y, tx = threadIdx.x, ty = threadIdx.y;
    const int b = blockIdx.x, k = blockIdx.z, cv = C / V; /* V: a shift */
    /* column-vector tiles blockIdx.y, + gridDim.y, ...: one pass unless C / V > 65535 W */
    for (unsigned j0 = blockIdx.y * W; j0 < (unsigned)cv; j0 += gridDim.y * W) {
        const int live = tx < cv - (int)j0, j = (int)j0 + (live ? tx : 0); /* no int overflow near 2^31 */
        double q0[V], q1[V]; /* in registers, then shared memory once */
        th(b, rows, chunks, k, j, live, ty, RY, q0, q1);
        EFF_UNROLL
        for (int v = 0; v < V; v++) sh[0][ty * W + tx][v] = q0[v], sh[1][ty * W + tx][v] = q1[v];
        __syncthreads();
        if (live) {
            EFF_NO_UNROLL
            for (int t = ty; t < 2 * V; t += RY)
                eff_colreduce_tree<V>(sh, tx, W, RY, t, partial + eff_partial_at(b, k, chunks, C, j * V), C);
        }
        __syncthreads(); /* sh is rewritten by the next tile */
    }
}

/* The same on the host (kernel_emu.h): every block and thread of the grid,
 * grid.y capped at ycap (the kernel loops over the tiles beyond); partial
 * as eff_colreduce_th's: batch * chunks * 2 * C doubles. */
template <int V, typename Th>
static void eff_colreduce_emulate(const Th &th, int batch, int rows, int C, const EffRedGeom &g, long long ycap,
                                  double *partial) {
    double sh[2][EFF_RED_THREADS][V];
    const int cv = C / V, W = g.W, RY = g.RY;
    const long long tiles = g.grid[1] < ycap ? g.grid[1] : ycap;
    for (int b = 0; b < batch; b++)
        for (int k = 0; k < g.chunks; k++)
            for (long long by = 0; by < tiles; by++)
                for (long long j0 = by * W; j0 < cv; j0 += tiles * W) {
                    for (int tx = 0; tx < W; tx++) {
                        const int live = tx < cv - (int)j0, j = (int)j0 + (live ? tx : 0);
                        for (int ty = 0; ty < RY; ty++)
                            th(b, rows, g.chunks, k, j, live, ty, RY, sh[0][ty * W + tx], sh[1][ty * W + tx]);
                    }
                    for (int tx = 0; tx < W && tx < cv - (int)j0; tx++)
                        for (int t = 0; t < 2 * V; t++)
                            eff_colreduce_tree<V>(sh, tx, W, RY, t,
                                                  partial + eff_partial_at(b, k, g.chunks, C, ((int)j0 + tx) * V), C);
                }
}

/* Launch stage 1 with thread functor th on V columns per thread; returns the
 * chunk count. The partials take batch*chunks*2*C doubles of cu's scratch;
 * `extra` more doubles follow them at *extra_out (NULL-able). */
template <int V, typename Th>
static int eff_colreduce_th(EffCuda *cu, Th th, int batch, long rows, int C, size_t extra, double **partial_out,
                            double **extra_out) {
    EffRedGeom g;
    char why[256];
    if (eff_red_geom(&g, batch, rows, C, V, why, sizeof why)) eff_cuda_fail("eff_colreduce", why, __FILE__, __LINE__);
    const size_t np = (size_t)batch * g.chunks * 2 * C;
    double *partial = eff_cuda_reduce_scratch(cu, np + extra);
    if (extra_out) *extra_out = partial + np;
    const dim3 block(g.W, g.RY);
    eff_colreduce_partial<V, Th><<<eff_grid3(cu, "colreduce", g.grid[0], g.grid[1], g.grid[2], block), block, 0,
                                   cu->stream>>>(th, (int)rows, C, g.chunks, partial);
    CUDA_LAUNCHED("colreduce");
    *partial_out = partial;
    return g.chunks;
}

/* With a vector row functor f.vec<V> (V: eff_red_width of C and the type). */
template <int V, typename F>
static int eff_colreduce_v(EffCuda *cu, F f, int batch, long rows, int C, size_t extra, double **partial_out,
                           double **extra_out) {
    return eff_colreduce_th<V>(cu, EffRows<V, F>{f}, batch, rows, C, extra, partial_out, extra_out);
}

/* With a scalar device row functor f(b, r, c, q0, q1): one column per thread. */
template <typename F>
static int eff_colreduce(EffCuda *cu, F f, int batch, long rows, int C, size_t extra, double **partial_out,
                         double **extra_out) {
    return eff_colreduce_v<1>(cu, EffLanes<F>{f}, batch, rows, C, extra, partial_out, extra_out);
}

/* Sum of quantity q of column c of problem b over the chunks, in order. */
EFF_HD static inline double eff_chunk_sum(const double *partial, int b, int chunks, int q, int C, int c) {
    double s = 0.0;
    for (int k = 0; k < chunks; k++) s += partial[(((size_t)b * chunks + k) * 2 + q) * C + c];
    return s;
}

#endif
