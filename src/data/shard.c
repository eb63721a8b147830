/* shard.c: read the shard index and load a split into memory. */
#define _POSIX_C_SOURCE 200809L
#include "data/shard.h"

#include <errno.h>
#include <hdf5.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "h5io.h"
#include "sha256.h"

static int fail(char *err, size_t len, const char *fmt, ...) EFF_PRINTF(3, 4);
static int fail(char *err, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -1;
}

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
    int lineno = 0, have_format = 0, have_version = 0, cap = 0;
    int rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t L = strlen(line);
        if (L && line[L - 1] != '\n' && !feof(f)) {
            rc = fail(err, errlen, "%s:%d: line too long", path, lineno);
            break;
        }
        while (L && (line[L - 1] == '\n' || line[L - 1] == '\r')) line[--L] = '\0';
        if (!L || line[0] == '#') continue;
        char key[32], s1[64], s2[80], s3[80];
        long long a, b, c, d, e;
        int v;
        if (sscanf(line, "%31s", key) != 1) continue;
        if (strcmp(key, "format") == 0) {
            if (sscanf(line, "%*s %63s", s1) != 1 || strcmp(s1, EFF_SHARD_FORMAT) != 0) {
                rc = fail(err, errlen, "%s:%d: format is '%s', expected '%s'\nHINT: this is not a shard index written by cifar10-to-h5",
                          path, lineno, line, EFF_SHARD_FORMAT);
                break;
            }
            have_format = 1;
        } else if (strcmp(key, "schema_version") == 0) {
            if (sscanf(line, "%*s %d", &v) != 1 || v != EFF_SHARD_SCHEMA_VERSION) {
                rc = fail(err, errlen, "%s:%d: schema version '%s', this build reads version %d\nHINT: reconvert the data with this build's cifar10-to-h5",
                          path, lineno, line + 15, EFF_SHARD_SCHEMA_VERSION);
                break;
            }
            have_version = 1;
        } else if (!strcmp(key, "height") || !strcmp(key, "width") || !strcmp(key, "channels") || !strcmp(key, "num_classes")) {
            if (sscanf(line, "%*s %d", &v) != 1 || v < 1 || v > 4096 ||
                (!strcmp(key, "num_classes") && v > EFF_SHARD_MAX_CLASSES) || (!strcmp(key, "channels") && v != 3)) {
                rc = fail(err, errlen, "%s:%d: bad value in '%s'", path, lineno, line);
                break;
            }
            if (!strcmp(key, "height")) idx->height = v;
            else if (!strcmp(key, "width")) idx->width = v;
            else if (!strcmp(key, "channels")) idx->channels = v;
            else idx->num_classes = v;
        } else if (strcmp(key, "split") == 0) {
            int sid;
            if (sscanf(line, "%*s %63s %lld %lld", s1, &a, &b) != 3 || (sid = eff_split_id(s1)) < 0 || a < 0 ||
                b < 1 || b > EFF_SHARD_MAX_SHARDS) {
                rc = fail(err, errlen, "%s:%d: bad split line '%s'", path, lineno, line);
                break;
            }
            idx->split_n[sid] = a;
            idx->split_shards[sid] = (int)b;
        } else if (strcmp(key, "shard") == 0) {
            eff_shard_entry en;
            memset(&en, 0, sizeof en);
            if (sscanf(line, "%*s %7s %lld %lld %lld %lld %lld %79s %79s", en.split, &a, &b, &c, &d, &e, s2, s3) != 8 ||
                eff_split_id(en.split) < 0 || a < 0 || b < 1 || a >= b || b > EFF_SHARD_MAX_SHARDS || c < 0 || d < 1 ||
                e < 1 || strlen(s2) >= sizeof en.file || strchr(s2, '/') || !is_hex64(s3)) {
                rc = fail(err, errlen, "%s:%d: bad shard line '%s'\nHINT: expected 'shard SPLIT INDEX COUNT FIRST N BYTES FILE SHA256'",
                          path, lineno, line);
                break;
            }
            en.index = (int)a; en.count = (int)b; en.first = c; en.n = d; en.bytes = e;
            snprintf(en.file, sizeof en.file, "%.63s", s2);
            snprintf(en.sha256, sizeof en.sha256, "%.64s", s3);
            if (idx->n_entries == cap) {
                cap = cap ? 2 * cap : 16;
                if (cap > 2 * EFF_SHARD_MAX_SHARDS) { rc = fail(err, errlen, "%s: too many shard lines", path); break; }
                eff_shard_entry *ne = realloc(idx->entries, (size_t)cap * sizeof *ne);
                if (!ne) { rc = fail(err, errlen, "out of memory reading '%s'", path); break; }
                idx->entries = ne;
            }
            idx->entries[idx->n_entries++] = en;
        } else {
            rc = fail(err, errlen, "%s:%d: unknown key '%s'", path, lineno, key);
            break;
        }
    }
    if (!rc && ferror(f)) rc = fail(err, errlen, "reading shard index '%s' failed: %s", path, strerror(errno));
    fclose(f);
    if (!rc && (!have_format || !have_version))
        rc = fail(err, errlen, "'%s' has no 'format %s' and 'schema_version' lines\nHINT: this is not a shard index written by cifar10-to-h5",
                  path, EFF_SHARD_FORMAT);
    if (!rc && (!idx->height || !idx->width || !idx->channels || !idx->num_classes))
        rc = fail(err, errlen, "'%s' lacks one of height, width, channels, num_classes", path);
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
    ds->images = ds->labels = NULL;
    ds->n = 0;
}

