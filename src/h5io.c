/* h5io.c: checked HDF5 helpers. */
#include "h5io.h"
#include "common.h"

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
    EFF_CHECK(H5Dread(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) >= 0,
              "reading dataset '%s' from '%s' failed (corrupt file or checksum error?)", name, path);
    H5Sclose(sp);
    H5Dclose(d);
}

void eff_h5_read_f32(hid_t file, const char *path, const char *name, float *dst, size_t numel) {
    read_any(file, path, name, H5T_NATIVE_FLOAT, dst, numel);
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
