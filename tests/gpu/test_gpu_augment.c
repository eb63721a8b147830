/* test_gpu_augment: the CUDA augmentation (kernels/augment.cu) against the CPU
 * augmenter (src/data/augment.c), which matches torchvision/PIL exactly.
 *
 *   test_gpu_augment --host    eff_gpu_aug_reference_host (the kernel's own
 *                              functions and per-thread pixel split, run on the
 *                              CPU) vs eff_augment_train/test. Needs no GPU.
 *   test_gpu_augment --device  eff_gpu_aug_batch on the GPU vs the CPU; prints
 *                              "no CUDA device: skipped" and exits 77 without one.
 *
 * Both require max |difference| 0 on the uint8 images and on the normalised
 * floats: every op is integer or IEEE-rounded float/double arithmetic done in
 * the same order as augment.c, so there is no rounding budget to justify.
 * Sizes: 32->32, 32->64, 32->224 (upsampling), shrinking (antialias) on one or
 * both axes, odd sizes; parameters drawn by eff_aug_draw and hand-made
 * extremes (all 24 jitter orders, angles 0/90/180/270/360/tiny/near-360,
 * crop corners, factors 0 and > 1, hue +-0.5). Exit 0 pass, 1 fail. */
#define _POSIX_C_SOURCE 200809L
#include <cuda_runtime_api.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "augment_cuda.h"
#include "backend/backend.h"    /* eff_cuda_device_count */
#include "cuda_ops.h"   /* CUDA_CHECK */
#include "common.h"
#include "data/augment.h"
#include "test_util.h"


typedef struct { int in_h, in_w, S; } Shape;

/* Images of four kinds: uniform noise; a 4-level palette (many equal channels,
 * grey and saturated pixels: the hue code's branches); one constant grey; a
 * smooth gradient with noise. */
static void fill_images(EffRng *r, uint8_t *img, int n, int h, int w) {
    static const uint8_t pal[4] = {0, 64, 128, 255};
    for (int k = 0; k < n; k++) {
        uint8_t *p = img + (size_t)k * h * w * 3;
        int grey = (int)(eff_rng_next(r) & 255);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    uint64_t u = eff_rng_next(r);
                    int v;
                    switch (k % 4) {
                    case 0: v = (int)(u & 255); break;
                    case 1: v = pal[u & 3]; break;
                    case 2: v = grey; break;
                    default: v = (x * 255 / (w > 1 ? w - 1 : 1) + y * 97 / h + c * 40 + (int)(u % 21)) % 256; break;
                    }
                    p[((size_t)y * w + x) * 3 + c] = (uint8_t)v;
                }
    }
}

enum { N_DRAWN = 16, N_EXTREME = 48, N_PARAMS = N_DRAWN + N_EXTREME };

/* Parameter set k: the first N_DRAWN from eff_aug_draw, then extremes. */
static void make_params(const eff_aug_config *cfg, int k, eff_aug_params *p) {
    static const uint64_t seeds[] = {0, 1, 12345, 0xFFFFFFFFFFFFFFFFull};
    static const uint64_t idxs[] = {0, 1, 49999, 123456789};
    if (k < N_DRAWN) {
        eff_aug_draw(cfg, seeds[k % 4], (uint64_t)(k / 4) * 7, idxs[(k / 2) % 4] + (uint64_t)k, p);
        return;
    }
    int e = k - N_DRAWN;
    static const double angles[] = {0,     15,     -15,   90,    -90,   180,   -180,         270,           360,
                                    -360,  45,     1e-14, -1e-14, 359.99999999, 720.5,       14.999999999, -7.3,
                                    89.9999999999, -270, 0.001};
    static const int crops[][2] = {{0, 0}, {8, 8}, {0, 8}, {8, 0}, {4, 4}, {3, 6}, {7, 1}};
    static const double bright[] = {0.0, 0.8, 1.0, 1.2, 2.5, 0.5};
    static const double contr[] = {0.0, 0.8, 1.2, 3.0, 1.0};
    static const double sat[] = {0.0, 0.8, 1.2, 3.0, 1.0, 0.3, 2.0};
    static const double hue[] = {-0.5, -0.1, 0.0, 0.1, 0.5, 0.25, -0.37};
    eff_aug_draw(cfg, 77, (uint64_t)e, (uint64_t)e, p);
    p->flip = (e / 3) & 1;
    p->angle = angles[e % (int)(sizeof angles / sizeof angles[0])];
    int pad2 = 2 * cfg->pad, ci = e % (int)(sizeof crops / sizeof crops[0]);
    p->crop_top = crops[ci][0] * pad2 / 8;
    p->crop_left = crops[ci][1] * pad2 / 8;
    /* permutation number e % 24 (factorial number system) */
    int pool[4] = {0, 1, 2, 3}, m = e % 24, npool = 4;
    for (int i = 0; i < 4; i++) {
        int f = i == 0 ? 6 : i == 1 ? 2 : 1, j = i < 3 ? m / f : 0;
        m -= j * f;
        p->order[i] = pool[j];
        for (int t = j; t < npool - 1; t++) pool[t] = pool[t + 1];
        npool--;
    }
    p->brightness = bright[e % 6];
    p->contrast = contr[e % 5];
    p->saturation = sat[e % 7];
    p->hue = hue[(e / 2) % 7];
}

