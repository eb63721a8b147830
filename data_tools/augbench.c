/* effnet-augbench: single-thread throughput of the augmentation pipelines.
 *
 *   effnet-augbench [--size S] [--images N] [--index INDEX]
 *
 * Images come from the train split of INDEX, or are synthetic (smooth
 * gradients plus noise, 32x32) without it. Prints img/s per core for the train
 * pipeline, the test pipeline and each train op at resolution S. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "data/augment.h"
#include "data/shard.h"

int main(int argc, char **argv) {
    long S = 32, N = 0;
    const char *index = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc) {
            EFF_CHECK(eff_parse_int(argv[++i], 1, 4096, &S), "--size '%s' is not in 1..4096", argv[i]);
        } else if (!strcmp(argv[i], "--images") && i + 1 < argc) {
            EFF_CHECK(eff_parse_int(argv[++i], 1, 10000000, &N), "--images '%s' is not in 1..10000000", argv[i]);
        } else if (!strcmp(argv[i], "--index") && i + 1 < argc) {
            index = argv[++i];
        } else {
            fprintf(stderr, "usage: effnet-augbench [--size S] [--images N] [--index INDEX]\n");
            return 2;
        }
    }
    if (!N) N = S <= 64 ? 20000 : 1000;
    int H = 32, W = 32, pool = 512;
    uint8_t *imgs = eff_malloc((size_t)pool * H * W * 3, "bench images");
    if (index) {
        eff_dataset ds;
        eff_dataset_load_or_die(index, "train", 0, &ds);
        EFF_CHECK(!ds.offsets && ds.height == H && ds.width == W && ds.n >= pool, "bench expects at least %d 32x32 "
                  "images (CIFAR-10 shards)", pool);
        memcpy(imgs, ds.images, (size_t)pool * H * W * 3);
        eff_dataset_free(&ds);
    } else {
        uint64_t x = 88172645463325252ull;
        for (int n = 0; n < pool; n++)
            for (int y = 0; y < H; y++)
                for (int xx = 0; xx < W; xx++)
                    for (int c = 0; c < 3; c++) {
                        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                        int v = (y * 5 + xx * 3 + c * 60 + n * 7) % 200 + (int)(x % 56);
                        imgs[(((size_t)n * H + y) * W + xx) * 3 + c] = (uint8_t)v;
                    }
    }
    eff_aug_config cfg;
    eff_aug_config_default(&cfg, (int)S);
    eff_augmenter A;
    eff_augmenter_init(&A, &cfg, H, W);
    float *out = eff_malloc((size_t)S * S * 3 * sizeof(float), "bench output");
    uint8_t *u = eff_malloc((size_t)S * S * 3, "bench image"), *v = eff_malloc((size_t)S * S * 3, "bench image");
    eff_aug_params p;
    int npix = (int)(S * S);
    double t, tt[9];
    const char *names[9] = {"train pipeline", "test pipeline", "resize", "hflip", "rotate", "pad+crop", "brightness+contrast+saturation", "hue", "normalize (in train)"};
    /* whole pipelines */
    t = eff_time();
    for (long i = 0; i < N; i++) {
        eff_aug_draw(&cfg, 1, 0, (uint64_t)i, &p);
        eff_augment_train(&A, imgs + (size_t)(i % pool) * H * W * 3, &p, out, NULL);
    }
    tt[0] = eff_time() - t;
    t = eff_time();
    for (long i = 0; i < N; i++) eff_augment_test(&A, imgs + (size_t)(i % pool) * H * W * 3, out, NULL);
    tt[1] = eff_time() - t;
    /* single ops */
    memset(tt + 2, 0, sizeof(double) * 7);
    for (long i = 0; i < N; i++) {
        eff_aug_draw(&cfg, 1, 0, (uint64_t)i, &p);
        double t0 = eff_time();
        eff_resize_apply(&A.resize, imgs + (size_t)(i % pool) * H * W * 3, u);
        double t1 = eff_time();
        eff_img_hflip(u, (int)S, (int)S);
        double t2 = eff_time();
        eff_img_rotate_nearest(u, (int)S, (int)S, p.angle, v);
        double t3 = eff_time();
        eff_img_pad_crop(v, (int)S, (int)S, 4, p.crop_top, p.crop_left, (int)S, (int)S, u);
        double t4 = eff_time();
        eff_img_brightness(u, npix, p.brightness);
        eff_img_contrast(u, npix, p.contrast);
        eff_img_saturation(u, npix, p.saturation);
        double t5 = eff_time();
        eff_img_hue(u, npix, p.hue);
        double t6 = eff_time();
        tt[2] += t1 - t0; tt[3] += t2 - t1; tt[4] += t3 - t2; tt[5] += t4 - t3; tt[6] += t5 - t4; tt[7] += t6 - t5;
    }
    tt[8] = tt[0] - (tt[2] + tt[3] + tt[4] + tt[5] + tt[6] + tt[7]);
    printf("effnet-augbench: S=%ld, %ld images of 32x32 (%s), 1 thread\n", S, N, index ? "CIFAR-10 train" : "synthetic");
    for (int k = 0; k < 9; k++)
        printf("  %-32s %10.0f img/s  %8.1f us/img\n", names[k], tt[k] > 0 ? N / tt[k] : 0.0, 1e6 * tt[k] / N);
    eff_augmenter_free(&A);
    free(imgs); free(out); free(u); free(v);
    return 0;
}
