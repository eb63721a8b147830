/* img_h5.c: see img_h5.h. The HDF5 writers and their error messages are
 * cifar10-to-h5's (conv_common.c). */
#define _POSIX_C_SOURCE 200809L
#include "img_h5.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv_common.h"

/* Overwrite an existing attribute's value. */
static int attr_set(hid_t f, const char *name, hid_t memtype, const void *v, const char *path) {
    hid_t a = -1;
    H5OK(a = H5Aopen(f, name, H5P_DEFAULT), name);
    H5OK(H5Awrite(a, memtype, v), name);
    H5Aclose(a);
    return 0;
fail:
    if (a >= 0) H5Aclose(a);
    return -1;
}

static int write_attrs(img_h5_shard *w, const char *split, int k, int count, int64_t first) {
    const img_h5_meta *m = w->meta;
    const char *path = w->path;
    int version = IMG_H5_SCHEMA_VERSION, ncls = m->num_classes, shape[3] = {m->S, m->S, 3};
    long long first_ll = first, zero_n = 0;
    double zeros[3] = {0, 0, 0};
    hid_t f = w->f;
    if (conv_attr_str(f, "format", IMG_H5_FORMAT, path) ||
        conv_attr_num(f, "schema_version", H5T_STD_I32LE, H5T_NATIVE_INT, &version, 0, path) ||
        conv_attr_str(f, "dataset", m->dataset, path) || conv_attr_str(f, "split", split, path) ||
        conv_attr_num(f, "shard_index", H5T_STD_I32LE, H5T_NATIVE_INT, &k, 0, path) ||
        conv_attr_num(f, "shard_count", H5T_STD_I32LE, H5T_NATIVE_INT, &count, 0, path) ||
        conv_attr_num(f, "first_index", H5T_STD_I64LE, H5T_NATIVE_LLONG, &first_ll, 0, path) ||
        conv_attr_num(f, "num_examples", H5T_STD_I64LE, H5T_NATIVE_LLONG, &zero_n, 0, path) ||
        conv_attr_num(f, "num_classes", H5T_STD_I32LE, H5T_NATIVE_INT, &ncls, 0, path) ||
        conv_attr_str(f, "layout", m->fixed ? "NHWC" : "ragged", path) ||
        (m->fixed && conv_attr_num(f, "image_shape", H5T_STD_I32LE, H5T_NATIVE_INT, shape, 3, path)) ||
        conv_attr_num(f, "train_mean", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, zeros, 3, path) ||
        conv_attr_num(f, "train_std", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, zeros, 3, path))
        return -1;
    return 0;
}

int img_h5_open(img_h5_shard *w, const char *path_in, const img_h5_meta *meta, const char *split, int k, int count,
                int64_t first, int64_t cap) {
    memset(w, 0, sizeof *w);
    w->f = w->d = -1;
    snprintf(w->path, sizeof w->path, "%s", path_in);
    const char *path = w->path;
    w->meta = meta;
    w->cap = cap;
    w->labels = malloc((size_t)cap * sizeof *w->labels);
    w->sizes = malloc((size_t)cap * 2 * sizeof *w->sizes);
    w->offsets = malloc((size_t)(cap + 1) * sizeof *w->offsets);
    w->sources = malloc((size_t)cap * sizeof *w->sources);
    if (!w->labels || !w->sizes || !w->offsets || !w->sources) {
        fprintf(stderr, "effnet: error: out of memory for the index arrays of '%s' (%lld images)\n", path, (long long)cap);
        return -1;
    }
    if ((w->f = conv_create_file(path)) < 0 || write_attrs(w, split, k, count, first)) return -1;
    if (meta->fixed) {
        hsize_t S = (hsize_t)meta->S, dims[4] = {0, S, S, 3}, maxd[4] = {H5S_UNLIMITED, S, S, 3};
        hsize_t chunk[4] = {(hsize_t)meta->chunk_images, S, S, 3};
        w->d = conv_make_dataset(w->f, "images", H5T_STD_U8LE, H5T_NATIVE_UINT8, 4, dims, maxd, chunk, NULL, path);
    } else {
        hsize_t dims[1] = {0}, maxd[1] = {H5S_UNLIMITED}, chunk[1] = {(hsize_t)meta->chunk_bytes};
        w->d = conv_make_dataset(w->f, "pixels", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, dims, maxd, chunk, NULL, path);
    }
    return w->d < 0 ? -1 : 0;
}

