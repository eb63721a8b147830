/* augment.c: see augment.h. Compiled with -ffp-contract=off: each float and
 * double expression below mirrors the one in Pillow's C code (named in the
 * comments) so the rounding is the same. */
#define _POSIX_C_SOURCE 200809L
#include "data/augment.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "data/data_rng.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

void eff_aug_config_default(eff_aug_config *c, int size) {
    static const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, std[3] = {0.2023f, 0.1994f, 0.2010f};
    memset(c, 0, sizeof *c);
    c->pipeline = EFF_PIPE_SEED;
    c->filter = EFF_FILTER_BILINEAR;
    c->size = size;
    c->pad = 4;
    c->degrees = 15.0;
    c->flip_p = 0.5;
    c->brightness = 0.2;
    c->contrast = 0.2;
    c->saturation = 0.2;
    c->hue = 0.1;
    memcpy(c->mean, mean, sizeof mean);
    memcpy(c->std, std, sizeof std);
    c->scale_min = 0.08; /* used by the ImageNet pipeline only */
    c->scale_max = 1.0;
    c->ratio_min = 3.0 / 4.0;
    c->ratio_max = 4.0 / 3.0;
    c->eval_resize = (int)floor(size / 0.875 + 0.5);
}

static double uniform_in(eff_rng_stream *st, double lo, double hi) { return lo + (hi - lo) * eff_rng_uniform(st); }

void eff_aug_draw(const eff_aug_config *c, uint64_t seed, uint64_t epoch, uint64_t index, eff_aug_params *p) {
    eff_rng_stream st = eff_rng_stream_at(eff_rng_key(EFF_RNG_AUG, seed, epoch, index));
    p->flip = eff_rng_uniform(&st) < c->flip_p;
    p->angle = uniform_in(&st, -c->degrees, c->degrees);
    p->crop_top = (int)eff_rng_below(&st, (uint64_t)(2 * c->pad + 1));
    p->crop_left = (int)eff_rng_below(&st, (uint64_t)(2 * c->pad + 1));
    for (int i = 0; i < 4; i++) p->order[i] = i;
    for (int i = 3; i > 0; i--) {
        int j = (int)eff_rng_below(&st, (uint64_t)i + 1);
        int t = p->order[i];
        p->order[i] = p->order[j];
        p->order[j] = t;
    }
    p->brightness = uniform_in(&st, c->brightness < 1 ? 1 - c->brightness : 0, 1 + c->brightness);
    p->contrast = uniform_in(&st, c->contrast < 1 ? 1 - c->contrast : 0, 1 + c->contrast);
    p->saturation = uniform_in(&st, c->saturation < 1 ? 1 - c->saturation : 0, 1 + c->saturation);
    p->hue = uniform_in(&st, -c->hue, c->hue);
}

/* ---- flip, rotate, pad+crop ------------------------------------------------- */

void eff_img_hflip(uint8_t *img, int h, int w) {
    for (int y = 0; y < h; y++) {
        uint8_t *r = img + (size_t)y * w * 3;
        for (int a = 0, b = w - 1; a < b; a++, b--)
            for (int c = 0; c < 3; c++) {
                uint8_t t = r[3 * a + c];
                r[3 * a + c] = r[3 * b + c];
                r[3 * b + c] = t;
            }
    }
}

/* Python's round(x, 15): correctly rounded to 15 decimals. glibc's printf and
 * strtod are exact, like CPython's dtoa, so the result is the same double. */
static double round15(double x) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.15f", x);
    return strtod(buf, NULL);
}

#define COORD(v) ((v) < 0.0 ? -1 : ((int)(v)))
#define FLOOR(v) ((v) < 0.0 ? ((int)floor(v)) : ((int)(v)))
#define FIX(v) FLOOR((v) * 65536.0 + 0.5)

/* Pillow Geometry.c check_fixed. */
static int check_fixed(const double a[6], int x, int y) {
    return fabs(x * a[0] + y * a[1] + a[2]) < 32768.0 && fabs(x * a[3] + y * a[4] + a[5]) < 32768.0;
}

