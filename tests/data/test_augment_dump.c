/* test_augment_dump: apply one augmentation op (or a whole pipeline) of
 * src/data/augment.c to a batch of raw uint8 HWC images, for the torchvision
 * comparison in test_augment_torchvision.py.
 *
 *   test_augment_dump OP N H W IN OUT [params]
 *     resize OH OW [FILTER] | hflip | rotate ANGLE | padcrop PAD TOP LEFT OH OW |
 *     brightness F | contrast F | saturation F | hue F |
 *     train S SEED EPOCH INDEX0 | test S |
 *     imagenet_train S SEED EPOCH INDEX0 FILTER | imagenet_test S RESIZE FILTER
 * IN holds N x H x W x 3 bytes; OUT gets the uint8 results. For train and test
 * OUT.f32 also gets the float32 NHWC output, and train prints one line of drawn
 * parameters per image (index flip angle top left order[4] b c s h);
 * imagenet_train prints (index top left h w flip). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "data/augment.h"

static double num(const char *s) {
    double v;
    EFF_CHECK(eff_parse_double(s, &v), "bad number '%s'", s);
    return v;
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: test_augment_dump OP N H W IN OUT [params]\n");
        return 2;
    }
    const char *op = argv[1];
    int N = (int)num(argv[2]), H = (int)num(argv[3]), W = (int)num(argv[4]);
    const char *in_path = argv[5], *out_path = argv[6];
    char **P = argv + 7;
    int np = argc - 7;
    size_t in_sz = (size_t)H * W * 3;
    uint8_t *in = eff_malloc((size_t)N * in_sz, "input");
    FILE *f = eff_fopen(in_path, "rb");
    EFF_CHECK(fread(in, 1, (size_t)N * in_sz, f) == (size_t)N * in_sz, "'%s' is shorter than %d images", in_path, N);
    eff_fclose(f, in_path);

    int OH = H, OW = W;
    if (!strcmp(op, "resize")) { EFF_CHECK(np == 2 || np == 3, "resize OH OW [box|bilinear|bicubic]"); OH = (int)num(P[0]); OW = (int)num(P[1]); }
    if (!strcmp(op, "padcrop")) { EFF_CHECK(np == 5, "padcrop PAD TOP LEFT OH OW"); OH = (int)num(P[3]); OW = (int)num(P[4]); }
    if (!strcmp(op, "train") || !strcmp(op, "test") || !strncmp(op, "imagenet_", 9)) {
        EFF_CHECK(np >= 1, "S");
        OH = OW = (int)num(P[0]);
    }
    size_t out_sz = (size_t)OH * OW * 3;
    uint8_t *out = eff_malloc((size_t)N * out_sz, "output");
    float *fout = eff_malloc((size_t)N * out_sz * sizeof(float), "float output");

    eff_resize_plan plan;
    int have_plan = 0;
    eff_augmenter A;
    int have_aug = 0;
    eff_aug_config cfg;
    if (!strcmp(op, "resize")) {
        const int filter = np == 3 ? eff_filter_parse(P[2]) : EFF_FILTER_BILINEAR;
        EFF_CHECK(filter >= 0, "unknown filter '%s'", P[2]);
        eff_resize_plan_init(&plan, H, W, OH, OW, filter);
        have_plan = 1;
    }
    if (!strcmp(op, "train") || !strcmp(op, "test")) {
        eff_aug_config_default(&cfg, OH);
        eff_augmenter_init(&A, &cfg, H, W);
        have_aug = 1;
    }
    if (!strncmp(op, "imagenet_", 9)) {
        EFF_CHECK(np == (op[9] == 't' && op[10] == 'r' ? 5 : 3), "imagenet_train S SEED EPOCH INDEX0 FILTER | "
                  "imagenet_test S RESIZE FILTER");
        eff_aug_config_imagenet(&cfg, OH);
        cfg.filter = eff_filter_parse(P[np - 1]);
        EFF_CHECK(cfg.filter >= 0, "unknown filter '%s'", P[np - 1]);
        if (np == 3) cfg.eval_resize = (int)num(P[1]);
        eff_augmenter_init(&A, &cfg, 0, 0);
        have_aug = 1;
    }
    for (int i = 0; i < N; i++) {
        const uint8_t *s = in + (size_t)i * in_sz;
        uint8_t *o = out + (size_t)i * out_sz;
        if (!strcmp(op, "resize")) {
            eff_resize_apply(&plan, s, o);
        } else if (!strcmp(op, "hflip")) {
            memcpy(o, s, in_sz);
            eff_img_hflip(o, H, W);
        } else if (!strcmp(op, "rotate")) {
            EFF_CHECK(np == 1, "rotate ANGLE");
            eff_img_rotate_nearest(s, H, W, num(P[0]), o);
        } else if (!strcmp(op, "padcrop")) {
            eff_img_pad_crop(s, H, W, (int)num(P[0]), (int)num(P[1]), (int)num(P[2]), OH, OW, o);
        } else if (!strcmp(op, "brightness") || !strcmp(op, "contrast") || !strcmp(op, "saturation") || !strcmp(op, "hue")) {
            EFF_CHECK(np == 1, "%s FACTOR", op);
            memcpy(o, s, in_sz);
            double v = num(P[0]);
            if (op[0] == 'b') eff_img_brightness(o, H * W, v);
            else if (op[0] == 'c') eff_img_contrast(o, H * W, v);
            else if (op[0] == 's') eff_img_saturation(o, H * W, v);
            else eff_img_hue(o, H * W, v);
        } else if (!strcmp(op, "train")) {
            EFF_CHECK(np == 4, "train S SEED EPOCH INDEX0");
            uint64_t seed = (uint64_t)num(P[1]), epoch = (uint64_t)num(P[2]), idx = (uint64_t)num(P[3]) + (uint64_t)i;
            eff_aug_params p;
            eff_aug_draw(&cfg, seed, epoch, idx, &p);
            eff_augment_train(&A, s, &p, fout + (size_t)i * out_sz, o);
            printf("%llu %d %.17g %d %d %d %d %d %d %.17g %.17g %.17g %.17g\n", (unsigned long long)idx, p.flip, p.angle,
                   p.crop_top, p.crop_left, p.order[0], p.order[1], p.order[2], p.order[3], p.brightness, p.contrast,
                   p.saturation, p.hue);
        } else if (!strcmp(op, "test")) {
            eff_augment_test(&A, s, fout + (size_t)i * out_sz, o);
        } else if (!strcmp(op, "imagenet_train")) {
            uint64_t seed = (uint64_t)num(P[1]), epoch = (uint64_t)num(P[2]), idx = (uint64_t)num(P[3]) + (uint64_t)i;
            eff_rrc_params p;
            eff_rrc_draw(&cfg, seed, epoch, idx, H, W, &p);
            eff_augment_rrc(&A, s, H, W, &p, fout + (size_t)i * out_sz, o);
            printf("%llu %d %d %d %d %d\n", (unsigned long long)idx, p.top, p.left, p.h, p.w, p.flip);
        } else if (!strcmp(op, "imagenet_test")) {
            eff_augment_center(&A, s, H, W, fout + (size_t)i * out_sz, o);
        } else {
            EFF_FATAL("unknown op '%s'", op);
        }
    }
    f = eff_fopen(out_path, "wb");
    EFF_CHECK(fwrite(out, 1, (size_t)N * out_sz, f) == (size_t)N * out_sz, "writing '%s' failed", out_path);
    eff_fclose(f, out_path);
    if (have_aug) {
        char fp[4200];
        snprintf(fp, sizeof fp, "%s.f32", out_path);
        f = eff_fopen(fp, "wb");
        EFF_CHECK(fwrite(fout, sizeof(float), (size_t)N * out_sz, f) == (size_t)N * out_sz, "writing '%s' failed", fp);
        eff_fclose(f, fp);
        eff_augmenter_free(&A);
    }
    if (have_plan) eff_resize_plan_free(&plan);
    free(in); free(out); free(fout);
    return 0;
}
