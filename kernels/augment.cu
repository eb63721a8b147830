/* augment.cu: the seed's augmentation (src/data/augment.c) on a CUDA device.
 *
 * Design. One thread block per image, AUG_THREADS threads, each thread owning
 * the output pixels tid, tid + nt, tid + 2 nt, ... No intermediate image is
 * stored: resize, flip, rotate and pad+crop are all coordinate maps, so each
 * output pixel is traced back through crop -> rotate -> flip to one pixel of
 * the resized image, and that pixel is recomputed from the source with PIL's
 * separable fixed-point filter (horizontal taps rounded to uint8 first, then
 * the vertical taps, exactly as Pillow's two passes would give it). ColorJitter
 * is per pixel except contrast, which needs the mean luma of the image as it
 * is when contrast runs (after the ops drawn before it). So the train kernel
 * has two phases around a block reduction: phase 1 maps each pixel through the
 * geometry and the ops before contrast and sums its luma (integers, so the sum
 * is exact and order-free); phase 2 applies contrast and the ops after it,
 * normalises through a LUT and writes float NHWC (and uint8 if asked). Phase 1
 * keeps its first AUG_KEEP pixels per thread in registers (all of them up to
 * S = 32); pixels beyond that are recomputed in phase 2 (ALU work only, no
 * scratch buffer; not measured against a global-memory scratch, since no GPU
 * was available when this was written). The source image goes to shared
 * memory when it fits (CIFAR: 3 KB). Per-pixel recomputation of a shrinking resize costs
 * kx*ky taps per pixel instead of kx+ky: fine for the upsampling this trainer
 * does (32 -> S), slow for big downsampling.
 *
 * Bit-exactness. Everything image-dependent is integer or IEEE float/double
 * arithmetic in __host__ __device__ functions; eff_gpu_aug_reference_host runs
 * the same functions (and the same per-thread pixel split) on the CPU, and the
 * test checks that against src/data/augment.c with max difference 0. Products
 * go through mul_f/mul_d, which are never fused into an FMA (__fmul_rn and
 * __dmul_rn on the device, a volatile round trip on the host), and divisions
 * use __fdiv_rn/__ddiv_rn, so -fmad, --use_fast_math or the host compiler's
 * -ffp-contract cannot change a result. Anything that needs libm's cos/sin or
 * printf/strtod (rotation matrix, rounded to 15 decimals like Image.rotate) is
 * computed per image on the host with glibc, as in augment.c, and uploaded as
 * 16.16 fixed-point integers, so the device never evaluates a transcendental. */
#include <cuda_runtime.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "common.h"
}
#include "augment_cuda.h"
#include "cuda_ops.h" /* CUDA_CHECK */

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* #pragma unroll for nvcc's device pass only (the host compiler warns on it) */
#ifdef __CUDA_ARCH__
#define AUG_UNROLL _Pragma("unroll")
#else
#define AUG_UNROLL
#endif

enum { AUG_THREADS = 512, AUG_KEEP = 2, AUG_SMEM_SRC_MAX = 40 * 1024, AUG_PREC = 22 };
enum { ROT_IDENTITY = 0, ROT_180, ROT_90, ROT_270, ROT_AFFINE };

/* ---- arithmetic that rounds exactly like augment.c (no FMA contraction) ------ */

__host__ __device__ static inline float mul_f(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    volatile float p = a * b;
    return p;
#endif
}
__host__ __device__ static inline double mul_d(double a, double b) {
#ifdef __CUDA_ARCH__
    return __dmul_rn(a, b);
#else
    volatile double p = a * b;
    return p;
#endif
}
__host__ __device__ static inline float div_f(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}
__host__ __device__ static inline double div_d(double a, double b) {
#ifdef __CUDA_ARCH__
    return __ddiv_rn(a, b);
#else
    return a / b;
#endif
}

/* ---- per-image parameters, as the kernel reads them ----------------------- */

typedef struct {
    int64_t src;           /* index of the resident source image */
    int flip;              /* mirror the resized image left-right */
    int rot;               /* ROT_*: Image.rotate's fast paths, or the affine map */
    int a[6];              /* ROT_AFFINE, 16.16: xin = (a2 + y a1 + x a0) >> 16, yin = (a5 + y a4 + x a3) >> 16 */
    int crop_top, crop_left;
    int order[4];          /* 0 brightness, 1 contrast, 2 saturation, 3 hue */
    float bright, contrast, sat; /* ImageEnhance alphas, C floats as in augment.c */
    int hue_shift;         /* uint8 added to H: (uint8_t)(int)(hue * 255) */
} AugImg;

/* The resize weights (eff_resize_plan's) plus sizes: device or host pointers. */
typedef struct {
    int in_h, in_w, S, pad, kx, ky, need_h, need_v;
    const int *bx, *by;     /* (first, count) per output column / row */
    const int32_t *wx, *wy; /* kx (ky) fixed-point weights per output column (row) */
} AugGeom;