void eff_img_rotate_nearest(const uint8_t *src, int h, int w, double angle, uint8_t *dst) {
    /* Image.rotate: angle % 360.0 with Python's sign rule, then its fast paths. */
    double a = fmod(angle, 360.0);
    if (a != 0.0) {
        if (a < 0) a += 360.0;
    } else {
        a = 0.0;
    }
    size_t n = (size_t)h * w * 3;
    if (a == 0.0) {
        memcpy(dst, src, n);
        return;
    }
    if (a == 180.0) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                memcpy(dst + ((size_t)y * w + x) * 3, src + ((size_t)(h - 1 - y) * w + (w - 1 - x)) * 3, 3);
        return;
    }
    if ((a == 90.0 || a == 270.0) && w == h) { /* Transpose.ROTATE_90 / ROTATE_270 */
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                size_t s = a == 90.0 ? ((size_t)x * w + (w - 1 - y)) : ((size_t)(h - 1 - x) * w + y);
                memcpy(dst + ((size_t)y * w + x) * 3, src + s * 3, 3);
            }
        return;
    }
    double rad = -(a * (M_PI / 180.0));
    double m[6] = {round15(cos(rad)), round15(sin(rad)), 0.0, round15(-sin(rad)), round15(cos(rad)), 0.0};
    double cx = w / 2.0, cy = h / 2.0;
    double t2 = m[0] * (-cx) + m[1] * (-cy) + m[2];
    double t5 = m[3] * (-cx) + m[4] * (-cy) + m[5];
    m[2] = t2 + cx;
    m[5] = t5 + cy;
    memset(dst, 0, n);
    if (m[1] == 0 && m[3] == 0) { /* ImagingScaleAffine with scale 1: a plain shift of 0 */
        memcpy(dst, src, n);
        return;
    }
    /* ImagingTransformAffine: with all four corners within +-32768 (always,
     * for image sizes below that) Pillow uses affine_fixed, 16.16 fixed point. */
    if (check_fixed(m, 0, 0) && check_fixed(m, w, h) && check_fixed(m, 0, h) && check_fixed(m, w, 0)) {
        int a0 = FIX(m[0]), a1 = FIX(m[1]), a3 = FIX(m[3]), a4 = FIX(m[4]);
        int a2 = FIX(m[2] + m[0] * 0.5 + m[1] * 0.5);
        int a5 = FIX(m[5] + m[3] * 0.5 + m[4] * 0.5);
        for (int y = 0; y < h; y++) {
            int xx = a2, yy = a5;
            uint8_t *out = dst + (size_t)y * w * 3;
            for (int x = 0; x < w; x++, out += 3) {
                int xin = xx >> 16; /* arithmetic shift, as in Pillow */
                if (xin >= 0 && xin < w) {
                    int yin = yy >> 16;
                    if (yin >= 0 && yin < h) memcpy(out, src + ((size_t)yin * w + xin) * 3, 3);
                }
                xx += a0;
                yy += a3;
            }
            a2 += a1;
            a5 += a4;
        }
        return;
    }
    /* The floating-point path, incremental in double. */
    double xo = m[2] + m[1] * 0.5 + m[0] * 0.5;
    double yo = m[5] + m[4] * 0.5 + m[3] * 0.5;
    for (int y = 0; y < h; y++) {
        double xx = xo, yy = yo;
        uint8_t *out = dst + (size_t)y * w * 3;
        for (int x = 0; x < w; x++, out += 3) {
            int xin = COORD(xx);
            if (xin >= 0 && xin < w) {
                int yin = COORD(yy);
                if (yin >= 0 && yin < h) memcpy(out, src + ((size_t)yin * w + xin) * 3, 3);
            }
            xx += m[0];
            yy += m[3];
        }
        xo += m[1];
        yo += m[4];
    }
}

void eff_img_pad_crop(const uint8_t *src, int h, int w, int pad, int top, int left, int oh, int ow, uint8_t *dst) {
    for (int y = 0; y < oh; y++) {
        int sy = top + y - pad;
        uint8_t *o = dst + (size_t)y * ow * 3;
        if (sy < 0 || sy >= h) {
            memset(o, 0, (size_t)ow * 3);
            continue;
        }
        for (int x = 0; x < ow; x++) {
            int sx = left + x - pad;
            if (sx < 0 || sx >= w) o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = 0;
            else memcpy(o + 3 * x, src + ((size_t)sy * w + sx) * 3, 3);
        }
    }
}

