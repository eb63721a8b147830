/* shard.h: the HDF5 shard sets -- CIFAR-10's (data_tools/cifar10-to-h5) and
 * any image folder's (data_tools/images-to-h5, read by images.c) -- and
 * their reader. docs/data-format.md describes both layouts. */
#ifndef EFFNET_DATA_SHARD_H
#define EFFNET_DATA_SHARD_H

#include <stddef.h>
#include <stdint.h>

#define EFF_SHARD_FORMAT "effnet-cifar10-h5"
#define EFF_SHARD_SCHEMA_VERSION 1
#define EFF_SHARD_INDEX_NAME "index.txt"
#define EFF_SHARD_MAX_CLASSES 16
#define EFF_SHARD_NAME_LEN 32 /* fixed-length class-name strings, NUL-padded */
#define EFF_SHARD_MAX_SHARDS 4096
#define EFF_IMAGES_FORMAT "effnet-images-h5" /* images-to-h5's shard sets (images.c) */
#define EFF_IMAGES_SCHEMA_VERSION 1

/* What a shard set holds, from its index's format line. */
enum { EFF_DATA_CIFAR10 = 0, /* cifar10-to-h5: effnet-cifar10-h5, fixed 32x32 */
       EFF_DATA_IMAGES = 1   /* images-to-h5: effnet-images-h5, fixed SxS or ragged (each image its size) */ };

/* One line of the index file. */
typedef struct {
    char split[8];      /* "train" or "test" */
    int index, count;   /* shard index and shard count in its split */
    int64_t first;      /* global index of its first sample in the split */
    int64_t n;          /* samples in this shard */
    int64_t bytes;      /* file size */
    char file[64];      /* name, relative to the index file's directory */
    char sha256[65];    /* of the whole file */
} eff_shard_entry;

typedef struct {
    char dir[4096];     /* directory of the index file */
    char path[4096];    /* the index file */
    int kind;           /* EFF_DATA_CIFAR10 or EFF_DATA_IMAGES (its format line) */
    char dataset[64];   /* images: the data set's name */
    int ragged;         /* images: layout ragged (height = width = 0) */
    char classes_file[64], classes_sha256[65]; /* images: the class-name list and its SHA-256 */
    int height, width, channels, num_classes;
    int64_t split_n[2];   /* samples in train, test */
    int split_shards[2];  /* shards in train, test */
    int n_entries;
    eff_shard_entry *entries;
} eff_shard_index;

/* Parse an index file. Returns 0, or -1 with a message in err. */
int eff_shard_index_read(const char *path, eff_shard_index *idx, char *err, size_t errlen);
void eff_shard_index_free(eff_shard_index *idx);
int eff_split_id(const char *split); /* 0 train, 1 test, -1 otherwise */

#define EFF_DATA_MAX_CLASSES 65536 /* any data set (images-to-h5); CIFAR-10 shards hold at most EFF_SHARD_MAX_CLASSES */
#define EFF_CLASS_NAME_LEN 128


/* A split held in memory, in global sample order. */
typedef struct {
    char split[8];
    int kind;                  /* EFF_DATA_CIFAR10 or EFF_DATA_IMAGES */
    char dataset[64];          /* the data set's name ("cifar10", or the image folder's) */
    int64_t n;                 /* samples */
    int height, width, channels; /* every image's size; height = width = 0: ragged (sizes[]) */
    uint8_t *images;           /* fixed: n x H x W x C, NHWC uint8; ragged: the images back to back, each HWC */
    int64_t *offsets;          /* ragged: n + 1 byte offsets of the images in `images`; NULL when fixed */
    int32_t *sizes;            /* ragged: n x (height, width); NULL when fixed */
    int32_t *labels;           /* n */
    int num_classes;
    char (*class_names)[EFF_CLASS_NAME_LEN]; /* num_classes names, in label order */
    double mean[3], std[3];    /* per-channel train statistics on the [0,1] scale */
    int n_shards;
} eff_dataset;

/* Image i of ds: its pixels (HWC uint8), height and width. */
static inline const uint8_t *eff_dataset_image(const eff_dataset *ds, int64_t i, int *h, int *w) {
    if (!ds->offsets) {
        *h = ds->height;
        *w = ds->width;
        return ds->images + (size_t)i * (size_t)ds->height * (size_t)ds->width * (size_t)ds->channels;
    }
    *h = ds->sizes[2 * i];
    *w = ds->sizes[2 * i + 1];
    return ds->images + ds->offsets[i];
}

enum { EFF_LOAD_VERIFY_SHA256 = 1 }; /* also hash every shard file against the index */

/* Load every shard of `split` named by the index file. Returns 0, or -1 with a
 * message (naming the file) in err; nothing is left allocated on failure. */
int eff_dataset_load(const char *index_path, const char *split, int flags, eff_dataset *ds,
                     char *err, size_t errlen);
/* For the readers (shard.c, images.c): open shard `en` of the index read-only
 * after checking its size (and SHA-256 with EFF_LOAD_VERIFY_SHA256) and its
 * format, schema, split and position attributes; path gets its name. Returns
 * the HDF5 file, or -1 with err set. The attribute helpers: 0, or -1 when
 * missing or of another shape. */
#include <hdf5.h>
hid_t eff_shard_open(const eff_shard_index *idx, const eff_shard_entry *en, int flags, char *path, size_t cap,
                     char *err, size_t errlen);
int eff_shard_attr_numeric(hid_t obj, const char *name, hid_t memtype, void *out, long long expect_n);
int eff_shard_attr_string(hid_t obj, const char *name, char *out, size_t outlen);

/* images.c: the shards of an effnet-images-h5 set, in order (eff_dataset_load
 * parsed the index and set ds->split, n, num_classes, n_shards). */
int eff_images_load_shards(const eff_shard_index *idx, const eff_shard_entry *const *order, int flags,
                           eff_dataset *ds, char *err, size_t errlen);
/* The same, exiting through EFF_FATAL on error. */
void eff_dataset_load_or_die(const char *index_path, const char *split, int flags, eff_dataset *ds);
void eff_dataset_free(eff_dataset *ds);
/* Keep only the samples of the k classes listed (distinct, each < num_classes),
 * in their order, relabelled 0..k-1 in the list's order; class names follow.
 * Returns 0, or -1 with a message in err (nothing changed). */
int eff_dataset_select_classes(eff_dataset *ds, const int *classes, int k, char *err, size_t errlen);
/* Parse "5,6,7" into classes[] (at most cap); returns k >= 1, or 0 with a message. */
int eff_parse_class_list(const char *text, int *classes, int cap, char *err, size_t errlen);

#endif