/* Pixels are packed r | g << 8 | b << 16. */
__host__ __device__ static inline uint32_t pack3(int r, int g, int b) {
    return (uint32_t)r | ((uint32_t)g << 8) | ((uint32_t)b << 16);
}
__host__ __device__ static inline int ch(uint32_t v, int c) { return (int)((v >> (8 * c)) & 255u); }
__host__ __device__ static inline uint32_t load3(const uint8_t *q) { return pack3(q[0], q[1], q[2]); }

/* ---- resize: Pillow Resample.c, one output pixel ---------------------------- */

__host__ __device__ static inline int clip8_fixed(int in) {
    if (in >= (1 << AUG_PREC << 8)) return 255;
    if (in <= 0) return 0;
    return in >> AUG_PREC;
}

/* The horizontal pass at source row `row`, output column x (uint8 result). */
__host__ __device__ static inline uint32_t resize_h(const AugGeom *g, const uint8_t *src, int row, int x) {
    int xmin = g->bx[2 * x], xmax = g->bx[2 * x + 1];
    const int32_t *k = g->wx + (size_t)x * g->kx;
    const uint8_t *q = src + ((size_t)row * g->in_w + xmin) * 3;
    int s0 = 1 << (AUG_PREC - 1), s1 = s0, s2 = s0;
    for (int i = 0; i < xmax; i++) {
        int w = k[i];
        s0 += q[3 * i] * w;
        s1 += q[3 * i + 1] * w;
        s2 += q[3 * i + 2] * w;
    }
    return pack3(clip8_fixed(s0), clip8_fixed(s1), clip8_fixed(s2));
}

/* Pixel (y, x) of the S x S resized image. */
__host__ __device__ static inline uint32_t resize_pixel(const AugGeom *g, const uint8_t *src, int y, int x) {
    if (!g->need_v) {
        if (!g->need_h) return load3(src + ((size_t)y * g->in_w + x) * 3);
        return resize_h(g, src, y, x);
    }
    int ymin = g->by[2 * y], ymax = g->by[2 * y + 1];
    const int32_t *k = g->wy + (size_t)y * g->ky;
    int s0 = 1 << (AUG_PREC - 1), s1 = s0, s2 = s0;
    for (int j = 0; j < ymax; j++) {
        uint32_t v = g->need_h ? resize_h(g, src, ymin + j, x) : load3(src + ((size_t)(ymin + j) * g->in_w + x) * 3);
        int w = k[j];
        s0 += ch(v, 0) * w;
        s1 += ch(v, 1) * w;
        s2 += ch(v, 2) * w;
    }
    return pack3(clip8_fixed(s0), clip8_fixed(s1), clip8_fixed(s2));
}

/* ---- geometry: crop <- rotate <- flip <- resize, one output pixel ------------ */

__host__ __device__ static inline uint32_t geom_pixel(const AugGeom *g, const AugImg *p, const uint8_t *src, int y,
                                                      int x) {
    int S = g->S;
    /* pad + crop: pixel (y, x) of the crop is (top + y - pad, left + x - pad) of the rotated image */
    int ry = p->crop_top + y - g->pad, rx = p->crop_left + x - g->pad;
    if (ry < 0 || ry >= S || rx < 0 || rx >= S) return 0;
    /* rotate (Pillow Geometry.c / Image.rotate), into the flipped image */
    int fy, fx;
    switch (p->rot) {
    case ROT_IDENTITY: fy = ry; fx = rx; break;
    case ROT_180: fy = S - 1 - ry; fx = S - 1 - rx; break;
    case ROT_90: fy = rx; fx = S - 1 - ry; break;
    case ROT_270: fy = S - 1 - rx; fx = ry; break;
    default: {
        /* affine_fixed's incremental sums, in closed form (exact in integers) */
        int xx = p->a[2] + ry * p->a[1] + rx * p->a[0];
        int yy = p->a[5] + ry * p->a[4] + rx * p->a[3];
        fx = xx >> 16; /* arithmetic shift, as in Pillow */
        fy = yy >> 16;
        if (fx < 0 || fx >= S || fy < 0 || fy >= S) return 0;
        break;
    }
    }
    if (p->flip) fx = S - 1 - fx;
    return resize_pixel(g, src, fy, fx);
}

/* ---- colour: Pillow Blend.c / Convert.c, torchvision adjust_hue ------------- */

/* ImagingBlend(in1, in2, alpha), alpha a C float. */
__host__ __device__ static inline int blend(int in1, int in2, float alpha) {
    float t = (float)in1 + mul_f(alpha, (float)(in2 - in1));
    if (alpha >= 0 && alpha <= 1.0f) return (int)t;
    if (t <= 0.0f) return 0;
    if (t >= 255.0f) return 255;
    return (int)t;
}

