/* augment.h: the seed's augmentation, on the CPU, bit-compatible with
 * torchvision 0.14's PIL path (Pillow 9.4).
 *
 * Train pipeline (torchvision names):
 *   Resize((S,S)) bilinear -> RandomHorizontalFlip(0.5) -> RandomRotation(15)
 *   nearest, fill 0 -> RandomCrop(S, padding=4) -> ColorJitter(0.2,0.2,0.2,0.1)
 *   -> ToTensor -> Normalize(mean, std)
 * Test pipeline: Resize((S,S)) -> ToTensor -> Normalize.
 *
 * Images are uint8 RGB, HWC (row-major, channels interleaved), tightly packed.
 * The output is float32 NHWC, the model's layout. Each op below reproduces the
 * arithmetic of the Pillow C code that torchvision calls (fixed-point
 * coefficients, float blends, the uint8 HSV round trip), so the uint8 results
 * are identical, not merely close; tests/data/test_augment_torchvision.py
 * checks this. Random parameters come from the stream keyed by
 * (seed, epoch, global sample index) (data_rng.h), so they do not depend on
 * ranks or threads. */
#ifndef EFFNET_DATA_AUGMENT_H
#define EFFNET_DATA_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "data/resample.h"

/* The pipelines: the seed's (CIFAR-10) and torchvision's ImageNet recipe. */
enum { EFF_PIPE_SEED = 0, EFF_PIPE_IMAGENET = 1 };

typedef struct {
    int pipeline;        /* EFF_PIPE_SEED or EFF_PIPE_IMAGENET */
    int filter;          /* every resize: EFF_FILTER_BILINEAR (the seed's, torchvision's default) or _BICUBIC */
    int size;            /* S: output height and width */
    int pad;             /* RandomCrop padding (4) */
    double degrees;      /* RandomRotation range +-degrees (15) */
    double flip_p;       /* RandomHorizontalFlip probability (0.5) */
    double brightness, contrast, saturation, hue; /* ColorJitter (0.2, 0.2, 0.2, 0.1) */
    float mean[3], std[3];                        /* Normalize */
    /* EFF_PIPE_IMAGENET: RandomResizedCrop(S, scale, ratio) + flip_p for
     * training; Resize(eval_resize) + CenterCrop(S) for evaluation */
    double scale_min, scale_max, ratio_min, ratio_max;
    int eval_resize;
} eff_aug_config;

/* The seed's settings at resolution S (mean/std are the seed's CIFAR-10 values). */
void eff_aug_config_default(eff_aug_config *c, int size);
/* torchvision's ImageNet recipe at S: scale (0.08, 1), ratio (3/4, 4/3), flip
 * 0.5, bilinear, eval_resize = round(S / 0.875) (256 for 224), ImageNet's
 * mean and std (callers may set the data set's instead). */
void eff_aug_config_imagenet(eff_aug_config *c, int size);

typedef struct {
    int flip;               /* 1: mirror left-right */
    double angle;           /* degrees, counter-clockwise */
    int crop_top, crop_left;/* offsets into the padded (S+2*pad)^2 image */
    int order[4];           /* ColorJitter order: 0 brightness, 1 contrast, 2 saturation, 3 hue */
    double brightness, contrast, saturation, hue;
} eff_aug_params;

/* Draw the parameters of one image, in this order from the stream keyed by
 * (EFF_RNG_AUG, seed, epoch, index): flip u < flip_p; angle uniform in
 * [-deg, deg); crop top, crop left uniform in 0..2*pad; a Fisher-Yates
 * permutation of the four jitter ops (3 draws); brightness, contrast,
 * saturation factors uniform in [max(0, 1-x), 1+x); hue uniform in [-h, h). */
void eff_aug_draw(const eff_aug_config *c, uint64_t seed, uint64_t epoch, uint64_t index, eff_aug_params *p);

