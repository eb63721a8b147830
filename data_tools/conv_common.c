/* conv_common.c: see conv_common.h. */
#define _POSIX_C_SOURCE 200809L
#include "conv_common.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

/* ---- HDF5 writers ---------------------------------------------------------- */

int conv_attr_strs(hid_t loc, const char *name, const char *values, size_t width, hsize_t n, const char *path) {
    hid_t t = -1, sp = -1, a = -1;
    H5OK(t = H5Tcopy(H5T_C_S1), "string type");
    H5OK(H5Tset_size(t, width), "string size");
    H5OK(H5Tset_strpad(t, H5T_STR_NULLPAD), "string pad");
    H5OK(sp = n ? H5Screate_simple(1, &n, NULL) : H5Screate(H5S_SCALAR), "space");
    H5OK(a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT), name);
    H5OK(H5Awrite(a, t, values), name);
    H5Aclose(a); H5Sclose(sp); H5Tclose(t);
    return 0;
fail:
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    return -1;
}

int conv_attr_str(hid_t loc, const char *name, const char *value, const char *path) {
    return conv_attr_strs(loc, name, value, strlen(value) ? strlen(value) : 1, 0, path);
}

int conv_attr_num(hid_t loc, const char *name, hid_t filetype, hid_t memtype, const void *v, hsize_t n,
                  const char *path) {
    hid_t sp = -1, a = -1;
    H5OK(sp = n ? H5Screate_simple(1, &n, NULL) : H5Screate(H5S_SCALAR), "space");
    H5OK(a = H5Acreate2(loc, name, filetype, sp, H5P_DEFAULT, H5P_DEFAULT), name);
    H5OK(H5Awrite(a, memtype, v), name);
    H5Aclose(a); H5Sclose(sp);
    return 0;
fail:
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    return -1;
}

hid_t conv_make_dataset(hid_t f, const char *name, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
                        const hsize_t *maxdims, const hsize_t *chunk, const void *data, const char *path) {
    hid_t sp = -1, dcpl = -1, d = -1;
    H5OK(sp = H5Screate_simple(rank, dims, maxdims), "dataspace");
    H5OK(dcpl = H5Pcreate(H5P_DATASET_CREATE), "dataset properties");
    H5OK(H5Pset_chunk(dcpl, rank, chunk), "chunking");
    H5OK(H5Pset_fletcher32(dcpl), "Fletcher-32 filter");
    H5OK(H5Pset_obj_track_times(dcpl, 0), "timestamps off");
    H5OK(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER), "fill time");
    H5OK(H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_INCR), "allocation time");
    H5OK(d = H5Dcreate2(f, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT), name);
    if (data) H5OK(H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), name);
    H5Pclose(dcpl); H5Sclose(sp);
    return d;
fail:
    if (d >= 0) H5Dclose(d);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    return -1;
}

hid_t conv_create_file(const char *path) {
    hid_t fcpl = -1, f = -1;
    H5OK(fcpl = H5Pcreate(H5P_FILE_CREATE), "file properties");
    H5OK(H5Pset_obj_track_times(fcpl, 0), "timestamps off");
    H5OK(f = H5Fcreate(path, H5F_ACC_EXCL, fcpl, H5P_DEFAULT), "create file");
    H5Pclose(fcpl);
    return f;
fail:
    if (fcpl >= 0) H5Pclose(fcpl);
    return -1;
}

/* ---- output directory ------------------------------------------------------ */

int conv_remove_tree_flat(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    int rc = 0;
    char p[8400];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (unlink(p) != 0) rc = -1;
    }
    closedir(d);
    if (rmdir(dir) != 0) rc = -1;
    return rc;
}

void conv_probe_output(const char *out, char *tmp, size_t cap) {
    snprintf(tmp, cap, "%s.tmp.XXXXXX", out);
    if (!mkdtemp(tmp)) {
        char parent[4096];
        snprintf(parent, sizeof parent, "%s", out);
        char *s = strrchr(parent, '/');
        if (s) *s = '\0'; else snprintf(parent, sizeof parent, ".");
        tmp[0] = '\0';
        EFF_FATAL("cannot create a temporary directory beside output '%s': %s; nothing was written\nHINT: check that '%s' exists and is writable",
                  out, strerror(errno), parent);
    }
    if (rmdir(tmp) != 0) EFF_FATAL("cannot remove the probe directory '%s': %s", tmp, strerror(errno));
    tmp[0] = '\0';
}

void conv_make_tmp(const char *out, char *tmp, size_t cap) {
    snprintf(tmp, cap, "%s.tmp.XXXXXX", out);
    if (!mkdtemp(tmp)) {
        tmp[0] = '\0';
        EFF_FATAL("cannot create a temporary directory beside output '%s': %s; nothing was written\nHINT: check that its parent directory is writable",
                  out, strerror(errno));
    }
    mode_t mask = umask(022);
    umask(mask);
    if (chmod(tmp, 0777 & ~mask) != 0) /* mkdtemp makes it 0700 */
        fprintf(stderr, "effnet: warning: cannot set the permissions of '%s': %s\n", tmp, strerror(errno));
}

int conv_commit_output(const char *out, char *tmp) {
    struct stat st;
    char old[4200] = "";
    if (lstat(out, &st) == 0) {
        snprintf(old, sizeof old, "%s.old.XXXXXX", out);
        if (!mkdtemp(old) || rename(out, old) != 0) {
            fprintf(stderr, "effnet: error: cannot move the existing '%s' aside: %s\n", out, strerror(errno));
            if (old[0]) rmdir(old);
            return -1;
        }
    }
    if (rename(tmp, out) != 0) {
        fprintf(stderr, "effnet: error: renaming '%s' to '%s' failed: %s\n", tmp, out, strerror(errno));
        if (old[0] && rename(old, out) != 0)
            fprintf(stderr, "effnet: error: and the old output is now at '%s'\n", old);
        return -1;
    }
    tmp[0] = '\0';
    if (old[0] && conv_remove_tree_flat(old) != 0)
        fprintf(stderr, "effnet: warning: could not delete the replaced output '%s'; remove it by hand\n", old);
    return 0;
}