__host__ __device__ static inline int luma(uint32_t v) {
    return (ch(v, 0) * 19595 + ch(v, 1) * 38470 + ch(v, 2) * 7471 + 0x8000) >> 16;
}

__host__ __device__ static inline int clip8i(int v) { return v <= 0 ? 0 : v >= 255 ? 255 : v; }

/* C's round() for x >= 0 */
__host__ __device__ static inline int round_pos(double x) {
    double r = floor(x);
    if (x - r >= 0.5) r += 1.0;
    return (int)r;
}

/* eff_img_hue for one pixel: Pillow's rgb2hsv_row, H += shift (mod 256), hsv2rgb. */
__host__ __device__ static inline uint32_t hue_pixel(uint32_t v, int shift) {
    int r = ch(v, 0), g = ch(v, 1), b = ch(v, 2);
    int maxc = r > g ? (r > b ? r : b) : (g > b ? g : b);
    int minc = r < g ? (r < b ? r : b) : (g < b ? g : b);
    int uh, us, uv = maxc;
    if (minc == maxc) {
        uh = 0;
        us = 0;
    } else {
        float h, cr = (float)(maxc - minc);
        float s = div_f(cr, (float)maxc);
        float rc = div_f((float)(maxc - r), cr);
        float gc = div_f((float)(maxc - g), cr);
        float bc = div_f((float)(maxc - b), cr);
        if (r == maxc) h = bc - gc;
        else if (g == maxc) h = (float)((2.0 + (double)rc) - (double)bc);
        else h = (float)((4.0 + (double)gc) - (double)rc);
        double hx = div_d((double)h, 6.0) + 1.0;
        h = (float)(hx >= 1.0 ? hx - 1.0 : hx);
        uh = clip8i((int)mul_d((double)h, 255.0));
        us = clip8i((int)mul_d((double)s, 255.0));
    }
    uh = (uh + shift) & 255;
    if (us == 0) return pack3(uv, uv, uv);
    double h6 = div_d(mul_d((double)(float)uh, 6.0), 255.0);
    int ii = (int)floor(h6);
    float f = (float)(h6 - (double)(float)ii);
    float fs = (float)div_d((double)(float)us, 255.0);
    double fuv = (double)(float)uv;
    int pp = round_pos(mul_d(fuv, 1.0 - (double)fs));
    int qq = round_pos(mul_d(fuv, 1.0 - (double)mul_f(fs, f)));
    int tt = round_pos(mul_d(fuv, 1.0 - mul_d((double)fs, 1.0 - (double)f)));
    int up = clip8i(pp), uq = clip8i(qq), ut = clip8i(tt);
    switch (ii % 6) {
    case 0: return pack3(uv, ut, up);
    case 1: return pack3(uq, uv, up);
    case 2: return pack3(up, uv, ut);
    case 3: return pack3(up, uq, uv);
    case 4: return pack3(ut, up, uv);
    default: return pack3(uv, up, uq);
    }
}

/* One ColorJitter op; `mean` is the contrast op's int(mean luma + 0.5). */
__host__ __device__ static inline uint32_t jitter_op(const AugImg *p, int op, uint32_t v, int mean) {
    switch (op) {
    case 0: return pack3(blend(0, ch(v, 0), p->bright), blend(0, ch(v, 1), p->bright), blend(0, ch(v, 2), p->bright));
    case 1:
        return pack3(blend(mean, ch(v, 0), p->contrast), blend(mean, ch(v, 1), p->contrast),
                     blend(mean, ch(v, 2), p->contrast));
    case 2: {
        int gl = luma(v);
        return pack3(blend(gl, ch(v, 0), p->sat), blend(gl, ch(v, 1), p->sat), blend(gl, ch(v, 2), p->sat));
    }
    default: return hue_pixel(v, p->hue_shift);
    }
}

/* Geometry, then the jitter ops drawn before contrast. */
__host__ __device__ static inline uint32_t pre_contrast(const AugGeom *g, const AugImg *p, const uint8_t *src, int i) {
    uint32_t v = geom_pixel(g, p, src, i / g->S, i % g->S);
    for (int k = 0; k < 4 && p->order[k] != 1; k++) v = jitter_op(p, p->order[k], v, 0);
    return v;
}

/* Contrast and the ops after it. */
__host__ __device__ static inline uint32_t post_contrast(const AugImg *p, uint32_t v, int mean) {
    int k = 0;
    while (p->order[k] != 1) k++;
    for (; k < 4; k++) v = jitter_op(p, p->order[k], v, mean);
    return v;
}