int img_h5_append(img_h5_shard *w, const uint8_t *pixels, size_t bytes, int m, const int32_t *labels,
                  const int32_t *hw, const char *const *sources) {
    const char *path = w->path;
    hid_t fs = -1, ms = -1;
    if (m == 0) return 0;
    if (w->n + m > w->cap) {
        fprintf(stderr, "effnet: error: internal: shard '%s' given %lld images, room for %lld\n", path,
                (long long)(w->n + m), (long long)w->cap);
        return -1;
    }
    int fixed = w->meta->fixed, rank = fixed ? 4 : 1;
    hsize_t S = (hsize_t)w->meta->S;
    hsize_t start[4] = {fixed ? (hsize_t)w->n : (hsize_t)w->nbytes, 0, 0, 0};
    hsize_t count[4] = {fixed ? (hsize_t)m : (hsize_t)bytes, S, S, 3};
    hsize_t ext[4] = {start[0] + count[0], S, S, 3};
    H5OK(H5Dset_extent(w->d, ext), "extending the pixel dataset");
    H5OK(fs = H5Dget_space(w->d), "dataspace");
    H5OK(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL), "selection");
    H5OK(ms = H5Screate_simple(rank, count, NULL), "memory space");
    H5OK(H5Dwrite(w->d, H5T_NATIVE_UINT8, ms, fs, H5P_DEFAULT, pixels), fixed ? "images" : "pixels");
    H5Sclose(ms); H5Sclose(fs);
    for (int i = 0; i < m; i++) {
        int64_t j = w->n + i;
        w->labels[j] = labels[i];
        w->sizes[2 * j] = hw[2 * i];
        w->sizes[2 * j + 1] = hw[2 * i + 1];
        w->offsets[j] = w->nbytes;
        w->nbytes += (int64_t)hw[2 * i] * hw[2 * i + 1] * 3;
        w->sources[j] = sources[i];
    }
    w->n += m;
    w->offsets[w->n] = w->nbytes;
    return 0;
fail:
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return -1;
}

/* sources: fixed-length, NUL-padded strings as wide as the longest path in the shard. */
static int write_sources(img_h5_shard *w) {
    const char *path = w->path;
    size_t width = 1;
    if (w->n < 1) {
        fprintf(stderr, "effnet: error: internal: shard '%s' has no images\n", path);
        return -1;
    }
    for (int64_t i = 0; i < w->n; i++) {
        size_t L = strlen(w->sources[i]);
        if (L > width) width = L;
    }
    char *buf = calloc((size_t)w->n, width);
    hid_t t = -1, d = -1;
    if (!buf) {
        fprintf(stderr, "effnet: error: out of memory for the sources of '%s'\n", path);
        return -1;
    }
    for (int64_t i = 0; i < w->n; i++) memcpy(buf + (size_t)i * width, w->sources[i], strlen(w->sources[i]));
    hsize_t dims[1] = {(hsize_t)w->n}, chunk[1] = {(hsize_t)(w->n < 4096 ? w->n : 4096)};
    H5OK(t = H5Tcopy(H5T_C_S1), "string type");
    H5OK(H5Tset_size(t, width), "string size");
    H5OK(H5Tset_strpad(t, H5T_STR_NULLPAD), "string pad");
    if ((d = conv_make_dataset(w->f, "sources", t, t, 1, dims, NULL, chunk, buf, path)) < 0) goto fail;
    H5OK(H5Dclose(d), "sources");
    H5Tclose(t);
    free(buf);
    return 0;
fail:
    if (t >= 0) H5Tclose(t);
    free(buf);
    return -1;
}

static void free_arrays(img_h5_shard *w) {
    free(w->labels); free(w->sizes); free(w->offsets); free(w->sources);
    w->labels = w->sizes = NULL;
    w->offsets = NULL;
    w->sources = NULL;
}

int img_h5_close(img_h5_shard *w) {
    const char *path = w->path;
    hid_t d = -1;
    hsize_t n = (hsize_t)w->n, c = n < 65536 ? n : 65536;
    hsize_t d1[1] = {n}, c1[1] = {c}, d2[2] = {n, 2}, c2[2] = {c, 2}, d3[1] = {n + 1}, c3[1] = {n + 1 < 65536 ? n + 1 : 65536};
    H5OK(H5Dclose(w->d), w->meta->fixed ? "images" : "pixels");
    w->d = -1;
    if ((d = conv_make_dataset(w->f, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, d1, NULL, c1, w->labels, path)) < 0)
        goto fail;
    H5Dclose(d);
    if (!w->meta->fixed) {
        if ((d = conv_make_dataset(w->f, "offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, d3, NULL, c3, w->offsets, path)) < 0)
            goto fail;
        H5Dclose(d);
        if ((d = conv_make_dataset(w->f, "sizes", H5T_STD_I32LE, H5T_NATIVE_INT32, 2, d2, NULL, c2, w->sizes, path)) < 0)
            goto fail;
        H5Dclose(d);
    }
    if (write_sources(w)) goto fail;
    H5OK(H5Fclose(w->f), "close file");
    w->f = -1;
    free_arrays(w);
    return 0;
fail:
    img_h5_abort(w);
    return -1;
}

void img_h5_abort(img_h5_shard *w) {
    if (w->d >= 0) H5Dclose(w->d);
    if (w->f >= 0) H5Fclose(w->f);
    w->d = w->f = -1;
    free_arrays(w);
}

int img_h5_set_totals(const char *path, int64_t num_examples, const double mean[3], const double std[3]) {
    hid_t f = -1;
    long long n = num_examples;
    H5OK(f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT), "reopen");
    if (attr_set(f, "num_examples", H5T_NATIVE_LLONG, &n, path) || attr_set(f, "train_mean", H5T_NATIVE_DOUBLE, mean, path) ||
        attr_set(f, "train_std", H5T_NATIVE_DOUBLE, std, path))
        goto fail;
    H5OK(H5Fclose(f), "close file");
    return 0;
fail:
    if (f >= 0) H5Fclose(f);
    return -1;
}
