/* img_h5.h: one shard file of the effnet-images-h5 format (docs/data-format.md),
 * written image batch by image batch so that a shard never has to fit in
 * memory. Every function returns 0, or -1 after printing an error that names
 * the file and quotes HDF5. Every dataset is chunked with Fletcher-32 and no
 * timestamps, so the same calls give the same bytes. */
#ifndef EFFNET_IMG_H5_H
#define EFFNET_IMG_H5_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#define IMG_H5_FORMAT "effnet-images-h5"
#define IMG_H5_SCHEMA_VERSION 1

typedef struct {
    const char *dataset;   /* data set name (basename of --input) */
    int num_classes;
    int fixed;             /* 1: images [n,S,S,3]; 0: ragged pixels/offsets/sizes */
    int S;                 /* fixed side (0 for ragged) */
    int chunk_images;      /* fixed: images per chunk */
    int chunk_bytes;       /* ragged: pixel bytes per chunk */
} img_h5_meta;

typedef struct {
    char path[4400];
    const img_h5_meta *meta;
    hid_t f, d;            /* the file; its images (fixed) or pixels (ragged) dataset */
    int64_t n, cap;        /* images written; images at most */
    int64_t nbytes;        /* ragged: pixel bytes written */
    int32_t *labels, *sizes;
    int64_t *offsets;
    const char **sources;  /* borrowed: the caller keeps the strings alive until img_h5_close */
} img_h5_shard;

/* Create `path` for at most `cap` images of shard k of count of `split`, whose
 * first image has index `first` in the split. num_examples, train_mean and
 * train_std are written as 0 here and set by img_h5_set_totals. */
int img_h5_open(img_h5_shard *w, const char *path, const img_h5_meta *meta, const char *split, int k, int count,
                int64_t first, int64_t cap);
/* Append m images: their pixels back to back (fixed: m*S*S*3 bytes), their
 * labels, (height, width) pairs and source paths. */
int img_h5_append(img_h5_shard *w, const uint8_t *pixels, size_t bytes, int m, const int32_t *labels,
                  const int32_t *hw, const char *const *sources);
/* Write labels (and offsets, sizes), sources; close the file. */
int img_h5_close(img_h5_shard *w);
/* Closes whatever is open (after an error); the caller removes the file. */
void img_h5_abort(img_h5_shard *w);
/* Reopen a finished shard and set num_examples, train_mean, train_std. */
int img_h5_set_totals(const char *path, int64_t num_examples, const double mean[3], const double std[3]);

#endif