static int load_shard(const eff_shard_index *idx, const eff_shard_entry *en, int first_shard, int flags,
                      eff_dataset *ds, char *err, size_t errlen) {
    char path[4200], h5msg[512], s[64];
    snprintf(path, sizeof path, "%s/%s", idx->dir, en->file);
    struct stat st;
    if (stat(path, &st) != 0)
        return fail(err, errlen, "shard '%s' listed in '%s' cannot be read: %s\nHINT: the shard directory is incomplete; reconvert with cifar10-to-h5",
                    path, idx->path, strerror(errno));
    if ((long long)st.st_size != (long long)en->bytes)
        return fail(err, errlen, "shard '%s' is %lld bytes but the index says %lld: truncated or replaced\nHINT: reconvert with cifar10-to-h5",
                    path, (long long)st.st_size, (long long)en->bytes);
    if (flags & EFF_LOAD_VERIFY_SHA256) {
        char hex[65];
        if (eff_sha256_file(path, hex) != 0)
            return fail(err, errlen, "cannot read shard '%s': %s", path, strerror(errno));
        if (strcmp(hex, en->sha256) != 0)
            return fail(err, errlen, "shard '%s' has SHA-256 %s but the index says %s: the file is corrupt\nHINT: reconvert with cifar10-to-h5",
                        path, hex, en->sha256);
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        eff_h5_error_detail(h5msg, sizeof h5msg);
        return fail(err, errlen, "cannot open HDF5 shard '%s': %s\nHINT: reconvert with cifar10-to-h5", path, h5msg);
    }
    int rc = 0, iv[4];
    long long first = -1;
    if (attr_string(f, "format", s, sizeof s) != 0 || strcmp(s, EFF_SHARD_FORMAT) != 0) {
        rc = fail(err, errlen, "shard '%s' has no attribute format='%s'", path, EFF_SHARD_FORMAT);
    } else if (attr_numeric(f, "schema_version", H5T_NATIVE_INT, &iv[0], 1) != 0 || iv[0] != EFF_SHARD_SCHEMA_VERSION) {
        rc = fail(err, errlen, "shard '%s' has schema version %d, this build reads %d\nHINT: reconvert with this build's cifar10-to-h5",
                  path, iv[0], EFF_SHARD_SCHEMA_VERSION);
    } else if (attr_string(f, "split", s, sizeof s) != 0 || strcmp(s, en->split) != 0 ||
               attr_numeric(f, "shard_index", H5T_NATIVE_INT, &iv[1], 1) != 0 || iv[1] != en->index ||
               attr_numeric(f, "shard_count", H5T_NATIVE_INT, &iv[2], 1) != 0 || iv[2] != en->count ||
               attr_numeric(f, "first_index", H5T_NATIVE_LLONG, &first, 1) != 0 || first != en->first) {
        rc = fail(err, errlen, "shard '%s' attributes (split, shard_index, shard_count, first_index) disagree with '%s' (%s %d/%d from %lld)",
                  path, idx->path, en->split, en->index, en->count, (long long)en->first);
    } else if (first_shard &&
               (attr_numeric(f, "num_classes", H5T_NATIVE_INT, &iv[3], 1) != 0 || iv[3] != idx->num_classes ||
                attr_string_array(f, "class_names", iv[3], ds->class_names) != 0 ||
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
            uint8_t *dst = (k == 0 ? ds->images : ds->labels) + (size_t)en->first * per;
            if (H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0) {
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
            if (lab >= idx->num_classes) {
                rc = fail(err, errlen, "shard '%s' sample %lld has label %d, outside 0-%d", path, (long long)i, lab,
                          idx->num_classes - 1);
                break;
            }
        }
    }
    if (H5Fclose(f) < 0 && rc == 0) rc = fail(err, errlen, "closing shard '%s' failed", path);
    return rc;
}

int eff_dataset_load(const char *index_path, const char *split, int flags, eff_dataset *ds, char *err, size_t errlen) {
    memset(ds, 0, sizeof *ds);
    int sid = eff_split_id(split);
    if (sid < 0) return fail(err, errlen, "unknown split '%s'\nHINT: use 'train' or 'test'", split);
    eff_shard_index idx;
    if (eff_shard_index_read(index_path, &idx, err, errlen) != 0) return -1;

    int nsh = idx.split_shards[sid], rc = 0;
    int64_t n = idx.split_n[sid];
    const eff_shard_entry **order = NULL;
    if (nsh < 1 || n < 1) {
        rc = fail(err, errlen, "'%s' lists no '%s' split", index_path, split);
        goto done;
    }
    order = calloc((size_t)nsh, sizeof *order);
    if (!order) { rc = fail(err, errlen, "out of memory"); goto done; }
    for (int i = 0; i < idx.n_entries; i++) {
        const eff_shard_entry *en = &idx.entries[i];
        if (strcmp(en->split, split) != 0) continue;
        if (en->count != nsh || en->index >= nsh || order[en->index]) {
            rc = fail(err, errlen, "'%s': shard line for %s %d/%d conflicts with 'split %s %lld %d'", index_path, split,
                      en->index, en->count, split, (long long)n, nsh);
            goto done;
        }
        order[en->index] = en;
    }
    int64_t next = 0;
    for (int i = 0; i < nsh; i++) {
        if (!order[i] || order[i]->first != next) {
            rc = fail(err, errlen, "'%s': the %s shards do not tile samples 0..%lld (shard %d %s)", index_path, split,
                      (long long)n - 1, i, order[i] ? "starts at the wrong sample" : "is missing");
            goto done;
        }
        next += order[i]->n;
    }
    if (next != n) {
        rc = fail(err, errlen, "'%s': the %s shards hold %lld samples, the split line says %lld", index_path, split,
                  (long long)next, (long long)n);
        goto done;
    }
    size_t per = (size_t)idx.height * idx.width * idx.channels;
    snprintf(ds->split, sizeof ds->split, "%s", split);
    ds->n = n;
    ds->height = idx.height; ds->width = idx.width; ds->channels = idx.channels;
    ds->num_classes = idx.num_classes;
    ds->n_shards = nsh;
    ds->images = malloc((size_t)n * per);
    ds->labels = malloc((size_t)n);
    if (!ds->images || !ds->labels) {
        rc = fail(err, errlen, "out of memory loading %lld images of split '%s' (%zu bytes)", (long long)n, split, (size_t)n * per);
        goto done;
    }
    H5E_auto2_t old_fn;
    void *old_data;
    H5Eget_auto2(H5E_DEFAULT, &old_fn, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our messages say it better; restored below */
    for (int i = 0; i < nsh && rc == 0; i++) rc = load_shard(&idx, order[i], i == 0, flags, ds, err, errlen);
    H5Eset_auto2(H5E_DEFAULT, old_fn, old_data);
done:
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
        if (end == p || errno || v < 0 || v >= EFF_SHARD_MAX_CLASSES || (*end && *end != ',')) {
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

int eff_dataset_select_classes(eff_dataset *ds, const int *classes, int k, char *err, size_t errlen) {
    int map[EFF_SHARD_MAX_CLASSES];
    for (int c = 0; c < EFF_SHARD_MAX_CLASSES; c++) map[c] = -1;
    for (int i = 0; i < k; i++) {
        if (classes[i] < 0 || classes[i] >= ds->num_classes) {
            snprintf(err, errlen, "data.classes: class %d does not exist in the %s split (it has %d classes, 0..%d)",
                     classes[i], ds->split, ds->num_classes, ds->num_classes - 1);
            return -1;
        }
        map[classes[i]] = i;
    }
    const size_t img = (size_t)ds->height * ds->width * ds->channels;
    int64_t n = 0;
    for (int64_t j = 0; j < ds->n; j++) {
        const int to = map[ds->labels[j]];
        if (to < 0) continue;
        if (n != j) memcpy(ds->images + (size_t)n * img, ds->images + (size_t)j * img, img);
        ds->labels[n++] = (uint8_t)to;
    }
    char names[EFF_SHARD_MAX_CLASSES][EFF_SHARD_NAME_LEN];
    for (int i = 0; i < k; i++) memcpy(names[i], ds->class_names[classes[i]], EFF_SHARD_NAME_LEN);
    memcpy(ds->class_names, names, sizeof names[0] * (size_t)k);
    ds->n = n;
    ds->num_classes = k;
    return 0;
}
