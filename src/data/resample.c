/* resample.c: see resample.h. Compiled with -ffp-contract=off: the weights'
 * double arithmetic mirrors Pillow's C code, so they round the same. */
#include "data/resample.h"

#include <math.h>
#include <string.h>

#include "common.h"

int eff_filter_parse(const char *name) {
    static const char *const names[] = {"box", "bilinear", "bicubic"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, names[i])) return i;
    return -1;
}

const char *eff_filter_name(int filter) {
    return filter == EFF_FILTER_BOX ? "box" : filter == EFF_FILTER_BILINEAR ? "bilinear" : "bicubic";
}

void eff_resized_size(int h, int w, int S, int *new_h, int *new_w) {
    if (h <= w) {
        *new_h = S;
        *new_w = (int)((long long)S * w / h); /* int(S * long / short): exact in 64-bit integers */
    } else {
        *new_w = S;
        *new_h = (int)((long long)S * h / w);
    }
}

int eff_center_offset(int size, int S) { return (int)nearbyint((size - S) / 2.0); }


#define PRECISION_BITS (32 - 8 - 2)

/* Pillow's filters and their supports */
static double box_filter(double x) {
    if (x > -0.5 && x <= 0.5) return 1.0;
    return 0.0;
}

static double bilinear_filter(double x) {
    if (x < 0.0) x = -x;
    if (x < 1.0) return 1.0 - x;
    return 0.0;
}