/* ImageStat's mean of the L image, then int(mean + 0.5). */
__host__ __device__ static inline int contrast_mean(unsigned long long sum, int npix) {
    double mean = div_d((double)sum, (double)npix);
    return (int)(mean + 0.5);
}

/* ToTensor + Normalize through the LUT, and the optional uint8 copy. */
__host__ __device__ static inline void store_pixel(float *o, uint8_t *u, int i, uint32_t v, const float *lut) {
    for (int c = 0; c < 3; c++) o[3 * i + c] = lut[256 * c + ch(v, c)];
    if (u)
        for (int c = 0; c < 3; c++) u[3 * i + c] = (uint8_t)ch(v, c);
}

/* ---- the work of one thread; the host reference calls these for every tid ---- */

__host__ __device__ static inline void thread_test(const AugGeom *g, const uint8_t *src, int tid, int nt, float *o,
                                                   uint8_t *u, const float *lut) {
    int S = g->S, npix = S * S;
    for (int i = tid; i < npix; i += nt) store_pixel(o, u, i, resize_pixel(g, src, i / S, i % S), lut);
}

/* Phase 1: returns this thread's luma sum; keep[] holds its first AUG_KEEP pixels. */
__host__ __device__ static inline unsigned long long thread_phase1(const AugGeom *g, const AugImg *p,
                                                                   const uint8_t *src, int tid, int nt,
                                                                   uint32_t keep[AUG_KEEP]) {
    int npix = g->S * g->S;
    unsigned long long sum = 0;
AUG_UNROLL
    for (int j = 0; j < AUG_KEEP; j++) {
        int i = tid + j * nt;
        keep[j] = 0;
        if (i < npix) {
            keep[j] = pre_contrast(g, p, src, i);
            sum += (unsigned long long)luma(keep[j]);
        }
    }
    for (int i = tid + AUG_KEEP * nt; i < npix; i += nt) sum += (unsigned long long)luma(pre_contrast(g, p, src, i));
    return sum;
}

__host__ __device__ static inline void thread_phase2(const AugGeom *g, const AugImg *p, const uint8_t *src, int tid,
                                                     int nt, const uint32_t keep[AUG_KEEP], int mean, float *o,
                                                     uint8_t *u, const float *lut) {
    int npix = g->S * g->S;
AUG_UNROLL
    for (int j = 0; j < AUG_KEEP; j++) {
        int i = tid + j * nt;
        if (i < npix) store_pixel(o, u, i, post_contrast(p, keep[j], mean), lut);
    }
    for (int i = tid + AUG_KEEP * nt; i < npix; i += nt)
        store_pixel(o, u, i, post_contrast(p, pre_contrast(g, p, src, i), mean), lut);
}

/* ---- the kernel: one block per image ---------------------------------------- */

typedef struct {
    AugGeom g;
    const uint8_t *images; /* resident sources, n x in_h x in_w x 3 */
    const AugImg *imgs;    /* one per block */
    const float *lut;      /* 3 x 256 */
    float *out;
    uint8_t *u8;
    int train, smem_src;
} AugArgs;

__device__ static unsigned long long block_sum(unsigned long long v, unsigned long long *part) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < nw ? part[lane] : 0ull;
        for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
        if (lane == 0) part[32] = v;
    }
    __syncthreads();
    return part[32];
}

__global__ void __launch_bounds__(AUG_THREADS) aug_kernel(AugArgs A) {
    __shared__ float s_lut[3 * 256];
    __shared__ unsigned long long s_part[33];
    __shared__ AugImg s_img;
    extern __shared__ uint4 s_src4[]; /* the source image, when A.smem_src */
    const AugImg *p = &s_img;
    int tid = threadIdx.x, nt = blockDim.x, npix = A.g.S * A.g.S;
    size_t img_bytes = (size_t)A.g.in_h * A.g.in_w * 3;
    const uint8_t *gsrc = A.images + (size_t)A.imgs[blockIdx.x].src * img_bytes;
    if (tid == 0) s_img = A.imgs[blockIdx.x];
    for (int i = tid; i < 3 * 256; i += nt) s_lut[i] = A.lut[i];
    const uint8_t *src = gsrc;
    if (A.smem_src) {
        uint8_t *s = (uint8_t *)s_src4;
        if (img_bytes % 16 == 0) { /* cudaMalloc'd base, so 16-byte aligned */
            const uint4 *g4 = (const uint4 *)gsrc;
            for (size_t i = tid; i < img_bytes / 16; i += nt) s_src4[i] = g4[i];
        } else {
            for (size_t i = tid; i < img_bytes; i += nt) s[i] = gsrc[i];
        }
        src = s;
    }
    __syncthreads();
    float *o = A.out + (size_t)blockIdx.x * npix * 3;
    uint8_t *u = A.u8 ? A.u8 + (size_t)blockIdx.x * npix * 3 : NULL;
    if (!A.train) { /* uniform per launch */
        thread_test(&A.g, src, tid, nt, o, u, s_lut);
        return;
    }
    uint32_t keep[AUG_KEEP];
    unsigned long long sum = thread_phase1(&A.g, p, src, tid, nt, keep);
    int mean = contrast_mean(block_sum(sum, s_part), npix);
    thread_phase2(&A.g, p, src, tid, nt, keep, mean, o, u, s_lut);
}

