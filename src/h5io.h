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
void eff_h5_read_i32(hid_t file, const char *path, const char *name, int32_t *dst, size_t numel);
/* Read a scalar numeric attribute of the root group. */
double eff_h5_attr_double(hid_t file, const char *path, const char *attr);
/* Read a string attribute of the root group into buf. */
void eff_h5_attr_string(hid_t file, const char *path, const char *attr, char *buf, size_t cap);

#endif