static double bicubic_filter(double x) { /* a = -0.5 */
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static const struct {
    double (*fn)(double);
    double support;
} filters[] = {{box_filter, 0.5}, {bilinear_filter, 1.0}, {bicubic_filter, 2.0}};

/* precompute_coeffs + normalize_coeffs_8bpc for the box (0, in_size). */
/* Output pixels first .. first + count - 1 of out_size. */
static int axis_coeffs(int in_size, int out_size, int first, int count, int filter, int **bounds_out,
                       int32_t **kk_out) {
    float in0 = 0.0f, in1 = (float)in_size;
    double scale, filterscale;
    filterscale = scale = (double)(in1 - in0) / out_size;
    if (filterscale < 1.0) filterscale = 1.0;
    double support = filters[filter].support * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    int *bounds = eff_malloc((size_t)count * 2 * sizeof(int), "resize bounds");
    int32_t *kk = eff_malloc((size_t)count * ksize * sizeof(int32_t), "resize weights");
    double *k = eff_malloc((size_t)ksize * sizeof(double), "resize weights");
    for (int i = 0; i < count; i++) {
        const int xx = first + i;
        double center = in0 + (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        int x;
        for (x = 0; x < xmax; x++) {
            double w = filters[filter].fn((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < ksize; x++) k[x] = 0;
        for (x = 0; x < ksize; x++)
            kk[i * ksize + x] = k[x] < 0 ? (int32_t)(-0.5 + k[x] * (1 << PRECISION_BITS))
                                          : (int32_t)(0.5 + k[x] * (1 << PRECISION_BITS));
        bounds[2 * i] = xmin;
        bounds[2 * i + 1] = xmax;
    }
    eff_free(k);
    *bounds_out = bounds;
    *kk_out = kk;
    return ksize;
}

static inline uint8_t clip8(int in) {
    if (in >= (1 << PRECISION_BITS << 8)) return 255;
    if (in <= 0) return 0;
    return (uint8_t)(in >> PRECISION_BITS);
}

void eff_resize_plan_init_crop(eff_resize_plan *p, int in_h, int in_w, int out_h, int out_w, int filter, int top,
                               int left, int crop_h, int crop_w) {
    EFF_CHECK(in_h > 0 && in_w > 0 && out_h > 0 && out_w > 0, "resize %dx%d -> %dx%d: sizes must be positive", in_h,
              in_w, out_h, out_w);
    EFF_CHECK(top >= 0 && left >= 0 && crop_h > 0 && crop_w > 0 && top + crop_h <= out_h && left + crop_w <= out_w,
              "resize: crop %dx%d at (%d, %d) is outside the %dx%d result", crop_h, crop_w, top, left, out_h, out_w);
    EFF_CHECK(filter >= EFF_FILTER_BOX && filter <= EFF_FILTER_BICUBIC, "resize: unknown filter %d", filter);
    memset(p, 0, sizeof *p);
    p->in_h = in_h; p->in_w = in_w; p->full_h = out_h; p->full_w = out_w; p->filter = filter;
    p->top = top; p->left = left; p->out_h = crop_h; p->out_w = crop_w;
    p->kx = axis_coeffs(in_w, out_w, left, crop_w, filter, &p->bx, &p->wx);
    p->ky = axis_coeffs(in_h, out_h, top, crop_h, filter, &p->by, &p->wy);
    /* ImagingResampleInner: the horizontal pass covers only the rows the vertical pass reads. */
    p->row0 = p->by[0];
    p->rows = p->by[2 * crop_h - 2] + p->by[2 * crop_h - 1] - p->row0;
    p->tmp = eff_malloc((size_t)p->rows * crop_w * 3, "resize rows");
}

void eff_resize_plan_init(eff_resize_plan *p, int in_h, int in_w, int out_h, int out_w, int filter) {
    eff_resize_plan_init_crop(p, in_h, in_w, out_h, out_w, filter, 0, 0, out_h, out_w);
}

void eff_resize_plan_free(eff_resize_plan *p) {
    eff_free(p->bx); eff_free(p->by); eff_free(p->wx); eff_free(p->wy); eff_free(p->tmp);
    memset(p, 0, sizeof *p);
}

/* The horizontal pass of one source row into out_w pixels. */
static void hpass_row(const eff_resize_plan *p, const uint8_t *in, uint8_t *o) {
    for (int xx = 0; xx < p->out_w; xx++) {
        int xmin = p->bx[2 * xx], xmax = p->bx[2 * xx + 1];
        const int32_t *k = p->wx + (size_t)xx * p->kx;
        int s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
        const uint8_t *q = in + (size_t)xmin * 3;
        for (int x = 0; x < xmax; x++) {
            s0 += q[3 * x] * k[x];
            s1 += q[3 * x + 1] * k[x];
            s2 += q[3 * x + 2] * k[x];
        }
        o[3 * xx] = clip8(s0); o[3 * xx + 1] = clip8(s1); o[3 * xx + 2] = clip8(s2);
    }
}

/* A source row, resized horizontally, or its window's columns as they are. */
static void row_pass(const eff_resize_plan *p, int need_h, const uint8_t *src, int y, uint8_t *o) {
    const uint8_t *in = src + (size_t)y * p->in_w * 3;
    if (need_h) hpass_row(p, in, o);
    else memcpy(o, in + (size_t)p->left * 3, (size_t)p->out_w * 3);
}

void eff_resize_apply(eff_resize_plan *p, const uint8_t *src, uint8_t *dst) {
    const int need_h = p->in_w != p->full_w, need_v = p->in_h != p->full_h;
    const size_t stride = (size_t)p->out_w * 3;
    if (!need_v) { /* rows top .. top + out_h straight into dst */
        for (int yy = 0; yy < p->out_h; yy++) row_pass(p, need_h, src, p->top + yy, dst + (size_t)yy * stride);
        return;
    }
    const uint8_t *vin = src + (size_t)p->left * 3;
    size_t vstride = (size_t)p->in_w * 3;
    int vin_row0 = 0;
    if (need_h) {
        for (int yy = 0; yy < p->rows; yy++) hpass_row(p, src + (size_t)(yy + p->row0) * p->in_w * 3, p->tmp + yy * stride);
        vin = p->tmp;
        vstride = stride;
        vin_row0 = p->row0;
    }
    for (int yy = 0; yy < p->out_h; yy++) {
        int ymin = p->by[2 * yy] - vin_row0, ymax = p->by[2 * yy + 1];
        const int32_t *k = p->wy + (size_t)yy * p->ky;
        uint8_t *o = dst + (size_t)yy * stride;
        const uint8_t *base = vin + (size_t)ymin * vstride;
        for (size_t xc = 0; xc < stride; xc++) {
            int s = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < ymax; y++) s += base[(size_t)y * vstride + xc] * k[y];
            o[xc] = clip8(s);
        }
    }
}
