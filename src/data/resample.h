/* resample.h: Pillow 9.4's Image.resize (libImaging/Resample.c) on uint8 RGB
 * HWC images, with the BOX, BILINEAR and BICUBIC filters: separable,
 * antialiased when shrinking, 22-bit fixed-point weights, the horizontal pass
 * rounded to uint8 before the vertical one (which reads only the rows it
 * needs). The result equals PIL's byte for byte (tests/data/
 * test_augment_torchvision.py). Used by the augmentation pipelines
 * (augment.h), the GPU augmentation's host-side weights (kernels/augment.cu)
 * and the image-folder converter (data_tools/img_resize.c). */
#ifndef EFFNET_DATA_RESAMPLE_H
#define EFFNET_DATA_RESAMPLE_H

#include <stdint.h>

enum { EFF_FILTER_BOX = 0, EFF_FILTER_BILINEAR = 1, EFF_FILTER_BICUBIC = 2 };
/* "box" / "bilinear" / "bicubic" -> EFF_FILTER_*, or -1 */
int eff_filter_parse(const char *name);
const char *eff_filter_name(int filter);

typedef struct {
    int in_h, in_w, full_h, full_w, filter; /* resize in_h x in_w to full_h x full_w ... */
    int top, left, out_h, out_w;            /* ... and produce the out_h x out_w window at (top, left) */
    int kx, ky;             /* coefficients per output pixel */
    int *bx, *by;           /* (first, count) per output column / row */
    int32_t *wx, *wy;       /* fixed-point weights */
    int row0, rows;         /* source rows the vertical pass reads */
    uint8_t *tmp;           /* horizontal-pass rows x out_w x 3 */
} eff_resize_plan;

void eff_resize_plan_init(eff_resize_plan *p, int in_h, int in_w, int out_h, int out_w, int filter);
/* Only the crop_h x crop_w window at (top, left) of the out_h x out_w result
 * (the same bytes as resizing, then cropping; only its pixels are computed). */
void eff_resize_plan_init_crop(eff_resize_plan *p, int in_h, int in_w, int out_h, int out_w, int filter, int top,
                               int left, int crop_h, int crop_w);
void eff_resize_plan_free(eff_resize_plan *p);
void eff_resize_apply(eff_resize_plan *p, const uint8_t *src, uint8_t *dst); /* dst (out_h x out_w x 3) != src */

/* torchvision 0.14 Resize(S) with an int S (_compute_resized_output_size):
 * the shorter side becomes S, the longer int(S * long / short), truncated. */
void eff_resized_size(int h, int w, int S, int *new_h, int *new_w);
/* torchvision CenterCrop's offset: int(round((size - S) / 2.0)), Python's
 * round half to even; size >= S. */
int eff_center_offset(int size, int S);

#endif
