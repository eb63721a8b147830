/* shard.c: read the shard index and load a split into memory. */
#define _POSIX_C_SOURCE 200809L
#include "data/shard.h"

#include <errno.h>
#include <hdf5.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "data/data_fail.h"
#include "h5io.h"
#include "sha256.h"

int eff_split_id(const char *split) {
    if (strcmp(split, "train") == 0) return 0;
    if (strcmp(split, "test") == 0) return 1;
    return -1;
}

/* ---- index file -------------------------------------------------------- */

void eff_shard_index_free(eff_shard_index *idx) {
    free(idx->entries);
    idx->entries = NULL;
    idx->n_entries = 0;
}

static int is_hex64(const char *s) {
    if (strlen(s) != 64) return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

/* The keys only image-folder indexes have: dataset NAME, layout fixed|ragged,
 * classes FILE SHA256, skipped FILE N. 0, or -1 when malformed. */
static int images_key(eff_shard_index *idx, const char *key, const char *line, char *s1, char *s2) {
    if (idx->kind != EFF_DATA_IMAGES) return -1;
    if (!strcmp(key, "dataset")) return sscanf(line, "%*s %63s", idx->dataset) == 1 ? 0 : -1;
    if (!strcmp(key, "layout")) {
        if (sscanf(line, "%*s %63s", s1) != 1 || (strcmp(s1, "fixed") && strcmp(s1, "ragged"))) return -1;
        idx->ragged = !strcmp(s1, "ragged");
        return 0;
    }
    if (!strcmp(key, "classes")) {
        if (sscanf(line, "%*s %63s %79s", s1, s2) != 2 || strchr(s1, '/') || !is_hex64(s2)) return -1;
        snprintf(idx->classes_file, sizeof idx->classes_file, "%s", s1);
        snprintf(idx->classes_sha256, sizeof idx->classes_sha256, "%s", s2);
        return 0;
    }
    return 0; /* skipped FILE N: the converter's report, nothing to load */
}

typedef struct {
    const char *path;
    int lineno, have_format, have_version, cap;
} index_parse;

/* A "shard SPLIT INDEX COUNT FIRST N BYTES FILE SHA256" line, appended. */
static int shard_line(eff_shard_index *idx, index_parse *ps, const char *line, char *err, size_t errlen) {
    eff_shard_entry en;
    char s2[80], s3[80];
    long long a, b, c, d, e;
    memset(&en, 0, sizeof en);
    if (sscanf(line, "%*s %7s %lld %lld %lld %lld %lld %79s %79s", en.split, &a, &b, &c, &d, &e, s2, s3) != 8 ||
        eff_split_id(en.split) < 0 || a < 0 || b < 1 || a >= b || b > EFF_SHARD_MAX_SHARDS || c < 0 || d < 1 ||
        e < 1 || strlen(s2) >= sizeof en.file || strchr(s2, '/') || !is_hex64(s3))
        return fail(err, errlen, "%s:%d: bad shard line '%s'\nHINT: expected 'shard SPLIT INDEX COUNT FIRST N BYTES FILE "
                    "SHA256'", ps->path, ps->lineno, line);
    en.index = (int)a; en.count = (int)b; en.first = c; en.n = d; en.bytes = e;
    snprintf(en.file, sizeof en.file, "%.63s", s2);
    snprintf(en.sha256, sizeof en.sha256, "%.64s", s3);
    if (idx->n_entries == ps->cap) {
        ps->cap = ps->cap ? 2 * ps->cap : 16;
        if (ps->cap > 2 * EFF_SHARD_MAX_SHARDS) return fail(err, errlen, "%s: too many shard lines", ps->path);
        eff_shard_entry *ne = realloc(idx->entries, (size_t)ps->cap * sizeof *ne);
        if (!ne) return fail(err, errlen, "out of memory reading '%s'", ps->path);
        idx->entries = ne;
    }
    idx->entries[idx->n_entries++] = en;
    return 0;
}

/* "format", "schema_version" and the size keys. */
static int header_line(eff_shard_index *idx, index_parse *ps, const char *key, const char *line, char *err,
                       size_t errlen) {
    char s1[64];
    int v;
    if (!strcmp(key, "format")) {
        if (sscanf(line, "%*s %63s", s1) != 1 || (strcmp(s1, EFF_SHARD_FORMAT) && strcmp(s1, EFF_IMAGES_FORMAT)))
            return fail(err, errlen, "%s:%d: format is '%s', expected '%s' or '%s'\nHINT: this is not a shard index "
                        "written by cifar10-to-h5 or images-to-h5", ps->path, ps->lineno, line, EFF_SHARD_FORMAT,
                        EFF_IMAGES_FORMAT);
        idx->kind = strcmp(s1, EFF_SHARD_FORMAT) ? EFF_DATA_IMAGES : EFF_DATA_CIFAR10;
        ps->have_format = 1;
        return 0;
    }
    if (!strcmp(key, "schema_version")) {
        const int want = idx->kind == EFF_DATA_IMAGES ? EFF_IMAGES_SCHEMA_VERSION : EFF_SHARD_SCHEMA_VERSION;
        if (!ps->have_format || sscanf(line, "%*s %d", &v) != 1 || v != want)
            return fail(err, errlen, "%s:%d: schema version '%s', this build reads version %d (after the format "
                        "line)\nHINT: reconvert the data with this build's converter", ps->path, ps->lineno, line + 15,
                        want);
        ps->have_version = 1;
        return 0;
    }
    const int cifar = idx->kind == EFF_DATA_CIFAR10, lo = !cifar && strcmp(key, "channels") ? 0 : 1;
    if (sscanf(line, "%*s %d", &v) != 1 || v < lo || v > (cifar ? 4096 : 1 << 20) ||
        (!strcmp(key, "num_classes") && v > (cifar ? EFF_SHARD_MAX_CLASSES : EFF_DATA_MAX_CLASSES)) ||
        (!strcmp(key, "channels") && v != 3))
        return fail(err, errlen, "%s:%d: bad value in '%s'", ps->path, ps->lineno, line);
    if (!strcmp(key, "height")) idx->height = v;
    else if (!strcmp(key, "width")) idx->width = v;
    else if (!strcmp(key, "channels")) idx->channels = v;
    else idx->num_classes = v;
    return 0;
}

/* One non-comment line of the index. */
static int index_line(eff_shard_index *idx, index_parse *ps, const char *line, char *err, size_t errlen) {
    char key[32], s1[64], s2[80];
    long long a, b;
    if (sscanf(line, "%31s", key) != 1) return 0;
    if (!strcmp(key, "format") || !strcmp(key, "schema_version") || !strcmp(key, "height") || !strcmp(key, "width") ||
        !strcmp(key, "channels") || !strcmp(key, "num_classes"))
        return header_line(idx, ps, key, line, err, errlen);
    if (!strcmp(key, "dataset") || !strcmp(key, "layout") || !strcmp(key, "classes") || !strcmp(key, "skipped")) {
        if (images_key(idx, key, line, s1, s2) != 0)
            return fail(err, errlen, "%s:%d: bad line '%s' (or a key of image-folder shards in another index)",
                        ps->path, ps->lineno, line);
        return 0;
    }
    if (!strcmp(key, "split")) {
        int sid;
        if (sscanf(line, "%*s %63s %lld %lld", s1, &a, &b) != 3 || (sid = eff_split_id(s1)) < 0 || a < 0 || b < 1 ||
            b > EFF_SHARD_MAX_SHARDS)
            return fail(err, errlen, "%s:%d: bad split line '%s'", ps->path, ps->lineno, line);
        idx->split_n[sid] = a;
        idx->split_shards[sid] = (int)b;
        return 0;
    }
    if (!strcmp(key, "shard")) return shard_line(idx, ps, line, err, errlen);
    return fail(err, errlen, "%s:%d: unknown key '%s'", ps->path, ps->lineno, key);
}

/* Every key the index must have. */
static int index_complete(const eff_shard_index *idx, const index_parse *ps, char *err, size_t errlen) {
    if (!ps->have_format || !ps->have_version)
        return fail(err, errlen, "'%s' has no 'format %s' and 'schema_version' lines\nHINT: this is not a shard index "
                    "written by cifar10-to-h5", ps->path, EFF_SHARD_FORMAT);
    if ((!idx->ragged && (!idx->height || !idx->width)) || !idx->channels || !idx->num_classes)
        return fail(err, errlen, "'%s' lacks one of height, width, channels, num_classes", ps->path);
    if (idx->kind == EFF_DATA_IMAGES && (!idx->classes_file[0] || !idx->dataset[0]))
        return fail(err, errlen, "'%s' lacks its 'dataset' or 'classes' line", ps->path);
    return 0;
}

int eff_shard_index_read(const char *path, eff_shard_index *idx, char *err, size_t errlen) {
    memset(idx, 0, sizeof *idx);
    if (strlen(path) >= sizeof idx->path)
        return fail(err, errlen, "index path '%.80s...' is too long", path);
    snprintf(idx->path, sizeof idx->path, "%s", path);
    snprintf(idx->dir, sizeof idx->dir, "%s", path);
    char *slash = strrchr(idx->dir, '/');
    if (slash) *slash = '\0'; else snprintf(idx->dir, sizeof idx->dir, ".");

    FILE *f = fopen(path, "r");
    if (!f)
        return fail(err, errlen, "cannot open shard index '%s': %s\nHINT: pass the index.txt that cifar10-to-h5 wrote into its --output directory",
                    path, strerror(errno));
    char line[512];
    index_parse ps = {path, 0, 0, 0, 0};
    int rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        ps.lineno++;
        size_t L = strlen(line);
        if (L && line[L - 1] != '\n' && !feof(f)) {
            rc = fail(err, errlen, "%s:%d: line too long", path, ps.lineno);
            break;
        }
        while (L && (line[L - 1] == '\n' || line[L - 1] == '\r')) line[--L] = '\0';
        if (L && line[0] != '#') rc = index_line(idx, &ps, line, err, errlen);
    }
    if (!rc && ferror(f)) rc = fail(err, errlen, "reading shard index '%s' failed: %s", path, strerror(errno));
    fclose(f);
    if (!rc) rc = index_complete(idx, &ps, err, errlen);
    if (rc) eff_shard_index_free(idx);
    return rc;
}

