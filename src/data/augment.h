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

#include <stdint.h>

typedef struct {
    int size;            /* S: output height and width */
    int pad;             /* RandomCrop padding (4) */
    double degrees;      /* RandomRotation range +-degrees (15) */
    double flip_p;       /* RandomHorizontalFlip probability (0.5) */
    double brightness, contrast, saturation, hue; /* ColorJitter (0.2, 0.2, 0.2, 0.1) */
    float mean[3], std[3];                        /* Normalize */
} eff_aug_config;

/* The seed's settings at resolution S (mean/std are the seed's CIFAR-10 values). */
void eff_aug_config_default(eff_aug_config *c, int size);

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

/* PIL Image.resize(BILINEAR): separable, antialiased when shrinking, 22-bit
 * fixed-point weights, the horizontal pass rounded to uint8 before the vertical. */
typedef struct {
    int in_h, in_w, out_h, out_w;
    int kx, ky;             /* coefficients per output pixel */
    int *bx, *by;           /* (first, count) per output column / row */
    int32_t *wx, *wy;       /* fixed-point weights */
    int row0, rows;         /* source rows the vertical pass reads */
    uint8_t *tmp;           /* horizontal-pass rows x out_w x 3 */
} eff_resize_plan;

void eff_resize_plan_init(eff_resize_plan *p, int in_h, int in_w, int out_h, int out_w);
void eff_resize_plan_free(eff_resize_plan *p);
void eff_resize_apply(eff_resize_plan *p, const uint8_t *src, uint8_t *dst); /* dst != src */

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
    eff_resize_plan resize;
    uint8_t *a, *b;          /* S x S x 3 work images */
    float lut[3][256];       /* (v/255 - mean)/std per channel, in float32 like torchvision */
} eff_augmenter;

/* One per thread (it holds scratch buffers). Inputs are in_h x in_w x 3. */
void eff_augmenter_init(eff_augmenter *A, const eff_aug_config *cfg, int in_h, int in_w);
void eff_augmenter_free(eff_augmenter *A);
/* out: S x S x 3 floats. u8 (optional, S x S x 3): the uint8 image before ToTensor. */
void eff_augment_train(eff_augmenter *A, const uint8_t *src, const eff_aug_params *p, float *out, uint8_t *u8);
void eff_augment_test(eff_augmenter *A, const uint8_t *src, float *out, uint8_t *u8);

#endif
