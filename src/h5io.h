/* h5io.h: checked HDF5 helpers (read/write whole datasets by name). */
#ifndef EFFNET_H5IO_H
#define EFFNET_H5IO_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

hid_t eff_h5_open_read(const char *path);
void eff_h5_close(hid_t file, const char *path);
int eff_h5_exists(hid_t file, const char *name);
/* Read dataset `name` (any numeric type, converted) into dst; its element
 * count must equal numel. `path` is only used in error messages. */
void eff_h5_read_f32(hid_t file, const char *path, const char *name, float *dst, size_t numel);
void eff_h5_read_f64(hid_t file, const char *path, const char *name, double *dst, size_t numel);
void eff_h5_read_i32(hid_t file, const char *path, const char *name, int32_t *dst, size_t numel);
/* Read a scalar numeric attribute of the root group. */
double eff_h5_attr_double(hid_t file, const char *path, const char *attr);
/* Read a string attribute of the root group into buf. */
void eff_h5_attr_string(hid_t file, const char *path, const char *attr, char *buf, size_t cap);


/* ---- additions for checkpoints ------------------------------------------ */

/* HDF5 prints its whole error stack to stderr by default. Our messages quote
 * the innermost entry instead (eff_h5_error_detail); quiet_begin turns the
 * automatic printing off and quiet_end restores whatever was set before. */
typedef struct EffH5Quiet {
    H5E_auto2_t func;
    void *data;
} EffH5Quiet;
void eff_h5_quiet_begin(EffH5Quiet *q);
void eff_h5_quiet_end(const EffH5Quiet *q);
/* The innermost messages of the current HDF5 error stack, "; "-separated
 * (e.g. "data error detected by Fletcher32 checksum"); "no HDF5 detail" if empty.
 * Call it right after the failing HDF5 call: the next call clears the stack. */
void eff_h5_error_detail(char *buf, size_t len);

/* Writers. They never exit: each returns 0, or -1 with a message in err that
 * names the object and quotes HDF5's error, so that the caller can clean up
 * (remove a temporary file) before reporting. Files get little-endian IEEE
 * types (float32, float64) and little-endian int64/uint64; strings are
 * variable-length UTF-8 (h5py reads them as str). */
int eff_h5_create_group(hid_t loc, const char *name, char *err, size_t errlen); /* creates intermediate groups */
/* Dataset of float32 with PyTorch's dims (ndim 0: a scalar). With checksum,
 * the data is chunked and protected by the Fletcher-32 filter, so a flipped
 * bit is a read error instead of a silently wrong weight. */
int eff_h5_write_f32(hid_t loc, const char *name, const float *data, int ndim, const int64_t *dims, int checksum,
                     char *err, size_t errlen);
int eff_h5_write_i64_scalar(hid_t loc, const char *name, int64_t value, char *err, size_t errlen);
/* Attributes of object `obj` (a file or group id). */
int eff_h5_attr_write_str(hid_t obj, const char *name, const char *value, char *err, size_t errlen);
int eff_h5_attr_write_i64(hid_t obj, const char *name, int64_t value, char *err, size_t errlen);
int eff_h5_attr_write_u64(hid_t obj, const char *name, uint64_t value, char *err, size_t errlen);
int eff_h5_attr_write_f64(hid_t obj, const char *name, double value, char *err, size_t errlen);

/* Readers that exit through EFF_FATAL, naming `path` (the file) and the object. */
/* Rank and dims of dataset `name` (ndim 0: scalar); dims has room for maxdims. */
int eff_h5_dims(hid_t file, const char *path, const char *name, int64_t *dims, int maxdims);
/* The dataset must exist, have exactly these dims (not just the same element
 * count) and be of class H5T_FLOAT (want_float) or H5T_INTEGER. */
void eff_h5_check_shape(hid_t file, const char *path, const char *name, int ndim, const int64_t *dims, int want_float);
void eff_h5_read_i64(hid_t file, const char *path, const char *name, int64_t *dst, size_t numel);
/* Scalar numeric attribute `attr` of object `obj_name` ("/" for the root),
 * read exactly as memtype (H5T_NATIVE_INT64, H5T_NATIVE_UINT64, H5T_NATIVE_DOUBLE). */
void eff_h5_attr_read(hid_t file, const char *path, const char *obj_name, const char *attr, hid_t memtype, void *dst);
/* String attribute of `obj_name`, malloc'd (free with eff_free); NULL if the
 * attribute does not exist and optional != 0. */
char *eff_h5_attr_read_str(hid_t file, const char *path, const char *obj_name, const char *attr, int optional);

/* "[d0, d1, ...]" ("[] (scalar)" for ndim 0) into buf. */
void eff_h5_fmt_dims(char *buf, size_t cap, int ndim, const int64_t *dims);

#endif