/* ---- HDF5 helpers ------------------------------------------------------ */

static int attr_string(hid_t obj, const char *name, char *out, size_t outlen) {
    int rc = -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t t = H5Aget_type(a);
    if (t >= 0 && H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) == 0) {
        size_t sz = H5Tget_size(t);
        if (sz > 0 && sz < outlen) {
            hid_t m = H5Tcopy(H5T_C_S1);
            if (m >= 0 && H5Tset_size(m, sz) >= 0 && H5Tset_strpad(m, H5T_STR_NULLPAD) >= 0) {
                memset(out, 0, outlen);
                if (H5Aread(a, m, out) >= 0) rc = 0;
            }
            if (m >= 0) H5Tclose(m);
        }
    }
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    return rc;
}

static int attr_numeric(hid_t obj, const char *name, hid_t memtype, void *out, hssize_t expect_n) {
    int rc = -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t sp = H5Aget_space(a);
    if (sp >= 0 && H5Sget_simple_extent_npoints(sp) == expect_n && H5Aread(a, memtype, out) >= 0) rc = 0;
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return rc;
}

static int attr_string_array(hid_t obj, const char *name, int n, char names[][EFF_SHARD_NAME_LEN]);

/* CIFAR-10's class names (fixed EFF_SHARD_NAME_LEN strings) into ds's table. */
static int read_class_names(hid_t f, int n, eff_dataset *ds) {
    char names[EFF_SHARD_MAX_CLASSES][EFF_SHARD_NAME_LEN];
    if (n < 1 || n > EFF_SHARD_MAX_CLASSES || attr_string_array(f, "class_names", n, names) != 0) return -1;
    for (int i = 0; i < n; i++) memcpy(ds->class_names[i], names[i], EFF_SHARD_NAME_LEN); /* NUL-terminated by attr_string_array */
    return 0;
}