typedef struct { int u8; double f; } MaxDiff;

static void max_diff(MaxDiff *d, const uint8_t *ua, const uint8_t *ub, const float *fa, const float *fb, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int du = abs((int)ua[i] - (int)ub[i]);
        double df = fabs((double)fa[i] - (double)fb[i]);
        if (du > d->u8) d->u8 = du;
        if (df > d->f || df != df) d->f = df != df ? INFINITY : df; /* NaN counts as a failure */
    }
}

static const Shape host_shapes[] = {{32, 32, 32}, {32, 32, 64}, {32, 32, 224}, {40, 32, 32},
                                    {32, 48, 32}, {64, 64, 32}, {24, 40, 48},  {37, 29, 50}};

static int run_host(void) {
    TestState ts = {0, 0};
    EffRng rng;
    eff_rng_seed(&rng, 2024);
    enum { NIMG = 4 };
    for (size_t si = 0; si < sizeof host_shapes / sizeof host_shapes[0]; si++) {
        Shape sh = host_shapes[si];
        int S = sh.S;
        size_t on = (size_t)S * S * 3;
        eff_aug_config cfg;
        eff_aug_config_default(&cfg, S);
        eff_augmenter A;
        eff_augmenter_init(&A, &cfg, sh.in_h, sh.in_w);
        uint8_t *img = eff_malloc((size_t)NIMG * sh.in_h * sh.in_w * 3, "images");
        fill_images(&rng, img, NIMG, sh.in_h, sh.in_w);
        uint8_t *uc = eff_malloc(on, "u8"), *ur = eff_malloc(on, "u8");
        float *fc = eff_malloc(on * sizeof(float), "out"), *fr = eff_malloc(on * sizeof(float), "out");
        MaxDiff dtrain = {0, 0}, dtest = {0, 0};
        int ncase = 0;
        for (int k = 0; k < N_PARAMS; k++)
            for (int im = 0; im < NIMG; im++) {
                if (S > 64 && im != k % NIMG) continue; /* big images: one image per parameter set */
                const uint8_t *src = img + (size_t)im * sh.in_h * sh.in_w * 3;
                eff_aug_params p;
                make_params(&cfg, k, &p);
                memset(ur, 0xA5, on); /* stale values must not survive */
                eff_augment_train(&A, src, &p, fc, uc);
                eff_gpu_aug_reference_host(&cfg, src, sh.in_h, sh.in_w, &p, 1, fr, ur);
                MaxDiff one = {0, 0};
                max_diff(&one, ur, uc, fr, fc, on);
                if (one.u8 || one.f)
                    printf("  mismatch: %dx%d->%d image %d params %d (flip %d angle %.17g order %d%d%d%d): "
                           "u8 %d float %g\n", sh.in_h, sh.in_w, S, im, k, p.flip, p.angle, p.order[0], p.order[1],
                           p.order[2], p.order[3], one.u8, one.f);
                max_diff(&dtrain, ur, uc, fr, fc, on);
                ncase++;
            }
        for (int im = 0; im < NIMG; im++) {
            const uint8_t *src = img + (size_t)im * sh.in_h * sh.in_w * 3;
            memset(ur, 0xA5, on);
            eff_augment_test(&A, src, fc, uc);
            eff_gpu_aug_reference_host(&cfg, src, sh.in_h, sh.in_w, NULL, 0, fr, ur);
            max_diff(&dtest, ur, uc, fr, fc, on);
        }
        printf("host %2dx%-2d -> %3d: train %3d cases max|u8 diff| %d max|float diff| %g; test %d images %d %g\n",
               sh.in_h, sh.in_w, S, ncase, dtrain.u8, dtrain.f, NIMG, dtest.u8, dtest.f);
        T_CHECK(&ts, dtrain.u8 == 0 && dtrain.f == 0, "%dx%d->%d train: u8 %d float %g (want 0, 0)", sh.in_h,
                sh.in_w, S, dtrain.u8, dtrain.f);
        T_CHECK(&ts, dtest.u8 == 0 && dtest.f == 0, "%dx%d->%d test: u8 %d float %g (want 0, 0)", sh.in_h, sh.in_w,
                S, dtest.u8, dtest.f);

        /* Controls: the comparison must see a change of any one parameter
         * (else a zero difference above would prove nothing). */
        if (si == 0) {
            eff_aug_params p0;
            make_params(&cfg, 3, &p0);
            p0.angle = 10.0;
            eff_augment_train(&A, img, &p0, fc, uc);
            for (int c = 0; c < 5; c++) {
                eff_aug_params q = p0;
                const char *what[] = {"flip", "angle", "crop", "jitter order", "hue"};
                if (c == 0) q.flip = !q.flip;
                if (c == 1) q.angle += 1.0;
                if (c == 2) q.crop_left = (q.crop_left + 1) % (2 * cfg.pad + 1);
                if (c == 3) { int t = q.order[0]; q.order[0] = q.order[3]; q.order[3] = t; }
                if (c == 4) q.hue = q.hue > 0 ? q.hue - 0.05 : q.hue + 0.05;
                eff_gpu_aug_reference_host(&cfg, img, sh.in_h, sh.in_w, &q, 1, fr, ur);
                MaxDiff d = {0, 0};
                max_diff(&d, ur, uc, fr, fc, on);
                T_CHECK(&ts, d.u8 > 0 && d.f > 0, "control: changing the %s did not change the output", what[c]);
            }
        }
        eff_free(img); eff_free(uc); eff_free(ur); eff_free(fc); eff_free(fr);
        eff_augmenter_free(&A);
    }
    return t_finish(&ts, "test_gpu_augment --host");
}

