/* h5io.c: checked HDF5 helpers. */
#include "h5io.h"
#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hid_t eff_h5_open_read(const char *path) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    EFF_CHECK(f >= 0, "cannot open HDF5 file '%s'\nHINT: check that the path exists and is an HDF5 file (h5ls '%s')", path, path);
    return f;
}

void eff_h5_close(hid_t file, const char *path) {
    EFF_CHECK(H5Fclose(file) >= 0, "closing HDF5 file '%s' failed", path);
}

int eff_h5_exists(hid_t file, const char *name) {
    /* H5Lexists needs every intermediate group to exist: check each prefix. */
    char buf[256];
    size_t n = strlen(name);
    EFF_CHECK(n < sizeof buf, "HDF5 path too long: %s", name);
    memcpy(buf, name, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char save = buf[i];
            buf[i] = '\0';
            htri_t e = H5Lexists(file, buf, H5P_DEFAULT);
            buf[i] = save;
            if (e <= 0) return 0;
        }
    }
    return 1;
}

static void read_any(hid_t file, const char *path, const char *name, hid_t memtype, void *dst, size_t numel) {
    EFF_CHECK(eff_h5_exists(file, name), "dataset '%s' missing in '%s'\nHINT: the file was written by another model or version", name, path);
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    EFF_CHECK(d >= 0, "cannot open dataset '%s' in '%s'", name, path);
    hid_t sp = H5Dget_space(d);
    EFF_CHECK(sp >= 0, "cannot read dataspace of '%s' in '%s'", name, path);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    EFF_CHECK(n >= 0 && (size_t)n == numel, "dataset '%s' in '%s' has %lld elements, expected %zu\nHINT: model or shape mismatch",
              name, path, (long long)n, numel);
    if (H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0) {
        char detail[512];
        eff_h5_error_detail(detail, sizeof detail);
        EFF_FATAL("reading dataset '%s' from '%s' failed: %s\nHINT: the file is damaged (checksum error) or not "
                  "of the expected type; use another copy", name, path, detail);
    }
    H5Sclose(sp);
    H5Dclose(d);
}

void eff_h5_read_f32(hid_t file, const char *path, const char *name, float *dst, size_t numel) {
    read_any(file, path, name, H5T_NATIVE_FLOAT, dst, numel);
}

void eff_h5_read_f64(hid_t file, const char *path, const char *name, double *dst, size_t numel) {
    read_any(file, path, name, H5T_NATIVE_DOUBLE, dst, numel);
}

void eff_h5_read_i32(hid_t file, const char *path, const char *name, int32_t *dst, size_t numel) {
    read_any(file, path, name, H5T_NATIVE_INT32, dst, numel);
}

double eff_h5_attr_double(hid_t file, const char *path, const char *attr) {
    EFF_CHECK(H5Aexists(file, attr) > 0, "attribute '%s' missing in '%s'", attr, path);
    hid_t a = H5Aopen(file, attr, H5P_DEFAULT);
    EFF_CHECK(a >= 0, "cannot open attribute '%s' in '%s'", attr, path);
    double v = 0;
    EFF_CHECK(H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0, "cannot read attribute '%s' in '%s'", attr, path);
    H5Aclose(a);
    return v;
}

void eff_h5_attr_string(hid_t file, const char *path, const char *attr, char *buf, size_t cap) {
    EFF_CHECK(H5Aexists(file, attr) > 0, "attribute '%s' missing in '%s'", attr, path);
    hid_t a = H5Aopen(file, attr, H5P_DEFAULT);
    EFF_CHECK(a >= 0, "cannot open attribute '%s' in '%s'", attr, path);
    hid_t t = H5Aget_type(a);
    EFF_CHECK(H5Tget_class(t) == H5T_STRING, "attribute '%s' in '%s' is not a string", attr, path);
    if (H5Tis_variable_str(t) > 0) {
        char *s = NULL;
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t));
        EFF_CHECK(H5Aread(a, mt, &s) >= 0, "cannot read attribute '%s' in '%s'", attr, path);
        snprintf(buf, cap, "%s", s ? s : "");
        H5free_memory(s);
        H5Tclose(mt);
    } else {
        size_t n = H5Tget_size(t);
        char *tmp = eff_calloc(n + 1, 1, "attribute string");
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, n + 1);
        H5Tset_cset(mt, H5Tget_cset(t));
        EFF_CHECK(H5Aread(a, mt, tmp) >= 0, "cannot read attribute '%s' in '%s'", attr, path);
        snprintf(buf, cap, "%s", tmp);
        eff_free(tmp);
        H5Tclose(mt);
    }
    H5Tclose(t);
    H5Aclose(a);
}