static int attr_string_array(hid_t obj, const char *name, int n, char names[][EFF_SHARD_NAME_LEN]) {
    int rc = -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t sp = H5Aget_space(a), t = H5Aget_type(a);
    if (sp >= 0 && t >= 0 && H5Sget_simple_extent_npoints(sp) == n && H5Tget_class(t) == H5T_STRING &&
        H5Tis_variable_str(t) == 0 && H5Tget_size(t) == EFF_SHARD_NAME_LEN) {
        hid_t m = H5Tcopy(H5T_C_S1);
        if (m >= 0 && H5Tset_size(m, EFF_SHARD_NAME_LEN) >= 0 && H5Tset_strpad(m, H5T_STR_NULLPAD) >= 0 &&
            H5Aread(a, m, names) >= 0)
            rc = 0;
        if (m >= 0) H5Tclose(m);
        for (int i = 0; i < n; i++) names[i][EFF_SHARD_NAME_LEN - 1] = '\0';
    }
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return rc;
}

/* Check a dataset is unsigned 8-bit with exactly the given dims. */
static int check_u8_dataset(hid_t ds, int rank, const hsize_t *dims) {
    int ok = 0;
    hid_t t = H5Dget_type(ds), sp = H5Dget_space(ds);
    if (t >= 0 && sp >= 0 && H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) == 1 && H5Tget_sign(t) == H5T_SGN_NONE &&
        H5Sget_simple_extent_ndims(sp) == rank) {
        hsize_t got[8];
        H5Sget_simple_extent_dims(sp, got, NULL);
        ok = 1;
        for (int i = 0; i < rank; i++) ok &= got[i] == dims[i];
    }
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    return ok;
}

