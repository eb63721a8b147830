/* params.c: named views into contiguous buffers, and layout conversion. */
#include "params.h"
#include "common.h"

#include <stdio.h>
#include <string.h>

void eff_table_init(EffTable *t) { memset(t, 0, sizeof *t); }

void eff_table_free(EffTable *t) {
    eff_free(t->views);
    memset(t, 0, sizeof *t);
}

size_t eff_table_add(EffTable *t, const char *name, EffParamKind kind, EffLayout layout, int ndim,
                     const int64_t *shape) {
    if (t->count == t->capacity) {
        int cap = t->capacity ? 2 * t->capacity : 64;
        EffView *nv = eff_calloc((size_t)cap, sizeof(EffView), "parameter table");
        if (t->views) memcpy(nv, t->views, sizeof(EffView) * (size_t)t->count);
        eff_free(t->views);
        t->views = nv;
        t->capacity = cap;
    }
    EffView *v = &t->views[t->count++];
    EFF_CHECK(strlen(name) < sizeof v->name, "tensor name '%s' longer than %zu characters", name, sizeof v->name - 1);
    snprintf(v->name, sizeof v->name, "%s", name);
    v->ndim = ndim;
    v->numel = 1;
    for (int i = 0; i < ndim; i++) { v->shape[i] = shape[i]; v->numel *= (size_t)shape[i]; }
    v->layout = layout;
    v->kind = kind;
    v->offset = t->total;
    t->total += (v->numel + 15) / 16 * 16; /* keep every view 64-byte aligned */
    return v->offset;
}

const EffView *eff_table_find(const EffTable *t, const char *name) {
    for (int i = 0; i < t->count; i++)
        if (strcmp(t->views[i].name, name) == 0) return &t->views[i];
    return NULL;
}

static void convert(const EffView *v, const float *src, float *dst, int to_torch) {
    const int64_t *s = v->shape;
    if (v->layout == EFF_LAYOUT_SAME) {
        memcpy(dst, src, sizeof(float) * v->numel);
    } else if (v->layout == EFF_LAYOUT_OIHW_AS_HWIO) {
        const int64_t O = s[0], I = s[1], H = s[2], W = s[3];
        for (int64_t o = 0; o < O; o++)
            for (int64_t i = 0; i < I; i++)
                for (int64_t h = 0; h < H; h++)
                    for (int64_t w = 0; w < W; w++) {
                        size_t t = (size_t)(((o * I + i) * H + h) * W + w);
                        size_t u = (size_t)(((h * W + w) * I + i) * O + o);
                        if (to_torch) dst[t] = src[u]; else dst[u] = src[t];
                    }
    } else { /* EFF_LAYOUT_C1HW_AS_HWC */
        const int64_t C = s[0], H = s[2], W = s[3];
        for (int64_t c = 0; c < C; c++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++) {
                    size_t t = (size_t)((c * H + h) * W + w);
                    size_t u = (size_t)((h * W + w) * C + c);
                    if (to_torch) dst[t] = src[u]; else dst[u] = src[t];
                }
    }
}

void eff_view_from_torch(const EffView *v, const float *torch_src, float *ours) { convert(v, torch_src, ours, 0); }
void eff_view_to_torch(const EffView *v, const float *ours, float *torch_dst) { convert(v, ours, torch_dst, 1); }
