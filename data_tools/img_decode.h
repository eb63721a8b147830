/* img_decode.h: JPEG (libjpeg-turbo) and PNG (libpng) files to uint8 RGB HWC,
 * as PIL 9.4 gives them with
 *   ImageOps.exif_transpose(Image.open(f)).convert("RGB")
 * The format is taken from the file's first bytes, not its name. Greyscale is
 * replicated, palettes expanded, alpha dropped, 16-bit samples reduced to their
 * high byte, 4-component JPEGs read as Adobe-inverted CMYK and converted with
 * PIL's formula, and the EXIF orientation (libexif; a JPEG's APP1 "Exif"
 * segment or a PNG's eXIf chunk, IFD0 tag 0x0112) applied.
 *
 * Deliberate differences from PIL, each documented in docs/data-format.md:
 * a 16-bit greyscale PNG gives its high byte (PIL's convert("RGB") clips the
 * 16-bit value at 255, so almost every such image becomes white); corrupt
 * entropy-coded JPEG data, and CRC errors in PNG chunks, are errors (PIL
 * decodes some of them silently). Thread-safe: no shared state. */
#ifndef EFFNET_IMG_DECODE_H
#define EFFNET_IMG_DECODE_H

#include <stddef.h>
#include <stdint.h>

/* PIL's decompression-bomb limit: Image.open refuses more than 2 * MAX_IMAGE_PIXELS. */
#define IMG_MAX_PIXELS 178956970LL

typedef struct {
    int h, w;
    uint8_t *rgb; /* h * w * 3 bytes, malloc'd; free() it */
} img_rgb;

enum { IMG_OK = 0, IMG_BAD = -1, IMG_NOMEM = -2 };

/* Decode the n bytes of a file. IMG_OK fills out; IMG_BAD (not an image, or a
 * corrupt one) and IMG_NOMEM write the reason to why (one line, no path). */
int img_decode(const uint8_t *buf, size_t n, img_rgb *out, char *why, size_t whylen);

/* The EXIF orientation (1..8; 1 when absent or unreadable) of an Exif block
 * that starts with "Exif\0\0" (a JPEG APP1 segment's payload). */
int img_exif_orientation(const uint8_t *data, size_t n);

#endif
