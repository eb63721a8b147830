/* shard.h: the CIFAR-10 HDF5 shard set (written by data_tools/cifar10-to-h5)
 * and its reader. docs/data-format.md describes the layout. */
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

/* A split held in memory, in global sample order. */
typedef struct {
    char split[8];
    int64_t n;                 /* samples */
    int height, width, channels;
    uint8_t *images;           /* n x H x W x C, NHWC uint8 */
    uint8_t *labels;           /* n */
    int num_classes;
    char class_names[EFF_SHARD_MAX_CLASSES][EFF_SHARD_NAME_LEN];
    double mean[3], std[3];    /* per-channel train statistics on the [0,1] scale */
    int n_shards;
} eff_dataset;

enum { EFF_LOAD_VERIFY_SHA256 = 1 }; /* also hash every shard file against the index */

/* Load every shard of `split` named by the index file. Returns 0, or -1 with a
 * message (naming the file) in err; nothing is left allocated on failure. */
int eff_dataset_load(const char *index_path, const char *split, int flags, eff_dataset *ds,
                     char *err, size_t errlen);
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
