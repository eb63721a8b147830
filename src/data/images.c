/* images.c: the reader of images-to-h5's shard sets (format effnet-images-h5,
 * docs/data-format.md), behind eff_dataset_load: the class names from
 * classes.txt (checked against the index's SHA-256), int32 labels, and the
 * images either fixed (images [n,S,S,3]) or ragged (pixels, offsets, sizes),
 * gathered in global sample order. */
#define _POSIX_C_SOURCE 200809L
#include "data/shard.h"

#include "common.h"
#include "data/data_fail.h"
#include "h5io.h"
#include "sha256.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* classes.txt: num_classes names, one per line, its SHA-256 as the index says. */
static int read_classes(const eff_shard_index *idx, eff_dataset *ds, char *err, size_t errlen) {
    char path[4200], hex[65], line[EFF_CLASS_NAME_LEN + 2];
    snprintf(path, sizeof path, "%s/%s", idx->dir, idx->classes_file);
    if (eff_sha256_file(path, hex) != 0)
        return fail(err, errlen, "cannot read the class list '%s': %s\nHINT: the shard directory is incomplete; "
                    "reconvert with images-to-h5", path, strerror(errno));
    if (strcmp(hex, idx->classes_sha256) != 0)
        return fail(err, errlen, "class list '%s' has SHA-256 %.16s..., the index says %.16s...: it was changed\nHINT: "
                    "reconvert with images-to-h5", path, hex, idx->classes_sha256);
    ds->class_names = calloc((size_t)idx->num_classes, sizeof *ds->class_names);
    FILE *f = fopen(path, "r");
    if (!ds->class_names || !f) {
        if (f) fclose(f);
        return fail(err, errlen, "cannot load the class list '%s': %s", path, f ? "out of memory" : strerror(errno));
    }
    int n = 0;
    while (n < idx->num_classes && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        snprintf(ds->class_names[n++], EFF_CLASS_NAME_LEN, "%.127s", line);
    }
    fclose(f);
    if (n != idx->num_classes)
        return fail(err, errlen, "class list '%s' has %d names, the index says %d classes", path, n, idx->num_classes);
    return 0;
}

/* Read dataset `name` (memtype) into dst, checking its element count. */
static int read_all(hid_t f, const char *path, const char *name, hid_t memtype, void *dst, long long count, char *err,
                    size_t errlen) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) return fail(err, errlen, "shard '%s' has no '%s' dataset", path, name);
    hid_t sp = H5Dget_space(d);
    const long long got = sp >= 0 ? (long long)H5Sget_simple_extent_npoints(sp) : -1;
    if (sp >= 0) H5Sclose(sp);
    int rc = 0;
    if (got != count) {
        rc = fail(err, errlen, "shard '%s': '%s' holds %lld values, %lld expected", path, name, got, count);
    } else if (count > 0 && H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0) {
        char msg[512];
        eff_h5_error_detail(msg, sizeof msg);
        rc = fail(err, errlen, "reading '%s' from shard '%s' failed: %s\nHINT: the file is corrupt (a chunk fails its "
                  "Fletcher-32 checksum) or unreadable; reconvert with images-to-h5", name, path, msg);
    }
    H5Dclose(d);
    return rc;
}

/* The pixel bytes of every shard of a ragged split (their `offsets` last values). */
static int ragged_bytes(const eff_shard_index *idx, const eff_shard_entry *const *order, int nsh, int flags,
                        int64_t *bytes, char *err, size_t errlen) {
    *bytes = 0;
    for (int i = 0; i < nsh; i++) {
        char path[4200];
        hid_t f = eff_shard_open(idx, order[i], flags & ~EFF_LOAD_VERIFY_SHA256, path, sizeof path, err, errlen);
        if (f < 0) return -1;
        int64_t *off = malloc(sizeof(int64_t) * (size_t)(order[i]->n + 1));
        int rc = off ? read_all(f, path, "offsets", H5T_NATIVE_INT64, off, order[i]->n + 1, err, errlen)
                     : fail(err, errlen, "out of memory");
        if (!rc && (off[0] != 0 || off[order[i]->n] < 0))
            rc = fail(err, errlen, "shard '%s': bad offsets (%lld .. %lld)", path, (long long)off[0],
                      (long long)off[order[i]->n]);
        if (!rc) *bytes += off[order[i]->n];
        free(off);
        H5Fclose(f);
        if (rc) return -1;
    }
    return 0;
}

/* Shard `en`'s images into ds (fixed: at en->first; ragged: at *at, offsets
 * and sizes shifted), and its labels; `first`: also the statistics. */