/* ---- device half -------------------------------------------------------------- */

/* 160x160 (75 KB) is read from global memory, the others from shared memory;
 * 37x29 is not a multiple of 16 bytes; 224 needs the recompute path. */
static const Shape dev_shapes[] = {{32, 32, 32}, {32, 32, 64}, {32, 32, 224}, {64, 64, 32}, {160, 160, 32}, {37, 29, 50}};

typedef struct {
    float *d_out;
    uint8_t *d_u8; /* may be NULL */
} DevOut;

static int compare_batch(TestState *ts, const char *what, const Shape *sh, eff_augmenter *A, const uint8_t *img,
                         const int64_t *idx, int n, int train, const eff_aug_params *params, DevOut o) {
    size_t on = (size_t)sh->S * sh->S * 3;
    float *hf = eff_malloc(on * n * sizeof(float), "GPU out"), *fc = eff_malloc(on * sizeof(float), "CPU out");
    uint8_t *hu = eff_malloc(on * n, "GPU u8"), *uc = eff_malloc(on, "CPU u8");
    CUDA_CHECK(cudaMemcpy(hf, o.d_out, on * n * sizeof(float), cudaMemcpyDeviceToHost));
    if (o.d_u8) CUDA_CHECK(cudaMemcpy(hu, o.d_u8, on * n, cudaMemcpyDeviceToHost));
    MaxDiff d = {0, 0};
    for (int i = 0; i < n; i++) {
        const uint8_t *src = img + (size_t)idx[i] * sh->in_h * sh->in_w * 3;
        if (train) eff_augment_train(A, src, &params[i], fc, uc);
        else eff_augment_test(A, src, fc, uc);
        max_diff(&d, o.d_u8 ? hu + on * i : uc, uc, hf + on * i, fc, on);
    }
    printf("device %2dx%-2d -> %3d %-22s n %2d: max|u8 diff| %d%s max|float diff| %g\n", sh->in_h, sh->in_w, sh->S,
           what, n, d.u8, o.d_u8 ? "" : " (no u8)", d.f);
    T_CHECK(ts, d.u8 == 0 && d.f == 0, "device %dx%d->%d %s: u8 %d float %g (want 0, 0)", sh->in_h, sh->in_w, sh->S,
            what, d.u8, d.f);
    eff_free(hf); eff_free(fc); eff_free(hu); eff_free(uc);
    return 0;
}