/* ---- single ops (used by the pipeline and by the torchvision tests) ------- */

void eff_img_hflip(uint8_t *img, int h, int w); /* in place */
/* PIL Image.rotate(angle, NEAREST, expand=False, center=None, fillcolor=0); dst != src. */
void eff_img_rotate_nearest(const uint8_t *src, int h, int w, double angle, uint8_t *dst);
/* Zero-pad by `pad` on all sides, then crop oh x ow at (top, left) of the padded image; dst != src. */
void eff_img_pad_crop(const uint8_t *src, int h, int w, int pad, int top, int left, int oh, int ow, uint8_t *dst);
/* ImageEnhance.Brightness / Contrast / Color (saturation) and torchvision's
 * adjust_hue (HSV in uint8), in place on npix pixels. */
void eff_img_brightness(uint8_t *img, int npix, double factor);
void eff_img_contrast(uint8_t *img, int npix, double factor);
void eff_img_saturation(uint8_t *img, int npix, double factor);
void eff_img_hue(uint8_t *img, int npix, double hue_factor); /* hue_factor in [-0.5, 0.5] */

/* ---- the pipelines --------------------------------------------------------- */

typedef struct {
    eff_aug_config cfg;
    int in_h, in_w;
    eff_resize_plan resize;  /* the seed's pipeline: in_h x in_w -> S x S */
    uint8_t *a, *b;          /* S x S x 3 work images */
    uint8_t *big;            /* the ImageNet pipeline: a crop, or an image resized for evaluation */
    size_t big_cap;
    float lut[3][256];       /* (v/255 - mean)/std per channel, in float32 like torchvision */
} eff_augmenter;

/* One per thread (it holds scratch buffers). Inputs are in_h x in_w x 3 (the
 * seed's pipeline); the ImageNet pipeline takes any size per image (pass 0). */
void eff_augmenter_init(eff_augmenter *A, const eff_aug_config *cfg, int in_h, int in_w);
void eff_augmenter_free(eff_augmenter *A);
/* out: S x S x 3 floats. u8 (optional, S x S x 3): the uint8 image before ToTensor. */
void eff_augment_train(eff_augmenter *A, const uint8_t *src, const eff_aug_params *p, float *out, uint8_t *u8);
void eff_augment_test(eff_augmenter *A, const uint8_t *src, float *out, uint8_t *u8);
/* ToTensor + Normalize of an S x S x 3 uint8 image (both pipelines' last step). */
void eff_augment_normalize(const eff_augmenter *A, const uint8_t *img, float *out);

/* ---- the ImageNet pipeline ------------------------------------------------- */

typedef struct {
    int top, left, h, w; /* the crop, in the source image */
    int flip;
} eff_rrc_params;

/* torchvision 0.14 RandomResizedCrop.get_params on an in_h x in_w image, then
 * the flip, from the stream keyed by (EFF_RNG_AUG, seed, epoch, index): up to
 * 10 tries of (scale uniform in [scale_min, scale_max), log-ratio uniform in
 * [log ratio_min, log ratio_max), top, left uniform integers) until the crop
 * fits, else the centre crop clamped to the ratio range; then flip u < flip_p.
 * Crop sizes round half to even, as Python's round. */
void eff_rrc_draw(const eff_aug_config *c, uint64_t seed, uint64_t epoch, uint64_t index, int in_h, int in_w,
                  eff_rrc_params *p);
/* F.resized_crop(img, top, left, h, w, [S, S], filter), then hflip; out and u8 as above. */
void eff_augment_rrc(eff_augmenter *A, const uint8_t *src, int in_h, int in_w, const eff_rrc_params *p, float *out,
                     uint8_t *u8);
/* Resize(eval_resize) (the shorter side) + CenterCrop(S); needs eval_resize >= S. */
void eff_augment_center(eff_augmenter *A, const uint8_t *src, int in_h, int in_w, float *out, uint8_t *u8);

#endif