static int load_one(const eff_shard_index *idx, const eff_shard_entry *en, int first, int flags, eff_dataset *ds,
                    int64_t *at, char *err, size_t errlen) {
    char path[4200];
    hid_t f = eff_shard_open(idx, en, flags, path, sizeof path, err, errlen);
    if (f < 0) return -1;
    int rc = 0, ncls = -1;
    if (eff_shard_attr_numeric(f, "num_classes", H5T_NATIVE_INT, &ncls, 1) != 0 || ncls != idx->num_classes ||
        (first && (eff_shard_attr_numeric(f, "train_mean", H5T_NATIVE_DOUBLE, ds->mean, 3) != 0 ||
                   eff_shard_attr_numeric(f, "train_std", H5T_NATIVE_DOUBLE, ds->std, 3) != 0)))
        rc = fail(err, errlen, "shard '%s' lacks valid num_classes/train_mean/train_std attributes", path);
    const long long n = en->n;
    if (!rc) rc = read_all(f, path, "labels", H5T_NATIVE_INT32, ds->labels + en->first, n, err, errlen);
    if (!rc && !ds->offsets) {
        const long long per = (long long)ds->height * ds->width * ds->channels;
        rc = read_all(f, path, "images", H5T_NATIVE_UINT8, ds->images + en->first * per, n * per, err, errlen);
    } else if (!rc) {
        int64_t *off = ds->offsets + en->first;
        rc = read_all(f, path, "offsets", H5T_NATIVE_INT64, off, n + 1, err, errlen);
        if (!rc) rc = read_all(f, path, "sizes", H5T_NATIVE_INT32, ds->sizes + 2 * en->first, 2 * n, err, errlen);
        const int64_t len = rc ? 0 : off[n];
        if (!rc) rc = read_all(f, path, "pixels", H5T_NATIVE_UINT8, ds->images + *at, len, err, errlen);
        for (long long i = 0; !rc && i < n; i++) { /* each image's bytes: h x w x 3, inside the shard */
            const int64_t h = ds->sizes[2 * (en->first + i)], w = ds->sizes[2 * (en->first + i) + 1];
            if (h < 1 || w < 1 || off[i + 1] - off[i] != h * w * 3)
                rc = fail(err, errlen, "shard '%s': image %lld is %lldx%lld but has %lld bytes", path, i, (long long)h,
                          (long long)w, (long long)(off[i + 1] - off[i]));
        }
        for (long long i = 0; !rc && i <= n; i++) off[i] += *at; /* the last one is the next shard's first */
        *at += len;
    }
    for (long long i = 0; !rc && i < n; i++)
        if (ds->labels[en->first + i] < 0 || ds->labels[en->first + i] >= idx->num_classes)
            rc = fail(err, errlen, "shard '%s' sample %lld has label %d, outside 0-%d", path, i,
                      ds->labels[en->first + i], idx->num_classes - 1);
    if (H5Fclose(f) < 0 && !rc) rc = fail(err, errlen, "closing shard '%s' failed", path);
    return rc;
}

int eff_images_load_shards(const eff_shard_index *idx, const eff_shard_entry *const *order, int flags,
                           eff_dataset *ds, char *err, size_t errlen) {
    ds->kind = EFF_DATA_IMAGES;
    snprintf(ds->dataset, sizeof ds->dataset, "%s", idx->dataset);
    ds->height = idx->height;
    ds->width = idx->width;
    ds->channels = idx->channels;
    if (read_classes(idx, ds, err, errlen) != 0) return -1;
    int64_t bytes = ds->n * (int64_t)ds->height * ds->width * ds->channels;
    if (idx->ragged && ragged_bytes(idx, order, ds->n_shards, flags, &bytes, err, errlen) != 0) return -1;
    ds->images = malloc(bytes > 0 ? (size_t)bytes : 1);
    ds->labels = malloc(sizeof *ds->labels * (size_t)ds->n);
    if (idx->ragged) {
        ds->offsets = malloc(sizeof *ds->offsets * (size_t)(ds->n + 1));
        ds->sizes = malloc(sizeof *ds->sizes * 2 * (size_t)ds->n);
    }
    if (!ds->images || !ds->labels || (idx->ragged && (!ds->offsets || !ds->sizes)))
        return fail(err, errlen, "out of memory loading %lld images of split '%s' (%lld bytes)", (long long)ds->n,
                    ds->split, (long long)bytes);
    int64_t at = 0;
    for (int i = 0; i < ds->n_shards; i++)
        if (load_one(idx, order[i], i == 0, flags, ds, &at, err, errlen) != 0) return -1;
    return 0;
}