static DevOut dev_alloc(size_t on, int n, int with_u8) {
    DevOut o = {NULL, NULL};
    CUDA_CHECK(cudaMalloc((void **)&o.d_out, on * n * sizeof(float)));
    CUDA_CHECK(cudaMemset(o.d_out, 0xFF, on * n * sizeof(float))); /* NaN: unwritten values fail */
    if (with_u8) {
        CUDA_CHECK(cudaMalloc((void **)&o.d_u8, on * n));
        CUDA_CHECK(cudaMemset(o.d_u8, 0xA5, on * n));
    }
    return o;
}

static void dev_free(DevOut o) {
    CUDA_CHECK(cudaFree(o.d_out));
    if (o.d_u8) CUDA_CHECK(cudaFree(o.d_u8));
}

static int run_device(void) {
    int ndev = eff_cuda_device_count();
    if (ndev == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    TestState ts = {0, 0};
    EffRng rng;
    eff_rng_seed(&rng, 4242);
    enum { NIMG = 29, N1 = 5, N = 67 };
    for (size_t si = 0; si < sizeof dev_shapes / sizeof dev_shapes[0]; si++) {
        Shape sh = dev_shapes[si];
        size_t on = (size_t)sh.S * sh.S * 3;
        eff_aug_config cfg;
        eff_aug_config_default(&cfg, sh.S);
        eff_augmenter A;
        eff_augmenter_init(&A, &cfg, sh.in_h, sh.in_w);
        uint8_t *img = eff_malloc((size_t)NIMG * sh.in_h * sh.in_w * 3, "images");
        fill_images(&rng, img, NIMG, sh.in_h, sh.in_w);
        int64_t idx[N], gidx[N];
        for (int i = 0; i < N; i++) {
            idx[i] = (int64_t)(eff_rng_next(&rng) % NIMG);
            gidx[i] = (int64_t)(eff_rng_next(&rng) % 1000000);
        }
        cudaStream_t stream;
        CUDA_CHECK(cudaStreamCreate(&stream));
        EffGpuAugment *g = eff_gpu_aug_create(&cfg, img, NIMG, sh.in_h, sh.in_w, (void *)stream);
        DevOut o1 = dev_alloc(on, N1, 1), o2 = dev_alloc(on, N, 0), o3 = dev_alloc(on, N, 1), o4 = dev_alloc(on, N, 1);
        /* Four batches in flight before one sync: a small one, then growth, the
         * staging slots reused, train without u8, test, explicit extremes. */
        eff_aug_params ext[N], drawn1[N1], drawn2[N];
        for (int i = 0; i < N; i++) make_params(&cfg, N_DRAWN + i % N_EXTREME, &ext[i]);
        eff_gpu_aug_batch(g, 1, idx, gidx, N1, 5, 3, o1.d_out, o1.d_u8);
        eff_gpu_aug_batch(g, 1, idx, NULL, N, 6, 0, o2.d_out, NULL);
        eff_gpu_aug_batch(g, 0, idx, NULL, N, 0, 0, o3.d_out, o3.d_u8);
        eff_gpu_aug_batch_params(g, 1, idx, ext, N, o4.d_out, o4.d_u8);
        CUDA_CHECK(cudaStreamSynchronize(stream));
        for (int i = 0; i < N1; i++) eff_aug_draw(&cfg, 5, 3, (uint64_t)gidx[i], &drawn1[i]);
        for (int i = 0; i < N; i++) eff_aug_draw(&cfg, 6, 0, (uint64_t)idx[i], &drawn2[i]);
        compare_batch(&ts, "train (seed,epoch,gidx)", &sh, &A, img, idx, N1, 1, drawn1, o1);
        compare_batch(&ts, "train gidx=idx", &sh, &A, img, idx, N, 1, drawn2, o2);
        compare_batch(&ts, "test", &sh, &A, img, idx, N, 0, NULL, o3);
        compare_batch(&ts, "train extreme params", &sh, &A, img, idx, N, 1, ext, o4);
        dev_free(o1); dev_free(o2); dev_free(o3); dev_free(o4);
        eff_gpu_aug_destroy(g);
        CUDA_CHECK(cudaStreamDestroy(stream));
        eff_free(img);
        eff_augmenter_free(&A);
    }
    return t_finish(&ts, "test_gpu_augment --device");
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--host") == 0) return run_host();
    if (argc == 2 && strcmp(argv[1], "--device") == 0) return run_device();
    fprintf(stderr, "usage: %s --host | --device\n"
                    "  --host    kernel code path run on the CPU vs the CPU augmenter (no GPU needed)\n"
                    "  --device  the GPU vs the CPU augmenter; exit 77 when there is no CUDA device\n",
            argc > 0 ? argv[0] : "test_gpu_augment");
    return 2;
}