/* ---- loading ----------------------------------------------------------- */

void eff_dataset_free(eff_dataset *ds) {
    free(ds->images);
    free(ds->labels);
    free(ds->offsets);
    free(ds->sizes);
    free(ds->class_names);
    ds->images = NULL;
    ds->labels = NULL;
    ds->offsets = NULL;
    ds->sizes = NULL;
    ds->class_names = NULL;
    ds->n = 0;
}

hid_t eff_shard_open(const eff_shard_index *idx, const eff_shard_entry *en, int flags, char *path, size_t cap,
                     char *err, size_t errlen) {
    char h5msg[512], s[64];
    const char *tool = idx->kind == EFF_DATA_IMAGES ? "images-to-h5" : "cifar10-to-h5";
    const char *format = idx->kind == EFF_DATA_IMAGES ? EFF_IMAGES_FORMAT : EFF_SHARD_FORMAT;
    const int version = idx->kind == EFF_DATA_IMAGES ? EFF_IMAGES_SCHEMA_VERSION : EFF_SHARD_SCHEMA_VERSION;
    snprintf(path, cap, "%s/%s", idx->dir, en->file);
    struct stat st;
    if (stat(path, &st) != 0)
        return fail(err, errlen, "shard '%s' listed in '%s' cannot be read: %s\nHINT: the shard directory is incomplete; "
                    "reconvert with %s", path, idx->path, strerror(errno), tool);
    if ((long long)st.st_size != (long long)en->bytes)
        return fail(err, errlen, "shard '%s' is %lld bytes but the index says %lld: truncated or replaced\nHINT: "
                    "reconvert with %s", path, (long long)st.st_size, (long long)en->bytes, tool);
    if (flags & EFF_LOAD_VERIFY_SHA256) {
        char hex[65];
        if (eff_sha256_file(path, hex) != 0)
            return fail(err, errlen, "cannot read shard '%s': %s", path, strerror(errno));
        if (strcmp(hex, en->sha256) != 0)
            return fail(err, errlen, "shard '%s' has SHA-256 %s but the index says %s: the file is corrupt\nHINT: "
                        "reconvert with %s", path, hex, en->sha256, tool);
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        eff_h5_error_detail(h5msg, sizeof h5msg);
        return fail(err, errlen, "cannot open HDF5 shard '%s': %s\nHINT: reconvert with %s", path, h5msg, tool);
    }
    int rc = 0, iv[3];
    long long first = -1;
    if (attr_string(f, "format", s, sizeof s) != 0 || strcmp(s, format) != 0) {
        rc = fail(err, errlen, "shard '%s' has no attribute format='%s'", path, format);
    } else if (attr_numeric(f, "schema_version", H5T_NATIVE_INT, &iv[0], 1) != 0 || iv[0] != version) {
        rc = fail(err, errlen, "shard '%s' has schema version %d, this build reads %d\nHINT: reconvert with this "
                  "build's %s", path, iv[0], version, tool);
    } else if (attr_string(f, "split", s, sizeof s) != 0 || strcmp(s, en->split) != 0 ||
               attr_numeric(f, "shard_index", H5T_NATIVE_INT, &iv[1], 1) != 0 || iv[1] != en->index ||
               attr_numeric(f, "shard_count", H5T_NATIVE_INT, &iv[2], 1) != 0 || iv[2] != en->count ||
               attr_numeric(f, "first_index", H5T_NATIVE_LLONG, &first, 1) != 0 || first != en->first) {
        rc = fail(err, errlen, "shard '%s' attributes (split, shard_index, shard_count, first_index) disagree with "
                  "'%s' (%s %d/%d from %lld)", path, idx->path, en->split, en->index, en->count, (long long)en->first);
    }
    if (rc) {
        H5Fclose(f);
        return -1;
    }
    return f;
}