/* ---- host side: parameters, weights, LUT ---------------------------------------- */

/* Python's round(x, 15), as augment.c: glibc's printf and strtod are exact. */
static double round15(double x) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.15f", x);
    return strtod(buf, NULL);
}

static int floor_int(double v) { return v < 0.0 ? (int)floor(v) : (int)v; }
static int fix16(double v) { return floor_int(mul_d(v, 65536.0) + 0.5); }

static int check_fixed(const double m[6], int x, int y) {
    return fabs(mul_d(x, m[0]) + mul_d(y, m[1]) + m[2]) < 32768.0 &&
           fabs(mul_d(x, m[3]) + mul_d(y, m[4]) + m[5]) < 32768.0;
}

/* eff_img_rotate_nearest's choice of path and its matrix, for an h x w image. */
static void rotation_params(double angle, int h, int w, AugImg *ai) {
    memset(ai->a, 0, sizeof ai->a);
    double a = fmod(angle, 360.0);
    if (a != 0.0) {
        if (a < 0) a += 360.0;
    } else {
        a = 0.0;
    }
    if (a == 0.0) { ai->rot = ROT_IDENTITY; return; }
    if (a == 180.0) { ai->rot = ROT_180; return; }
    if ((a == 90.0 || a == 270.0) && w == h) { ai->rot = a == 90.0 ? ROT_90 : ROT_270; return; }
    double rad = -(a * (M_PI / 180.0));
    double m[6] = {round15(cos(rad)), round15(sin(rad)), 0.0, round15(-sin(rad)), round15(cos(rad)), 0.0};
    double cx = w / 2.0, cy = h / 2.0;
    double t2 = mul_d(m[0], -cx) + mul_d(m[1], -cy) + m[2];
    double t5 = mul_d(m[3], -cx) + mul_d(m[4], -cy) + m[5];
    m[2] = t2 + cx;
    m[5] = t5 + cy;
    if (m[1] == 0 && m[3] == 0) { ai->rot = ROT_IDENTITY; return; } /* Pillow's scale-1 shift-0 path */
    /* Pillow's floating-point fallback is for corners beyond +-32768: impossible for S <= 4096. */
    EFF_CHECK(check_fixed(m, 0, 0) && check_fixed(m, w, h) && check_fixed(m, 0, h) && check_fixed(m, w, 0),
              "GPU augmentation: rotation by %g degrees of a %dx%d image leaves Pillow's fixed-point range; "
              "HINT: this needs sizes above 4096, which the augmentation does not support",
              angle, h, w);
    ai->rot = ROT_AFFINE;
    ai->a[0] = fix16(m[0]);
    ai->a[1] = fix16(m[1]);
    ai->a[3] = fix16(m[3]);
    ai->a[4] = fix16(m[4]);
    ai->a[2] = fix16(m[2] + mul_d(m[0], 0.5) + mul_d(m[1], 0.5));
    ai->a[5] = fix16(m[5] + mul_d(m[3], 0.5) + mul_d(m[4], 0.5));
}

static void check_config(const eff_aug_config *cfg, int in_h, int in_w) {
    EFF_CHECK(cfg->size >= 1 && cfg->size <= 4096, "GPU augmentation: resolution %d is outside 1..4096", cfg->size);
    EFF_CHECK(cfg->pipeline == EFF_PIPE_SEED, "GPU augmentation: only the seed's pipeline runs on the GPU (the ImageNet "
              "one runs in the CPU loader)\nHINT: set data.gpu_augment = auto");
    EFF_CHECK(cfg->pad >= 0 && cfg->pad <= 1024, "GPU augmentation: crop padding %d is outside 0..1024", cfg->pad);
    EFF_CHECK(in_h >= 1 && in_w >= 1 && in_h <= 65536 && in_w <= 65536,
              "GPU augmentation: input size %dx%d is outside 1..65536", in_h, in_w);
    for (int c = 0; c < 3; c++)
        EFF_CHECK(cfg->std[c] > 0, "GPU augmentation: Normalize std[%d] = %g must be positive", c,
                  (double)cfg->std[c]);
}

