/* augment_imagenet.c: torchvision's ImageNet recipe for image-folder data
 * (augment.h): RandomResizedCrop + RandomHorizontalFlip for training,
 * Resize + CenterCrop for evaluation, on the PIL path of torchvision 0.14
 * (crop, then Image.resize with the configured filter), byte for byte
 * (tests/data/test_augment_torchvision.py). Compiled with -ffp-contract=off
 * like augment.c. */
#define _POSIX_C_SOURCE 200809L
#include "data/augment.h"

#include <math.h>
#include <string.h>

#include "common.h"
#include "data/data_rng.h"

void eff_aug_config_imagenet(eff_aug_config *c, int size) {
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    eff_aug_config_default(c, size);
    c->pipeline = EFF_PIPE_IMAGENET;
    memcpy(c->mean, mean, sizeof mean);
    memcpy(c->std, std, sizeof std);
}

static double uniform_in(eff_rng_stream *st, double lo, double hi) { return lo + (hi - lo) * eff_rng_uniform(st); }

/* get_params' fallback: the whole image, clamped to the ratio range, centred. */
static void center_crop_params(const eff_aug_config *c, int in_h, int in_w, eff_rrc_params *p) {
    const double in_ratio = (double)in_w / (double)in_h;
    p->w = in_w;
    p->h = in_h;
    if (in_ratio < c->ratio_min) p->h = (int)nearbyint(in_w / c->ratio_min);
    else if (in_ratio > c->ratio_max) p->w = (int)nearbyint(in_h * c->ratio_max);
    p->top = (in_h - p->h) / 2;
    p->left = (in_w - p->w) / 2;
}

void eff_rrc_draw(const eff_aug_config *c, uint64_t seed, uint64_t epoch, uint64_t index, int in_h, int in_w,
                  eff_rrc_params *p) {
    eff_rng_stream st = eff_rng_stream_at(eff_rng_key(EFF_RNG_AUG, seed, epoch, index));
    const double area = (double)in_h * in_w, lr0 = log(c->ratio_min), lr1 = log(c->ratio_max);
    int found = 0;
    for (int attempt = 0; attempt < 10 && !found; attempt++) {
        const double target = area * uniform_in(&st, c->scale_min, c->scale_max);
        const double aspect = exp(uniform_in(&st, lr0, lr1));
        const int w = (int)nearbyint(sqrt(target * aspect)), h = (int)nearbyint(sqrt(target / aspect));
        if (w > 0 && w <= in_w && h > 0 && h <= in_h) {
            p->top = (int)eff_rng_below(&st, (uint64_t)(in_h - h + 1));
            p->left = (int)eff_rng_below(&st, (uint64_t)(in_w - w + 1));
            p->h = h;
            p->w = w;
            found = 1;
        }
    }
    if (!found) center_crop_params(c, in_h, in_w, p);
    p->flip = eff_rng_uniform(&st) < c->flip_p;
}

/* A->big with room for n bytes. */
static uint8_t *scratch(eff_augmenter *A, size_t n) {
    if (n > A->big_cap) {
        eff_free(A->big);
        A->big = eff_malloc(n, "augmentation scratch image");
        A->big_cap = n;
    }
    return A->big;
}

/* Resize src (h x w) to oh x ow with the configured filter into dst. */
static void resize_to(const eff_augmenter *A, const uint8_t *src, int h, int w, int oh, int ow, uint8_t *dst) {
    eff_resize_plan plan;
    eff_resize_plan_init(&plan, h, w, oh, ow, A->cfg.filter);
    eff_resize_apply(&plan, src, dst);
    eff_resize_plan_free(&plan);
}

void eff_augment_rrc(eff_augmenter *A, const uint8_t *src, int in_h, int in_w, const eff_rrc_params *p, float *out,
                     uint8_t *u8) {
    const int S = A->cfg.size;
    EFF_CHECK(p->top >= 0 && p->left >= 0 && p->h >= 1 && p->w >= 1 && p->top + p->h <= in_h &&
              p->left + p->w <= in_w, "RandomResizedCrop: crop %dx%d at (%d, %d) is outside the %dx%d image", p->h,
              p->w, p->top, p->left, in_h, in_w);
    uint8_t *crop = scratch(A, (size_t)p->h * p->w * 3);
    for (int y = 0; y < p->h; y++)
        memcpy(crop + (size_t)y * p->w * 3, src + ((size_t)(p->top + y) * in_w + p->left) * 3, (size_t)p->w * 3);
    resize_to(A, crop, p->h, p->w, S, S, A->a);
    if (p->flip) eff_img_hflip(A->a, S, S);
    if (u8) memcpy(u8, A->a, (size_t)S * S * 3);
    eff_augment_normalize(A, A->a, out);
}

void eff_augment_center(eff_augmenter *A, const uint8_t *src, int in_h, int in_w, float *out, uint8_t *u8) {
    const int S = A->cfg.size;
    EFF_CHECK(A->cfg.eval_resize >= S, "evaluation resize %d is smaller than the crop %d\nHINT: set data.eval_resize "
              ">= model.resolution (0: resolution / 0.875)", A->cfg.eval_resize, S);
    int nh, nw;
    eff_resized_size(in_h, in_w, A->cfg.eval_resize, &nh, &nw);
    eff_resize_plan plan; /* only the crop's pixels */
    eff_resize_plan_init_crop(&plan, in_h, in_w, nh, nw, A->cfg.filter, eff_center_offset(nh, S),
                              eff_center_offset(nw, S), S, S);
    eff_resize_apply(&plan, src, A->a);
    eff_resize_plan_free(&plan);
    if (u8) memcpy(u8, A->a, (size_t)S * S * 3);
    eff_augment_normalize(A, A->a, out);
}
