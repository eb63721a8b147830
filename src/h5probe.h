#ifndef EFF_H5PROBE_H
#define EFF_H5PROBE_H
#include <stddef.h>

/* Read every dataset and attribute of the HDF5 file `path` once, in a forked
 * child, before the caller parses a file it cannot verify (no checksum):
 * -1 with err set ("<what> '<path>' is damaged ...") when HDF5 crashed or
 * hung there; 0 otherwise (an HDF5 error there is left to the caller's own
 * read, which reports it). Call it while no other thread is inside HDF5. */
int eff_h5_probe(const char *path, const char *what, char *err, size_t errlen);

#endif
