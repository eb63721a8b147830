/* dw_index.cuh: the index math of the depthwise conv kernels (dwconv.cu),
 * plain C and CUDA C++ (index_math.cuh), tested on the CPU by
 * tests/test_kernel_index.c against a brute-force enumeration of the
 * (output, tap) pairs, and through the kernels' own thread functions by
 * tests/gpu/test_kernel_emulate.c against src/ops/dwconv.c.
 *
 * Geometry: NHWC, K x K taps, stride S, padding K / 2 (as src/ops/dwconv.c),
 * output Ho = (H + 2 (K/2) - K) / S + 1. Each thread owns V consecutive
 * channels of one pixel; within an image thread tid is (pixel, channel
 * group) = (tid / CV, tid % CV), CV = C / V, so its element offset is
 * tid * V. Images are grid.y (looped beyond EFF_GRID_Y_MAX).
 *
 * No per-tap division: forward taps of output o along one axis are the
 * k in [k0, k1) with input i0 + k inside the image; the backward-input taps
 * of input i are j in [j0, j1) with output o0 - j and tap k = r + j S, where
 * (o0, r) = divmod(i + pad, S) -- one division per thread by the compile-time
 * stride (a shift), none per tap. */
#ifndef EFFNET_DW_INDEX_CUH
#define EFFNET_DW_INDEX_CUH

#include "index_math.cuh"

#include <stddef.h>

typedef struct DwGeom {
    int N, H, W, C, K, S, pad, Ho, Wo, V, CV;
    uint32_t in_img, out_img;    /* H W C and Ho Wo C: elements per image */
    uint32_t work_fwd, work_bwd; /* threads per image: Ho Wo CV and H W CV */
    uint32_t P;                  /* N Ho Wo: output pixels (weight gradient) */
    EffDivmod cv, wo, wi, ho;    /* by CV, Wo, W, Ho */
} DwGeom;

static inline int dw_out_size(int in, int K, int S) { return (in + 2 * (K / 2) - K) / S + 1; }

/* Fill g for the shape and channel width V; returns NULL, or why the kernels
 * cannot take the shape (checked before every launch). */
static inline const char *dw_geom_init(DwGeom *g, int N, int H, int W, int C, int K, int S, int V) {
    if (K != 3 && K != 5) return "kernel size must be 3 or 5";
    if (S != 1 && S != 2) return "stride must be 1 or 2";
    if (N < 1 || H < 1 || W < 1 || C < 1) return "sizes must be positive";
    if (V < 1 || C % V) return "channels must be a multiple of the vector width";
    g->N = N, g->H = H, g->W = W, g->C = C, g->K = K, g->S = S, g->pad = K / 2, g->V = V, g->CV = C / V;
    g->Ho = dw_out_size(H, K, S), g->Wo = dw_out_size(W, K, S);
    const uint64_t in_img = (uint64_t)H * W * C, out_img = (uint64_t)g->Ho * g->Wo * C;
    const uint64_t P = (uint64_t)N * g->Ho * g->Wo;
    if (in_img > EFF_INDEX_MAX || out_img > EFF_INDEX_MAX) return "one image exceeds 2^31-1 elements";
    if (P > EFF_INDEX_MAX) return "N*Ho*Wo exceeds 2^31-1";
    g->in_img = (uint32_t)in_img, g->out_img = (uint32_t)out_img, g->P = (uint32_t)P;
    g->work_fwd = g->out_img / V, g->work_bwd = g->in_img / V;
    g->cv = eff_divmod_make((uint32_t)g->CV), g->wo = eff_divmod_make((uint32_t)g->Wo);
    g->wi = eff_divmod_make((uint32_t)W), g->ho = eff_divmod_make((uint32_t)g->Ho);
    return NULL;
}

/* Grid of the forward (backward = 0) or input-gradient kernel: threads of
 * an image on x (one per work item), images on y (looped beyond 65535). */
static inline void dw_grid(const DwGeom *g, int backward, uint32_t *gx, uint32_t *gy) {
    *gx = eff_grid_x(backward ? g->work_bwd : g->work_fwd, EFF_INDEX_MAX);
    *gy = eff_grid_y(g->N);
}

/* Grid of the weight-gradient kernel: row chunks on x (at most 512), tiles
 * of tile_c channels on y, capped at ycap (EFF_GRID_Y_MAX in the launcher):
 * block y takes tiles y, y + gy, ... -- one each unless C > ycap tile_c. */
static inline void dw_wgrad_grid(int chunks, int C, int tile_c, uint32_t ycap, uint32_t *gx, uint32_t *gy) {
    const uint32_t tiles = (uint32_t)(C / tile_c + (C % tile_c != 0));
    *gx = (uint32_t)chunks;
    *gy = tiles > ycap ? ycap : tiles;
}

/* Thread tx's channel in the tile at channel c0 (< C), or C (past the end,
 * idle) -- without forming c0 + tx, which may pass INT_MAX. */
EFF_HD static inline int dw_tile_channel(uint32_t c0, int tx, int C) {
    return tx < C - (int)c0 ? (int)c0 + tx : C;
}