/* The kernel's view of one image's eff_aug_params (validated). */
static void make_img_params(const eff_aug_config *cfg, const eff_aug_params *p, int64_t src, AugImg *ai) {
    memset(ai, 0, sizeof *ai);
    ai->src = src;
    int S = cfg->size, seen = 0;
    EFF_CHECK(isfinite(p->angle), "GPU augmentation: rotation angle %g is not finite", p->angle);
    EFF_CHECK(p->crop_top >= 0 && p->crop_top <= 2 * cfg->pad && p->crop_left >= 0 && p->crop_left <= 2 * cfg->pad,
              "GPU augmentation: crop offset (%d, %d) is outside 0..2*pad = %d", p->crop_top, p->crop_left,
              2 * cfg->pad);
    for (int k = 0; k < 4; k++) {
        EFF_CHECK(p->order[k] >= 0 && p->order[k] < 4 && !(seen & (1 << p->order[k])),
                  "GPU augmentation: ColorJitter order {%d, %d, %d, %d} is not a permutation of 0..3", p->order[0],
                  p->order[1], p->order[2], p->order[3]);
        seen |= 1 << p->order[k];
        ai->order[k] = p->order[k];
    }
    EFF_CHECK(p->hue >= -0.5 && p->hue <= 0.5, "GPU augmentation: hue factor %g is outside [-0.5, 0.5]", p->hue);
    EFF_CHECK(isfinite(p->brightness) && isfinite(p->contrast) && isfinite(p->saturation),
              "GPU augmentation: jitter factors (%g, %g, %g) must be finite", p->brightness, p->contrast,
              p->saturation);
    ai->flip = p->flip != 0;
    rotation_params(p->angle, S, S, ai);
    ai->crop_top = p->crop_top;
    ai->crop_left = p->crop_left;
    ai->bright = (float)p->brightness;
    ai->contrast = (float)p->contrast;
    ai->sat = (float)p->saturation;
    ai->hue_shift = (uint8_t)(int)(p->hue * 255);
}

static void make_lut(const eff_aug_config *cfg, float *lut) {
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) lut[256 * c + v] = ((float)v / 255.0f - cfg->mean[c]) / cfg->std[c];
}

/* Sizes and host weight pointers of a resize plan. */
static AugGeom geom_from_plan(const eff_aug_config *cfg, const eff_resize_plan *rp) {
    AugGeom g;
    g.in_h = rp->in_h; g.in_w = rp->in_w; g.S = cfg->size; g.pad = cfg->pad;
    g.kx = rp->kx; g.ky = rp->ky;
    g.need_h = rp->in_w != rp->out_w;
    g.need_v = rp->in_h != rp->out_h;
    g.bx = rp->bx; g.by = rp->by; g.wx = rp->wx; g.wy = rp->wy;
    return g;
}

extern "C" void eff_gpu_aug_reference_host(const eff_aug_config *cfg, const uint8_t *src, int in_h, int in_w,
                                           const eff_aug_params *p, int train, float *out, uint8_t *u8) {
    check_config(cfg, in_h, in_w);
    eff_resize_plan rp;
    eff_resize_plan_init(&rp, in_h, in_w, cfg->size, cfg->size, cfg->filter);
    AugGeom g = geom_from_plan(cfg, &rp);
    float lut[3 * 256];
    make_lut(cfg, lut);
    const int nt = AUG_THREADS; /* the kernel's block, one "thread" at a time */
    if (!train) {
        for (int tid = 0; tid < nt; tid++) thread_test(&g, src, tid, nt, out, u8, lut);
    } else {
        AugImg ai;
        make_img_params(cfg, p, 0, &ai);
        uint32_t(*keep)[AUG_KEEP] = (uint32_t(*)[AUG_KEEP])eff_malloc(sizeof(uint32_t) * AUG_KEEP * nt, "keep");
        unsigned long long sum = 0;
        for (int tid = 0; tid < nt; tid++) sum += thread_phase1(&g, &ai, src, tid, nt, keep[tid]);
        int mean = contrast_mean(sum, cfg->size * cfg->size);
        for (int tid = 0; tid < nt; tid++) thread_phase2(&g, &ai, src, tid, nt, keep[tid], mean, out, u8, lut);
        eff_free(keep);
    }
    eff_resize_plan_free(&rp);
}

/* ---- the resident augmenter ------------------------------------------------------ */

struct EffGpuAugment {
    eff_aug_config cfg;
    int in_h, in_w;
    int64_t n_images;
    cudaStream_t stream;
    int device;             /* current device at create: must be current at every call */
    AugGeom g;              /* device weight pointers */
    int *d_bounds;          /* bx then by */
    int32_t *d_weights;     /* wx then wy */
    uint8_t *d_images;
    float *d_lut;
    int smem_src;
    int cap;                /* images per batch the buffers below hold */
    AugImg *d_imgs;
    AugImg *h_stage[2];     /* pinned; slot k is reused once ev[k] has passed */
    cudaEvent_t ev[2];
    int slot;
    eff_aug_params *h_draw; /* host scratch for eff_aug_draw */
};