int eff_shard_attr_numeric(hid_t obj, const char *name, hid_t memtype, void *out, long long expect_n) {
    return attr_numeric(obj, name, memtype, out, (hssize_t)expect_n);
}

int eff_shard_attr_string(hid_t obj, const char *name, char *out, size_t outlen) {
    return attr_string(obj, name, out, outlen);
}

static int load_shard(const eff_shard_index *idx, const eff_shard_entry *en, int first_shard, int flags,
                      eff_dataset *ds, char *err, size_t errlen) {
    char path[4200], h5msg[512];
    hid_t f = eff_shard_open(idx, en, flags, path, sizeof path, err, errlen);
    if (f < 0) return -1;
    int rc = 0, iv[4];
    if (first_shard &&
               (attr_numeric(f, "num_classes", H5T_NATIVE_INT, &iv[3], 1) != 0 || iv[3] != idx->num_classes ||
                read_class_names(f, iv[3], ds) != 0 ||
                attr_numeric(f, "train_mean", H5T_NATIVE_DOUBLE, ds->mean, 3) != 0 ||
                attr_numeric(f, "train_std", H5T_NATIVE_DOUBLE, ds->std, 3) != 0)) {
        rc = fail(err, errlen, "shard '%s' lacks valid num_classes/class_names/train_mean/train_std attributes", path);
    }
    const char *names[2] = {"images", "labels"};
    for (int k = 0; k < 2 && rc == 0; k++) {
        hsize_t dims[4] = {(hsize_t)en->n, (hsize_t)idx->height, (hsize_t)idx->width, (hsize_t)idx->channels};
        hid_t d = H5Dopen2(f, names[k], H5P_DEFAULT);
        if (d < 0) {
            rc = fail(err, errlen, "shard '%s' has no '%s' dataset", path, names[k]);
            break;
        }
        if (!check_u8_dataset(d, k == 0 ? 4 : 1, dims)) {
            if (k == 0)
                rc = fail(err, errlen, "shard '%s': 'images' is not uint8 [%lld, %d, %d, %d]", path, (long long)en->n,
                          idx->height, idx->width, idx->channels);
            else
                rc = fail(err, errlen, "shard '%s': 'labels' is not uint8 [%lld]", path, (long long)en->n);
        } else {
            size_t per = k == 0 ? (size_t)idx->height * idx->width * idx->channels : 1;
            void *dst = k == 0 ? (void *)(ds->images + (size_t)en->first * per) : (void *)(ds->labels + en->first);
            if (H5Dread(d, k == 0 ? H5T_NATIVE_UINT8 : H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0) {
                eff_h5_error_detail(h5msg, sizeof h5msg);
                rc = fail(err, errlen, "reading '%s' from shard '%s' failed: %s\nHINT: the file is corrupt (a chunk fails its Fletcher-32 checksum) or unreadable; reconvert with cifar10-to-h5",
                          names[k], path, h5msg);
            }
        }
        H5Dclose(d);
    }
    if (rc == 0) {
        for (int64_t i = 0; i < en->n; i++) {
            int lab = ds->labels[en->first + i];
            if (lab < 0 || lab >= idx->num_classes) {
                rc = fail(err, errlen, "shard '%s' sample %lld has label %d, outside 0-%d", path, (long long)i, lab,
                          idx->num_classes - 1);
                break;
            }
        }
    }
    if (H5Fclose(f) < 0 && rc == 0) rc = fail(err, errlen, "closing shard '%s' failed", path);
    return rc;
}

/* The split's shards in order, checked to tile samples 0..n-1 exactly; NULL with err set. */
static const eff_shard_entry **order_shards(const eff_shard_index *idx, const char *split, int sid, char *err,
                                            size_t errlen) {
    const int nsh = idx->split_shards[sid];
    const int64_t n = idx->split_n[sid];
    if (nsh < 1 || n < 1) {
        fail(err, errlen, "'%s' lists no '%s' split", idx->path, split);
        return NULL;
    }
    const eff_shard_entry **order = calloc((size_t)nsh, sizeof *order);
    if (!order) {
        fail(err, errlen, "out of memory");
        return NULL;
    }
    for (int i = 0; i < idx->n_entries; i++) {
        const eff_shard_entry *en = &idx->entries[i];
        if (strcmp(en->split, split) != 0) continue;
        if (en->count != nsh || en->index >= nsh || order[en->index]) {
            fail(err, errlen, "'%s': shard line for %s %d/%d conflicts with 'split %s %lld %d'", idx->path, split,
                 en->index, en->count, split, (long long)n, nsh);
            free(order);
            return NULL;
        }
        order[en->index] = en;
    }
    int64_t next = 0;
    for (int i = 0; i < nsh; i++) {
        if (!order[i] || order[i]->first != next) {
            fail(err, errlen, "'%s': the %s shards do not tile samples 0..%lld (shard %d %s)", idx->path, split,
                 (long long)n - 1, i, order[i] ? "starts at the wrong sample" : "is missing");
            free(order);
            return NULL;
        }
        next += order[i]->n;
    }
    if (next != n) {
        fail(err, errlen, "'%s': the %s shards hold %lld samples, the split line says %lld", idx->path, split,
             (long long)next, (long long)n);
        free(order);
        return NULL;
    }
    return order;
}

/* CIFAR-10 shards: fixed 32x32, uint8 labels, class names in the shards. */
static int load_cifar(const eff_shard_index *idx, const eff_shard_entry **order, int nsh, int64_t n, int flags,
                      eff_dataset *ds, char *err, size_t errlen) {
    const size_t per = (size_t)idx->height * idx->width * idx->channels;
    ds->height = idx->height; ds->width = idx->width; ds->channels = idx->channels;
    ds->kind = EFF_DATA_CIFAR10;
    snprintf(ds->dataset, sizeof ds->dataset, "cifar10");
    ds->images = malloc((size_t)n * per);
    ds->labels = malloc((size_t)n * sizeof *ds->labels);
    ds->class_names = calloc((size_t)idx->num_classes, sizeof *ds->class_names);
    if (!ds->images || !ds->labels || !ds->class_names)
        return fail(err, errlen, "out of memory loading %lld images of split '%s' (%zu bytes)", (long long)n, ds->split,
                    (size_t)n * per);
    int rc = 0;
    for (int i = 0; i < nsh && rc == 0; i++) rc = load_shard(idx, order[i], i == 0, flags, ds, err, errlen);
    return rc;
}

int eff_dataset_load(const char *index_path, const char *split, int flags, eff_dataset *ds, char *err, size_t errlen) {
    memset(ds, 0, sizeof *ds);
    int sid = eff_split_id(split);
    if (sid < 0) return fail(err, errlen, "unknown split '%s'\nHINT: use 'train' or 'test'", split);
    eff_shard_index idx;
    if (eff_shard_index_read(index_path, &idx, err, errlen) != 0) return -1;
    int rc = -1;
    const eff_shard_entry **order = order_shards(&idx, split, sid, err, errlen);
    if (order) {
        snprintf(ds->split, sizeof ds->split, "%s", split);
        ds->n = idx.split_n[sid];
        ds->num_classes = idx.num_classes;
        ds->n_shards = idx.split_shards[sid];
        H5E_auto2_t old_fn;
        void *old_data;
        H5Eget_auto2(H5E_DEFAULT, &old_fn, &old_data);
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our messages say it better; restored below */
        rc = idx.kind == EFF_DATA_IMAGES ? eff_images_load_shards(&idx, order, flags, ds, err, errlen)
                                         : load_cifar(&idx, order, ds->n_shards, ds->n, flags, ds, err, errlen);
        H5Eset_auto2(H5E_DEFAULT, old_fn, old_data);
    }
    free(order);
    eff_shard_index_free(&idx);
    if (rc) eff_dataset_free(ds);
    return rc;
}

void eff_dataset_load_or_die(const char *index_path, const char *split, int flags, eff_dataset *ds) {
    char err[2048];
    if (eff_dataset_load(index_path, split, flags, ds, err, sizeof err) != 0) EFF_FATAL("%s", err);
}

int eff_parse_class_list(const char *text, int *classes, int cap, char *err, size_t errlen) {
    int k = 0;
    const char *p = text;
    while (*p) {
        char *end = NULL;
        errno = 0;
        const long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v >= EFF_DATA_MAX_CLASSES || (*end && *end != ',')) {
            snprintf(err, errlen, "data.classes = '%s': expected a comma-separated list of class numbers, like 5,6,7",
                     text);
            return 0;
        }
        if (k == cap) {
            snprintf(err, errlen, "data.classes = '%s': more than %d classes", text, cap);
            return 0;
        }
        for (int i = 0; i < k; i++)
            if (classes[i] == (int)v) {
                snprintf(err, errlen, "data.classes = '%s': class %ld is listed twice", text, v);
                return 0;
            }
        classes[k++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (!k) snprintf(err, errlen, "data.classes is empty");
    return k;
}

/* Keep the samples of image i whose map[label] >= 0, relabelled; fixed and ragged layouts alike. */
static void keep_samples(eff_dataset *ds, const int *map) {
    const size_t img = (size_t)ds->height * ds->width * ds->channels;
    int64_t n = 0, at = 0;
    for (int64_t j = 0; j < ds->n; j++) {
        const int to = map[ds->labels[j]];
        if (to < 0) continue;
        if (ds->offsets) { /* ragged: move the pixels down, keep the offsets and sizes in step */
            const int64_t len = ds->offsets[j + 1] - ds->offsets[j];
            memmove(ds->images + at, ds->images + ds->offsets[j], (size_t)len);
            ds->offsets[n] = at;
            at += len;
            ds->sizes[2 * n] = ds->sizes[2 * j];
            ds->sizes[2 * n + 1] = ds->sizes[2 * j + 1];
        } else if (n != j) {
            memcpy(ds->images + (size_t)n * img, ds->images + (size_t)j * img, img);
        }
        ds->labels[n++] = to;
    }
    if (ds->offsets) ds->offsets[n] = at;
    ds->n = n;
}

int eff_dataset_select_classes(eff_dataset *ds, const int *classes, int k, char *err, size_t errlen) {
    int *map = malloc(sizeof(int) * (size_t)ds->num_classes);
    char (*names)[EFF_CLASS_NAME_LEN] = calloc((size_t)k, sizeof *names);
    if (!map || !names) {
        free(map);
        free(names);
        snprintf(err, errlen, "out of memory selecting %d classes", k);
        return -1;
    }
    for (int c = 0; c < ds->num_classes; c++) map[c] = -1;
    for (int i = 0; i < k; i++) {
        if (classes[i] < 0 || classes[i] >= ds->num_classes) {
            snprintf(err, errlen, "data.classes: class %d does not exist in the %s split (it has %d classes, 0..%d)",
                     classes[i], ds->split, ds->num_classes, ds->num_classes - 1);
            free(map);
            free(names);
            return -1;
        }
        map[classes[i]] = i;
        memcpy(names[i], ds->class_names[classes[i]], EFF_CLASS_NAME_LEN);
    }
    keep_samples(ds, map);
    free(map);
    free(ds->class_names);
    ds->class_names = names;
    ds->num_classes = k;
    return 0;
}