/* ---- error stack ---------------------------------------------------------- */

void eff_h5_quiet_begin(EffH5Quiet *q) {
    q->func = NULL;
    q->data = NULL;
    /* Both calls only fail on an invalid stack id; H5E_DEFAULT is always valid. */
    if (H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data) < 0) q->func = NULL;
    (void)H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void eff_h5_quiet_end(const EffH5Quiet *q) { (void)H5Eset_auto2(H5E_DEFAULT, q->func, q->data); }

typedef struct ErrWalk {
    char *buf;
    size_t len, used;
    int n;
} ErrWalk;

static herr_t err_walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    (void)n;
    ErrWalk *w = data;
    if (w->n >= 3 || !e->desc || !e->desc[0] || w->used + 3 >= w->len) return 0;
    int k = snprintf(w->buf + w->used, w->len - w->used, "%s%s", w->n ? "; " : "", e->desc);
    if (k > 0) w->used += (size_t)k < w->len - w->used ? (size_t)k : w->len - w->used - 1;
    w->n++;
    return 0;
}

void eff_h5_error_detail(char *buf, size_t len) {
    if (!len) return;
    ErrWalk w = {buf, len, 0, 0};
    buf[0] = '\0';
    /* Upward: the innermost (most specific) message first. */
    if (H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, err_walk_cb, &w) < 0 || !buf[0]) snprintf(buf, len, "no HDF5 detail");
}

/* ---- writers (non-fatal) ---------------------------------------------------- */

/* Format "<what>: <HDF5's innermost error>" into err; returns -1. Captures the
 * HDF5 stack first, before any other HDF5 call clears it. */
EFF_PRINTF(3, 4) static int wfail(char *err, size_t errlen, const char *fmt, ...) {
    char detail[512], what[512];
    eff_h5_error_detail(detail, sizeof detail);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (errlen) snprintf(err, errlen, "%s: %s", what, detail);
    return -1;
}

/* Close id with fn; a failure turns *rc into -1 (keeping the first message). */
static void wclose(hid_t id, herr_t (*fn)(hid_t), const char *kind, const char *name, int *rc, char *err,
                   size_t errlen) {
    if (id < 0) return;
    if (fn(id) < 0 && *rc == 0) *rc = wfail(err, errlen, "closing %s '%s' failed", kind, name);
}

int eff_h5_create_group(hid_t loc, const char *name, char *err, size_t errlen) {
    int rc = -1;
    hid_t lcpl = -1, g = -1;
    if ((lcpl = H5Pcreate(H5P_LINK_CREATE)) < 0) { wfail(err, errlen, "creating a link property list for group '%s'", name); goto done; }
    if (H5Pset_create_intermediate_group(lcpl, 1) < 0) { wfail(err, errlen, "setting intermediate group creation for '%s'", name); goto done; }
    if ((g = H5Gcreate2(loc, name, lcpl, H5P_DEFAULT, H5P_DEFAULT)) < 0) { wfail(err, errlen, "creating group '%s'", name); goto done; }
    rc = 0;
done:
    wclose(g, H5Gclose, "group", name, &rc, err, errlen);
    wclose(lcpl, H5Pclose, "link property list of", name, &rc, err, errlen);
    return rc;
}

