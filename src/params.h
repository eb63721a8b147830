/* params.h: a table of named views into one contiguous buffer.
 *
 * Parameters, gradients and the two Adam moments share one table (the same
 * offsets into four buffers); BN running statistics have a table of their own.
 * Names are the PyTorch state_dict keys of the seed's module. Each view
 * records PyTorch's shape and how our storage layout maps to it, so
 * conversion happens only at the I/O boundary (checkpoints, fixtures). */
#ifndef EFFNET_PARAMS_H
#define EFFNET_PARAMS_H

#include <stddef.h>
#include <stdint.h>

typedef enum EffLayout {
    EFF_LAYOUT_SAME = 0,     /* our layout == PyTorch's (1x1 convs, linear, BN) */
    EFF_LAYOUT_OIHW_AS_HWIO, /* dense conv: PyTorch [O][I][H][W], ours [H][W][I][O] */
    EFF_LAYOUT_C1HW_AS_HWC,  /* depthwise conv: PyTorch [C][1][H][W], ours [H][W][C] */
} EffLayout;

typedef enum EffParamKind { EFF_KIND_CONV, EFF_KIND_BN, EFF_KIND_LINEAR, EFF_KIND_BUFFER } EffParamKind;

typedef struct EffView {
    char name[80];
    int ndim;
    int64_t shape[4]; /* PyTorch shape */
    size_t offset;    /* in floats, 16-float aligned */
    size_t numel;
    EffLayout layout;
    EffParamKind kind;
} EffView;

typedef struct EffTable {
    EffView *views;
    int count, capacity;
    size_t total; /* floats, including alignment padding */
} EffTable;

void eff_table_init(EffTable *t);
void eff_table_free(EffTable *t);
/* Append a view; returns its offset. shape is PyTorch's. */
size_t eff_table_add(EffTable *t, const char *name, EffParamKind kind, EffLayout layout, int ndim,
                     const int64_t *shape);
const EffView *eff_table_find(const EffTable *t, const char *name);

/* Convert one tensor between PyTorch's layout and ours. */
void eff_view_from_torch(const EffView *v, const float *torch_src, float *ours);
void eff_view_to_torch(const EffView *v, const float *ours, float *torch_dst);

#endif