/* ---- colour: Pillow Blend.c, Convert.c and ImageEnhance ---------------------- */

/* ImagingBlend(im1, im2, alpha): alpha is a C float. */
static inline uint8_t blend(int in1, int in2, float alpha) {
    float t = (float)in1 + alpha * (float)(in2 - in1);
    if (alpha >= 0 && alpha <= 1.0) return (uint8_t)t;
    if (t <= 0.0) return 0;
    if (t >= 255.0) return 255;
    return (uint8_t)t;
}

/* rgb2l: ITU-R 601-2 luma in 16-bit fixed point. */
static inline int luma(const uint8_t *p) { return (p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16; }

void eff_img_brightness(uint8_t *img, int npix, double factor) {
    float alpha = (float)factor;
    uint8_t lut[256];
    for (int v = 0; v < 256; v++) lut[v] = blend(0, v, alpha);
    for (int i = 0; i < 3 * npix; i++) img[i] = lut[img[i]];
}

void eff_img_contrast(uint8_t *img, int npix, double factor) {
    /* ImageStat mean of the L image, as a Python float, then int(mean + 0.5). */
    uint64_t sum = 0;
    for (int i = 0; i < npix; i++) sum += (uint64_t)luma(img + 3 * i);
    double mean = (double)sum / (double)npix;
    int m = (int)(mean + 0.5);
    float alpha = (float)factor;
    uint8_t lut[256];
    for (int v = 0; v < 256; v++) lut[v] = blend(m, v, alpha);
    for (int i = 0; i < 3 * npix; i++) img[i] = lut[img[i]];
}

void eff_img_saturation(uint8_t *img, int npix, double factor) {
    float alpha = (float)factor;
    for (int i = 0; i < npix; i++) {
        uint8_t *p = img + 3 * i;
        int g = luma(p);
        p[0] = blend(g, p[0], alpha);
        p[1] = blend(g, p[1], alpha);
        p[2] = blend(g, p[2], alpha);
    }
}

static inline int clip8i(int v) { return v <= 0 ? 0 : v >= 255 ? 255 : v; }

/* C's round() (half away from zero) for x >= 0, exactly. */
static inline int round_pos(double x) {
    double r = floor(x);
    if (x - r >= 0.5) r += 1.0;
    return (int)r;
}

void eff_img_hue(uint8_t *img, int npix, double hue_factor) {
    /* np_h += np.uint8(hue_factor * 255): truncation toward zero, then mod 256. */
    uint8_t shift = (uint8_t)(int)(hue_factor * 255);
    for (int i = 0; i < npix; i++) {
        uint8_t *px = img + 3 * i;
        uint8_t r = px[0], g = px[1], b = px[2];
        /* rgb2hsv_row */
        uint8_t maxc = r > g ? (r > b ? r : b) : (g > b ? g : b);
        uint8_t minc = r < g ? (r < b ? r : b) : (g < b ? g : b);
        uint8_t uh, us, uv = maxc;
        if (minc == maxc) {
            uh = 0;
            us = 0;
        } else {
            float h, s, rc, gc, bc, cr;
            cr = (float)(maxc - minc);
            s = cr / (float)maxc;
            rc = ((float)(maxc - r)) / cr;
            gc = ((float)(maxc - g)) / cr;
            bc = ((float)(maxc - b)) / cr;
            if (r == maxc) h = bc - gc;
            else if (g == maxc) h = (float)(2.0 + rc - bc);
            else h = (float)(4.0 + gc - rc);
            /* fmod(h / 6.0 + 1.0, 1.0): the argument lies in [5/6, 11/6), where
             * fmod is exactly x or x - 1.0. */
            double hx = h / 6.0 + 1.0;
            h = (float)(hx >= 1.0 ? hx - 1.0 : hx);
            uh = (uint8_t)clip8i((int)(h * 255.0));
            us = (uint8_t)clip8i((int)(s * 255.0));
        }
        uh = (uint8_t)(uh + shift);
        /* hsv2rgb */
        if (us == 0) {
            px[0] = px[1] = px[2] = uv;
            continue;
        }
        int ii = (int)floor((float)uh * 6.0 / 255.0);
        float f = (float)((float)uh * 6.0 / 255.0 - (float)ii);
        float fs = (float)(((float)us) / 255.0);
        int pp = round_pos((float)uv * (1.0 - fs));
        int qq = round_pos((float)uv * (1.0 - fs * f));
        int tt = round_pos((float)uv * (1.0 - fs * (1.0 - f)));
        uint8_t up = (uint8_t)clip8i(pp), uq = (uint8_t)clip8i(qq), ut = (uint8_t)clip8i(tt);
        switch (ii % 6) {
        case 0: px[0] = uv; px[1] = ut; px[2] = up; break;
        case 1: px[0] = uq; px[1] = uv; px[2] = up; break;
        case 2: px[0] = up; px[1] = uv; px[2] = ut; break;
        case 3: px[0] = up; px[1] = uq; px[2] = uv; break;
        case 4: px[0] = ut; px[1] = up; px[2] = uv; break;
        default: px[0] = uv; px[1] = up; px[2] = uq; break;
        }
    }
}

/* ---- pipelines ----------------------------------------------------------------- */

void eff_augmenter_init(eff_augmenter *A, const eff_aug_config *cfg, int in_h, int in_w) {
    EFF_CHECK(cfg->size >= 1 && cfg->size <= 4096, "augmentation: resolution %d is outside 1..4096", cfg->size);
    EFF_CHECK(cfg->pad >= 0 && cfg->pad <= 1024, "augmentation: crop padding %d is outside 0..1024", cfg->pad);
    for (int c = 0; c < 3; c++)
        EFF_CHECK(cfg->std[c] > 0, "augmentation: Normalize std[%d] = %g must be positive", c, (double)cfg->std[c]);
    memset(A, 0, sizeof *A);
    A->cfg = *cfg;
    A->in_h = in_h;
    A->in_w = in_w;
    int S = cfg->size;
    if (cfg->pipeline == EFF_PIPE_SEED) eff_resize_plan_init(&A->resize, in_h, in_w, S, S, cfg->filter);
    A->a = eff_malloc((size_t)S * S * 3, "augmentation image");
    A->b = eff_malloc((size_t)S * S * 3, "augmentation image");
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) {
            float x = (float)v / 255.0f; /* ToTensor: byte tensor .to(float32).div(255) */
            A->lut[c][v] = (x - cfg->mean[c]) / cfg->std[c];
        }
}