extern "C" EffGpuAugment *eff_gpu_aug_create(const eff_aug_config *cfg, const uint8_t *host_images, int64_t n,
                                             int in_h, int in_w, void *cuda_stream) {
    check_config(cfg, in_h, in_w);
    EFF_CHECK(n >= 1 && host_images, "GPU augmentation: need at least one image to upload (got %lld, pointer %p)",
              (long long)n, (const void *)host_images);
    EffGpuAugment *a = (EffGpuAugment *)eff_calloc(1, sizeof *a, "GPU augmenter");
    a->cfg = *cfg;
    a->in_h = in_h;
    a->in_w = in_w;
    a->n_images = n;
    a->stream = (cudaStream_t)cuda_stream;
    CUDA_CHECK(cudaGetDevice(&a->device));
    int S = cfg->size;
    eff_resize_plan rp;
    eff_resize_plan_init(&rp, in_h, in_w, S, S, cfg->filter);
    size_t nb = 2 * (size_t)(S + S), nwx = (size_t)S * rp.kx, nwy = (size_t)S * rp.ky;
    float lut[3 * 256];
    make_lut(cfg, lut);
    size_t img_bytes = (size_t)in_h * in_w * 3;
    EFF_CHECK((uint64_t)n <= SIZE_MAX / img_bytes, "GPU augmentation: %lld images of %zu bytes overflow size_t",
              (long long)n, img_bytes);
    CUDA_CHECK(cudaMalloc((void **)&a->d_bounds, nb * sizeof(int)));
    CUDA_CHECK(cudaMalloc((void **)&a->d_weights, (nwx + nwy) * sizeof(int32_t)));
    CUDA_CHECK(cudaMalloc((void **)&a->d_lut, sizeof lut));
    CUDA_CHECK(cudaMalloc((void **)&a->d_images, (size_t)n * img_bytes));
    /* Uploads on the caller's stream (so later work on it is ordered after
     * them, whatever its flags), then one sync before the host copies go. */
    cudaStream_t st = a->stream;
    CUDA_CHECK(cudaMemcpyAsync(a->d_bounds, rp.bx, 2 * (size_t)S * sizeof(int), cudaMemcpyHostToDevice, st));
    CUDA_CHECK(cudaMemcpyAsync(a->d_bounds + 2 * S, rp.by, 2 * (size_t)S * sizeof(int), cudaMemcpyHostToDevice, st));
    CUDA_CHECK(cudaMemcpyAsync(a->d_weights, rp.wx, nwx * sizeof(int32_t), cudaMemcpyHostToDevice, st));
    CUDA_CHECK(cudaMemcpyAsync(a->d_weights + nwx, rp.wy, nwy * sizeof(int32_t), cudaMemcpyHostToDevice, st));
    CUDA_CHECK(cudaMemcpyAsync(a->d_lut, lut, sizeof lut, cudaMemcpyHostToDevice, st));
    CUDA_CHECK(cudaMemcpyAsync(a->d_images, host_images, (size_t)n * img_bytes, cudaMemcpyHostToDevice, st));
    CUDA_CHECK(cudaStreamSynchronize(st));
    a->g = geom_from_plan(cfg, &rp);
    a->g.bx = a->d_bounds;
    a->g.by = a->d_bounds + 2 * S;
    a->g.wx = a->d_weights;
    a->g.wy = a->d_weights + nwx;
    eff_resize_plan_free(&rp);
    a->smem_src = img_bytes <= AUG_SMEM_SRC_MAX;
    for (int k = 0; k < 2; k++) CUDA_CHECK(cudaEventCreateWithFlags(&a->ev[k], cudaEventDisableTiming));
    return a;
}

extern "C" void eff_gpu_aug_destroy(EffGpuAugment *a) {
    if (!a) return;
    CUDA_CHECK(cudaStreamSynchronize(a->stream));
    for (int k = 0; k < 2; k++) {
        CUDA_CHECK(cudaEventDestroy(a->ev[k]));
        if (a->h_stage[k]) CUDA_CHECK(cudaFreeHost(a->h_stage[k]));
    }
    CUDA_CHECK(cudaFree(a->d_imgs));
    CUDA_CHECK(cudaFree(a->d_images));
    CUDA_CHECK(cudaFree(a->d_lut));
    CUDA_CHECK(cudaFree(a->d_weights));
    CUDA_CHECK(cudaFree(a->d_bounds));
    eff_free(a->h_draw);
    eff_free(a);
}