/* Thread tid of an image: pixel (h, w) of a width-Wd image, channels c0.. */
typedef struct DwPix {
    int h, w, c0;
} DwPix;

EFF_HD static inline DwPix dw_decode(EffDivmod cv, EffDivmod wd, int V, uint32_t tid) {
    uint32_t q, g, h, w;
    eff_divmod(cv, tid, &q, &g);
    eff_divmod(wd, q, &h, &w);
    DwPix p;
    p.h = (int)h, p.w = (int)w, p.c0 = (int)g * V;
    return p;
}

/* Element offset of channel 0 of pixel (h, w) in an image of width Wd. */
EFF_HD static inline uint32_t dw_off(int h, int w, int Wd, int C) {
    return ((uint32_t)h * (uint32_t)Wd + (uint32_t)w) * (uint32_t)C;
}

/* Offset of tap (kh, kw), channel 0, in w[K][K][C]. */
EFF_HD static inline int dw_woff(int kh, int kw, int K, int C) { return (kh * K + kw) * C; }

/* Forward, one axis: output o reads inputs i0 + k, taps k in [k0, k1). */
typedef struct DwSpan {
    int i0, k0, k1;
} DwSpan;

EFF_HD static inline DwSpan dw_fwd_span(int o, int K, int S, int I) {
    DwSpan s;
    s.i0 = o * S - K / 2;
    s.k0 = s.i0 < 0 ? -s.i0 : 0;
    s.k1 = I - s.i0 < K ? I - s.i0 : K;
    return s;
}

/* Backward input, one axis: input i received from outputs o0 - j through
 * taps k = r + j S, j in [j0, j1) (ascending j: ascending k, the CPU op's
 * order). At most DW_JMAX(K, S) taps. */
typedef struct DwTaps {
    int o0, r, j0, j1;
} DwTaps;
#define DW_JMAX(K, S) (((K) + (S) - 1) / (S))

EFF_HD static inline DwTaps dw_bwd_taps(int i, int K, int S, int O) {
    const int t = i + K / 2; /* >= 0: the division is by the constant S */
    DwTaps d;
    d.o0 = t / S;
    d.r = t - d.o0 * S;
    const int jk = (K - 1 - d.r) / S + 1; /* taps with k <= K - 1 */
    d.j1 = jk < d.o0 + 1 ? jk : d.o0 + 1; /* outputs o >= 0 */
    d.j0 = d.o0 - O + 1 > 0 ? d.o0 - O + 1 : 0; /* outputs o <= O - 1 */
    return d;
}

/* Weight gradient: output pixels p of chunk k are [P k / chunks, P (k+1) / chunks). */
EFF_HD static inline uint32_t dw_chunk_start(uint32_t P, int k, int chunks) {
    return (uint32_t)((uint64_t)P * (uint32_t)k / (uint32_t)chunks);
}

/* The weight-gradient thread walks output pixels p, p + step, ... keeping
 * (n, ho, wo) current by carries instead of dividing p each time. */
typedef struct DwWalk {
    int n, ho, wo;
} DwWalk;

EFF_HD static inline DwWalk dw_walk_start(const DwGeom *g, uint32_t p) {
    uint32_t q, wo, n, ho;
    eff_divmod(g->wo, p, &q, &wo);
    eff_divmod(g->ho, q, &n, &ho);
    DwWalk w;
    w.n = (int)n, w.ho = (int)ho, w.wo = (int)wo;
    return w;
}

EFF_HD static inline void dw_walk_next(DwWalk *w, int step, int Ho, int Wo) {
    w->wo += step;
    while (w->wo >= Wo) {
        w->wo -= Wo;
        if (++w->ho == Ho) w->ho = 0, w->n++;
    }
}

/* The weight gradient sums in fp32, two-level: each thread adds the
 * products of DW_WG_GROUP of its pixels into a group sum, then the group sum
 * into its total; the chunk partials are added the same way. Fixed order,
 * so the result repeats bit for bit. */
#define DW_WG_GROUP 32

/* An upper bound on the roundings any one tap product passes through from
 * the thread's FMA to dw (+= included), for P output pixels in `chunks`
 * chunks of a DW_TY-row block: the error of every dw element is at most
 * gamma_d (|dw0| + sum |g x|), gamma_d = d u / (1 - d u), u = 2^-24. */
EFF_HD static inline int dw_wgrad_depth(uint32_t P, int chunks, int ty) {
    const uint32_t len = P / (uint32_t)chunks + 1, nt = (len + (uint32_t)ty - 1) / (uint32_t)ty;
    const uint32_t g = DW_WG_GROUP, nc = (uint32_t)chunks;
    return (int)((nt < g ? nt : g) + (nt + g - 1) / g + (uint32_t)ty + (nc < g ? nc : g) + (nc + g - 1) / g + 1);
}

/* partial[chunk][K*K][C] of the weight gradient. */
EFF_HD static inline size_t dw_partial_index(int chunk, int tap, int KK, int C, int c) {
    return ((size_t)chunk * KK + tap) * C + c;
}

#endif