void eff_augmenter_free(eff_augmenter *A) {
    eff_resize_plan_free(&A->resize);
    eff_free(A->a);
    eff_free(A->b);
    eff_free(A->big);
    A->a = A->b = A->big = NULL;
}

void eff_augment_normalize(const eff_augmenter *A, const uint8_t *img, float *out) {
    int n = A->cfg.size * A->cfg.size;
    for (int i = 0; i < n; i++) {
        out[3 * i] = A->lut[0][img[3 * i]];
        out[3 * i + 1] = A->lut[1][img[3 * i + 1]];
        out[3 * i + 2] = A->lut[2][img[3 * i + 2]];
    }
}

void eff_augment_train(eff_augmenter *A, const uint8_t *src, const eff_aug_params *p, float *out, uint8_t *u8) {
    int S = A->cfg.size, npix = S * S;
    eff_resize_apply(&A->resize, src, A->a);
    if (p->flip) eff_img_hflip(A->a, S, S);
    eff_img_rotate_nearest(A->a, S, S, p->angle, A->b);
    eff_img_pad_crop(A->b, S, S, A->cfg.pad, p->crop_top, p->crop_left, S, S, A->a);
    for (int k = 0; k < 4; k++) {
        switch (p->order[k]) {
        case 0: eff_img_brightness(A->a, npix, p->brightness); break;
        case 1: eff_img_contrast(A->a, npix, p->contrast); break;
        case 2: eff_img_saturation(A->a, npix, p->saturation); break;
        default: eff_img_hue(A->a, npix, p->hue); break;
        }
    }
    if (u8) memcpy(u8, A->a, (size_t)npix * 3);
    eff_augment_normalize(A, A->a, out);
}

void eff_augment_test(eff_augmenter *A, const uint8_t *src, float *out, uint8_t *u8) {
    eff_resize_apply(&A->resize, src, A->a);
    if (u8) memcpy(u8, A->a, (size_t)A->cfg.size * A->cfg.size * 3);
    eff_augment_normalize(A, A->a, out);
}