/* Room for n images per batch (grows; waits for work in flight first). */
static void reserve(EffGpuAugment *a, int n) {
    if (n <= a->cap) return;
    int cap = n > 2 * a->cap ? n : 2 * a->cap;
    CUDA_CHECK(cudaStreamSynchronize(a->stream));
    for (int k = 0; k < 2; k++) {
        if (a->h_stage[k]) CUDA_CHECK(cudaFreeHost(a->h_stage[k]));
        CUDA_CHECK(cudaMallocHost((void **)&a->h_stage[k], (size_t)cap * sizeof(AugImg)));
    }
    CUDA_CHECK(cudaFree(a->d_imgs));
    CUDA_CHECK(cudaMalloc((void **)&a->d_imgs, (size_t)cap * sizeof(AugImg)));
    eff_free(a->h_draw);
    a->h_draw = (eff_aug_params *)eff_malloc((size_t)cap * sizeof(eff_aug_params), "GPU augmentation parameters");
    a->cap = cap;
}

/* The grid, one block per image, checked by kernels/launch_geom.h against
 * the limits every device has (grid.x: 2^31 - 1, so any int n >= 1 fits;
 * there is no EffCuda here to hold this device's). */
static dim3 aug_grid(int n) {
    const EffLaunchLimits lim = eff_launch_limits_min();
    const long long g[3] = {n, 1, 1}, b[3] = {AUG_THREADS, 1, 1};
    char why[400];
    EFF_CHECK(!eff_launch_check("aug_kernel", g, b, &lim, why, sizeof why), "GPU augmentation: %s", why);
    return dim3((unsigned)n);
}

static void run_batch(EffGpuAugment *a, int train, const int64_t *idx, const eff_aug_params *params, int n,
                      float *out_dev, uint8_t *u8_dev) {
    int cur;
    CUDA_CHECK(cudaGetDevice(&cur));
    EFF_CHECK(cur == a->device,
              "GPU augmentation: the current device is %d but the images were uploaded to device %d; "
              "HINT: cudaSetDevice(%d) before eff_gpu_aug_batch", cur, a->device, a->device);
    int slot = a->slot;
    a->slot ^= 1;
    AugImg *st = a->h_stage[slot];
    CUDA_CHECK(cudaEventSynchronize(a->ev[slot])); /* its previous upload has finished reading st */
    for (int i = 0; i < n; i++) {
        EFF_CHECK(idx[i] >= 0 && idx[i] < a->n_images,
                  "GPU augmentation: batch entry %d asks for image %lld, but %lld images were uploaded", i,
                  (long long)idx[i], (long long)a->n_images);
        if (train) make_img_params(&a->cfg, &params[i], idx[i], &st[i]);
        else {
            memset(&st[i], 0, sizeof st[i]);
            st[i].src = idx[i];
        }
    }
    CUDA_CHECK(cudaMemcpyAsync(a->d_imgs, st, (size_t)n * sizeof(AugImg), cudaMemcpyHostToDevice, a->stream));
    CUDA_CHECK(cudaEventRecord(a->ev[slot], a->stream));
    AugArgs A;
    A.g = a->g;
    A.images = a->d_images;
    A.imgs = a->d_imgs;
    A.lut = a->d_lut;
    A.out = out_dev;
    A.u8 = u8_dev;
    A.train = train != 0;
    A.smem_src = a->smem_src;
    size_t smem = a->smem_src ? (size_t)a->in_h * a->in_w * 3 : 0;
    aug_kernel<<<aug_grid(n), AUG_THREADS, smem, a->stream>>>(A); /* launch-grid-ok: aug_grid */
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void eff_gpu_aug_batch_params(EffGpuAugment *a, int train, const int64_t *idx,
                                         const eff_aug_params *params, int n, float *out_dev, uint8_t *u8_dev) {
    EFF_CHECK(n >= 0, "GPU augmentation: batch size %d is negative", n);
    if (n == 0) return;
    EFF_CHECK(idx && out_dev && (params || !train),
              "GPU augmentation: batch needs idx, out_dev%s (got %p, %p, %p)", train ? " and params" : "",
              (const void *)idx, (void *)out_dev, (const void *)params);
    reserve(a, n);
    run_batch(a, train, idx, params, n, out_dev, u8_dev);
}

extern "C" void eff_gpu_aug_batch(EffGpuAugment *a, int train, const int64_t *idx, const int64_t *gidx, int n,
                                  uint64_t seed, uint64_t epoch, float *out_dev, uint8_t *u8_dev) {
    EFF_CHECK(n >= 0, "GPU augmentation: batch size %d is negative", n);
    if (n == 0) return;
    EFF_CHECK(idx && out_dev, "GPU augmentation: batch needs idx and out_dev (got %p, %p)", (const void *)idx,
              (void *)out_dev);
    reserve(a, n);
    if (train)
        for (int i = 0; i < n; i++)
            eff_aug_draw(&a->cfg, seed, epoch, (uint64_t)(gidx ? gidx[i] : idx[i]), &a->h_draw[i]);
    run_batch(a, train, idx, a->h_draw, n, out_dev, u8_dev);
}