int eff_h5_write_f32(hid_t loc, const char *name, const float *data, int ndim, const int64_t *dims, int checksum,
                     char *err, size_t errlen) {
    enum { MAXD = 8 };
    if (ndim < 0 || ndim > MAXD) {
        if (errlen) snprintf(err, errlen, "dataset '%s': rank %d not supported (0..%d)", name, ndim, (int)MAXD);
        return -1;
    }
    hsize_t hd[MAXD], chunk[MAXD];
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0) {
            if (errlen) snprintf(err, errlen, "dataset '%s': negative dimension %lld", name, (long long)dims[i]);
            return -1;
        }
        hd[i] = chunk[i] = (hsize_t)dims[i];
        numel *= (size_t)dims[i];
    }
    int rc = -1;
    hid_t sp = -1, dcpl = -1, d = -1;
    sp = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, hd, NULL);
    if (sp < 0) { wfail(err, errlen, "creating the dataspace of '%s'", name); goto done; }
    if ((dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0) { wfail(err, errlen, "creating a dataset property list for '%s'", name); goto done; }
    if (checksum && ndim > 0 && numel > 0) {
        /* One chunk per tensor, split only past 64 MiB (HDF5 caps chunks at 4 GiB). */
        size_t bytes = numel * sizeof(float);
        for (int i = 0; i < ndim && bytes > ((size_t)64 << 20); i++)
            while (chunk[i] > 1 && bytes > ((size_t)64 << 20)) {
                bytes = bytes / chunk[i] * ((chunk[i] + 1) / 2);
                chunk[i] = (chunk[i] + 1) / 2;
            }
        if (H5Pset_chunk(dcpl, ndim, chunk) < 0) { wfail(err, errlen, "setting the chunk size of '%s'", name); goto done; }
        if (H5Pset_fletcher32(dcpl) < 0) { wfail(err, errlen, "enabling the Fletcher-32 checksum of '%s'", name); goto done; }
    }
    if ((d = H5Dcreate2(loc, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0) {
        wfail(err, errlen, "creating dataset '%s'", name);
        goto done;
    }
    if (numel > 0 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        wfail(err, errlen, "writing dataset '%s' (%zu floats)", name, numel);
        goto done;
    }
    rc = 0;
done:
    wclose(d, H5Dclose, "dataset", name, &rc, err, errlen);
    wclose(dcpl, H5Pclose, "dataset property list of", name, &rc, err, errlen);
    wclose(sp, H5Sclose, "dataspace of", name, &rc, err, errlen);
    return rc;
}

int eff_h5_write_i64_scalar(hid_t loc, const char *name, int64_t value, char *err, size_t errlen) {
    int rc = -1;
    hid_t sp = -1, d = -1;
    if ((sp = H5Screate(H5S_SCALAR)) < 0) { wfail(err, errlen, "creating the dataspace of '%s'", name); goto done; }
    if ((d = H5Dcreate2(loc, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
        wfail(err, errlen, "creating dataset '%s'", name);
        goto done;
    }
    if (H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value) < 0) { wfail(err, errlen, "writing dataset '%s'", name); goto done; }
    rc = 0;
done:
    wclose(d, H5Dclose, "dataset", name, &rc, err, errlen);
    wclose(sp, H5Sclose, "dataspace of", name, &rc, err, errlen);
    return rc;
}

/* One scalar attribute: file type ftype, written from *value as memtype. */
static int attr_write(hid_t obj, const char *name, hid_t ftype, hid_t memtype, const void *value, char *err,
                      size_t errlen) {
    int rc = -1;
    hid_t sp = -1, a = -1;
    if ((sp = H5Screate(H5S_SCALAR)) < 0) { wfail(err, errlen, "creating the dataspace of attribute '%s'", name); goto done; }
    if ((a = H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
        wfail(err, errlen, "creating attribute '%s'", name);
        goto done;
    }
    if (H5Awrite(a, memtype, value) < 0) { wfail(err, errlen, "writing attribute '%s'", name); goto done; }
    rc = 0;
done:
    wclose(a, H5Aclose, "attribute", name, &rc, err, errlen);
    wclose(sp, H5Sclose, "dataspace of attribute", name, &rc, err, errlen);
    return rc;
}

/* A fixed-length UTF-8 string of exactly the value's bytes (NUL-padded type,
 * at least 1 byte): unlike a variable-length string it lives in the
 * attribute's own message, not in HDF5's global heap, whose reader
 * (H5HG_read in HDF5 1.10) crashes on some damaged files. */
int eff_h5_attr_write_str(hid_t obj, const char *name, const char *value, char *err, size_t errlen) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return wfail(err, errlen, "creating the string type of attribute '%s'", name);
    int rc = 0;
    const size_t n = strlen(value);
    char *buf = calloc(n + 1, 1);
    if (!buf) rc = wfail(err, errlen, "out of memory for attribute '%s' (%zu bytes)", name, n);
    else memcpy(buf, value, n);
    if (rc == 0 && (H5Tset_size(t, n ? n : 1) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0 ||
                    H5Tset_cset(t, H5T_CSET_UTF8) < 0))
        rc = wfail(err, errlen, "setting up the string type of attribute '%s'", name);
    if (rc == 0) rc = attr_write(obj, name, t, t, buf, err, errlen);
    free(buf);
    wclose(t, H5Tclose, "string type of attribute", name, &rc, err, errlen);
    return rc;
}

int eff_h5_attr_write_i64(hid_t obj, const char *name, int64_t value, char *err, size_t errlen) {
    return attr_write(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, err, errlen);
}

int eff_h5_attr_write_u64(hid_t obj, const char *name, uint64_t value, char *err, size_t errlen) {
    return attr_write(obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &value, err, errlen);
}

int eff_h5_attr_write_f64(hid_t obj, const char *name, double value, char *err, size_t errlen) {
    return attr_write(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, err, errlen);
}

/* ---- readers (fatal) ------------------------------------------------------- */

void eff_h5_fmt_dims(char *buf, size_t cap, int ndim, const int64_t *dims) {
    size_t used = 0;
    int k = snprintf(buf, cap, "[");
    used = k > 0 ? (size_t)k : 0;
    for (int i = 0; i < ndim && used < cap; i++) {
        k = snprintf(buf + used, cap - used, "%s%lld", i ? ", " : "", (long long)dims[i]);
        if (k > 0) used += (size_t)k;
    }
    if (used < cap) snprintf(buf + used, cap - used, "]%s", ndim == 0 ? " (scalar)" : "");
}

int eff_h5_dims(hid_t file, const char *path, const char *name, int64_t *dims, int maxdims) {
    EFF_CHECK(eff_h5_exists(file, name), "dataset '%s' missing in '%s'\nHINT: the file was written by another model or version", name, path);
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    EFF_CHECK(d >= 0, "cannot open dataset '%s' in '%s' (is it a group?)", name, path);
    hid_t sp = H5Dget_space(d);
    EFF_CHECK(sp >= 0, "cannot read the dataspace of '%s' in '%s'", name, path);
    int nd = H5Sget_simple_extent_ndims(sp);
    EFF_CHECK(nd >= 0, "cannot read the rank of '%s' in '%s'", name, path);
    EFF_CHECK(nd <= maxdims, "dataset '%s' in '%s' has rank %d, more than the %d expected", name, path, nd, maxdims);
    hsize_t hd[H5S_MAX_RANK];
    EFF_CHECK(H5Sget_simple_extent_dims(sp, hd, NULL) == nd, "cannot read the dims of '%s' in '%s'", name, path);
    for (int i = 0; i < nd; i++) dims[i] = (int64_t)hd[i];
    EFF_CHECK(H5Sclose(sp) >= 0 && H5Dclose(d) >= 0, "closing dataset '%s' in '%s' failed", name, path);
    return nd;
}

void eff_h5_check_shape(hid_t file, const char *path, const char *name, int ndim, const int64_t *dims, int want_float) {
    int64_t got[H5S_MAX_RANK];
    int nd = eff_h5_dims(file, path, name, got, H5S_MAX_RANK);
    int same = nd == ndim;
    for (int i = 0; same && i < nd; i++) same = got[i] == dims[i];
    if (!same) {
        char a[160], b[160];
        eff_h5_fmt_dims(a, sizeof a, nd, got);
        eff_h5_fmt_dims(b, sizeof b, ndim, dims);
        EFF_FATAL("dataset '%s' in '%s' has shape %s, expected %s\nHINT: the file was written for a different model, "
                  "number of classes or layout; use a file of the same model", name, path, a, b);
    }
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    EFF_CHECK(d >= 0, "cannot open dataset '%s' in '%s'", name, path);
    hid_t t = H5Dget_type(d);
    EFF_CHECK(t >= 0, "cannot read the type of '%s' in '%s'", name, path);
    H5T_class_t c = H5Tget_class(t);
    EFF_CHECK(c == (want_float ? H5T_FLOAT : H5T_INTEGER), "dataset '%s' in '%s' is of HDF5 type class %d, expected %s\n"
              "HINT: write weights and BN statistics as floating point, num_batches_tracked as int64",
              name, path, (int)c, want_float ? "floating point" : "integer");
    EFF_CHECK(H5Tclose(t) >= 0 && H5Dclose(d) >= 0, "closing dataset '%s' in '%s' failed", name, path);
}

void eff_h5_read_i64(hid_t file, const char *path, const char *name, int64_t *dst, size_t numel) {
    read_any(file, path, name, H5T_NATIVE_INT64, dst, numel);
}

static hid_t open_attr(hid_t file, const char *path, const char *obj_name, const char *attr, int optional) {
    EFF_CHECK(strcmp(obj_name, "/") == 0 || eff_h5_exists(file, obj_name), "group '%s' missing in '%s'\n"
              "HINT: the file is not a complete checkpoint of this version", obj_name, path);
    htri_t e = H5Aexists_by_name(file, obj_name, attr, H5P_DEFAULT);
    EFF_CHECK(e >= 0, "cannot look up attribute '%s' of '%s' in '%s'", attr, obj_name, path);
    if (e == 0) {
        EFF_CHECK(optional, "attribute '%s' of '%s' missing in '%s'\nHINT: the file is not a complete checkpoint of this "
                  "version", attr, obj_name, path);
        return -1;
    }
    hid_t a = H5Aopen_by_name(file, obj_name, attr, H5P_DEFAULT, H5P_DEFAULT);
    EFF_CHECK(a >= 0, "cannot open attribute '%s' of '%s' in '%s'", attr, obj_name, path);
    return a;
}

void eff_h5_attr_read(hid_t file, const char *path, const char *obj_name, const char *attr, hid_t memtype, void *dst) {
    hid_t a = open_attr(file, path, obj_name, attr, 0);
    hid_t sp = H5Aget_space(a);
    EFF_CHECK(sp >= 0, "cannot read the dataspace of attribute '%s' of '%s' in '%s'", attr, obj_name, path);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    EFF_CHECK(n == 1, "attribute '%s' of '%s' in '%s' has %lld values, expected one", attr, obj_name, path, (long long)n);
    hid_t t = H5Aget_type(a);
    EFF_CHECK(t >= 0, "cannot read the type of attribute '%s' of '%s' in '%s'", attr, obj_name, path);
    H5T_class_t c = H5Tget_class(t);
    EFF_CHECK(c == H5T_INTEGER || c == H5T_FLOAT, "attribute '%s' of '%s' in '%s' is not a number", attr, obj_name, path);
    EFF_CHECK(H5Aread(a, memtype, dst) >= 0, "cannot read attribute '%s' of '%s' in '%s' (value out of range?)", attr,
              obj_name, path);
    EFF_CHECK(H5Tclose(t) >= 0 && H5Sclose(sp) >= 0 && H5Aclose(a) >= 0, "closing attribute '%s' in '%s' failed", attr, path);
}

char *eff_h5_attr_read_str(hid_t file, const char *path, const char *obj_name, const char *attr, int optional) {
    hid_t a = open_attr(file, path, obj_name, attr, optional);
    if (a < 0) return NULL;
    hid_t t = H5Aget_type(a);
    EFF_CHECK(t >= 0, "cannot read the type of attribute '%s' of '%s' in '%s'", attr, obj_name, path);
    EFF_CHECK(H5Tget_class(t) == H5T_STRING, "attribute '%s' of '%s' in '%s' is not a string", attr, obj_name, path);
    hid_t mt = H5Tcopy(H5T_C_S1);
    EFF_CHECK(mt >= 0, "cannot create a string type for attribute '%s'", attr);
    H5T_cset_t cs = H5Tget_cset(t);
    EFF_CHECK(cs >= 0 && H5Tset_cset(mt, cs) >= 0, "cannot set the character set for attribute '%s'", attr);
    char *out;
    htri_t vl = H5Tis_variable_str(t);
    EFF_CHECK(vl >= 0, "cannot read the string kind of attribute '%s' of '%s' in '%s'", attr, obj_name, path);
    if (vl > 0) {
        char *s = NULL;
        EFF_CHECK(H5Tset_size(mt, H5T_VARIABLE) >= 0, "cannot set up a string type for attribute '%s'", attr);
        EFF_CHECK(H5Aread(a, mt, &s) >= 0, "cannot read attribute '%s' of '%s' in '%s'", attr, obj_name, path);
        size_t n = s ? strlen(s) : 0;
        out = eff_malloc(n + 1, "string attribute");
        memcpy(out, s ? s : "", n + 1);
        EFF_CHECK(H5free_memory(s) >= 0, "freeing attribute '%s' failed", attr);
    } else {
        size_t n = H5Tget_size(t);
        EFF_CHECK(n > 0, "cannot read the size of attribute '%s' of '%s' in '%s'", attr, obj_name, path);
        out = eff_calloc(n + 1, 1, "string attribute");
        EFF_CHECK(H5Tset_size(mt, n + 1) >= 0, "cannot set up a string type for attribute '%s'", attr);
        EFF_CHECK(H5Aread(a, mt, out) >= 0, "cannot read attribute '%s' of '%s' in '%s'", attr, obj_name, path);
    }
    EFF_CHECK(H5Tclose(mt) >= 0 && H5Tclose(t) >= 0 && H5Aclose(a) >= 0, "closing attribute '%s' in '%s' failed", attr, path);
    return out;
}
