/* conv_common.h: what the two converters (cifar10-to-h5, images-to-h5)
 * share: writing HDF5 attributes and datasets, and the temporary directory
 * beside the output that is renamed onto it at the end. */
#ifndef EFFNET_CONV_COMMON_H
#define EFFNET_CONV_COMMON_H

#include <hdf5.h>
#include <stddef.h>
#include <stdio.h>

#include "h5io.h"

/* When expr is negative: an error naming `path` (a variable in scope), what
 * failed and HDF5's detail, then goto fail. */
#define H5OK(expr, what)                                                                                           \
    do {                                                                                                           \
        if ((expr) < 0) {                                                                                          \
            char msg_[512];                                                                                        \
            eff_h5_error_detail(msg_, sizeof msg_);                                                                \
            fprintf(stderr,                                                                                        \
                    "effnet: error: writing '%s': %s failed: %s\nHINT: check free space and permissions of the " \
                    "output directory\n",                                                                          \
                    path, what, msg_);                                                                             \
            goto fail;                                                                                             \
        }                                                                                                          \
    } while (0)

/* The writers below return 0 (or the new object), or -1 after printing an
 * error that names `path`. */

/* A fixed-width, NUL-padded string attribute: n strings of `width` bytes, or
 * one scalar string when n == 0. */
int conv_attr_strs(hid_t loc, const char *name, const char *values, size_t width, hsize_t n, const char *path);
/* One scalar string attribute, as wide as value (at least 1 byte). */
int conv_attr_str(hid_t loc, const char *name, const char *value, const char *path);
/* A numeric attribute: n values (n == 0: a scalar). */
int conv_attr_num(hid_t loc, const char *name, hid_t filetype, hid_t memtype, const void *v, hsize_t n,
                  const char *path);
/* A chunked, Fletcher-32 dataset of rank dims; maxdims NULL: fixed size.
 * data (if not NULL) is written whole. Returns the open dataset or -1. */
hid_t conv_make_dataset(hid_t f, const char *name, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
                        const hsize_t *maxdims, const hsize_t *chunk, const void *data, const char *path);
/* Create the new file `path` (it must not exist) without timestamps. Returns it or -1. */
hid_t conv_create_file(const char *path);

/* Remove the files directly inside dir, then dir. Returns 0 or -1. */
int conv_remove_tree_flat(const char *dir);
/* Fail early (EFF_FATAL) when no temporary directory can be made beside out;
 * the probe directory is removed at once. tmp (cap bytes) ends "". */
void conv_probe_output(const char *out, char *tmp, size_t cap);
/* Create the temporary directory out.tmp.XXXXXX into tmp (cap bytes), with
 * the umask's permissions; EFF_FATAL when it cannot (tmp is then ""). */
void conv_make_tmp(const char *out, char *tmp, size_t cap);
/* Move the finished temporary directory tmp onto out, replacing an existing
 * out; tmp becomes "" once moved. Returns 0, or -1 after printing an error. */
int conv_commit_output(const char *out, char *tmp);

#endif
