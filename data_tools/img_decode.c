/* img_decode.c: see img_decode.h. Each decoder keeps its state in a context
 * struct reached through a pointer, so nothing the error longjmp skips over is
 * an automatic variable of the function that called setjmp. */
#define _POSIX_C_SOURCE 200809L
#include "img_decode.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <libexif/exif-data.h>
#include <png.h>

static void set_why(char *why, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

/* A zeroed decoder context of `size` bytes, or NULL with why set. */
static void *new_ctx(size_t size, char *why, size_t whylen) {
    void *x = calloc(1, size);
    if (!x) set_why(why, whylen, "out of memory");
    return x;
}

/* ---- EXIF orientation ---------------------------------------------------- */

int img_exif_orientation(const uint8_t *data, size_t n) {
    if (n < 6 || n > 0xFFFFFFu || memcmp(data, "Exif\0\0", 6) != 0) return 1;
    ExifData *ed = exif_data_new();
    if (!ed) return 1;
    /* no "fixing" of the data (which may add default tags): read what is there */
    exif_data_unset_option(ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
    exif_data_load_data(ed, data, (unsigned int)n);
    long o = 1;
    /* IFD0 only, as PIL's Image.getexif() (libexif's exif_data_get_entry would also search IFD1) */
    ExifEntry *e = exif_content_get_entry(ed->ifd[EXIF_IFD_0], EXIF_TAG_ORIENTATION);
    if (e && e->components == 1 && e->data) {
        ExifByteOrder bo = exif_data_get_byte_order(ed);
        if (e->format == EXIF_FORMAT_SHORT && e->size >= 2) o = exif_get_short(e->data, bo);
        else if (e->format == EXIF_FORMAT_SSHORT && e->size >= 2) o = exif_get_sshort(e->data, bo);
        else if (e->format == EXIF_FORMAT_LONG && e->size >= 4) o = (long)exif_get_long(e->data, bo);
        else if (e->format == EXIF_FORMAT_SLONG && e->size >= 4) o = exif_get_slong(e->data, bo);
    }
    exif_data_unref(ed);
    return o >= 1 && o <= 8 ? (int)o : 1;
}

/* PIL's Image.transpose for orientations 2..8 (ImageOps.exif_transpose). */
static int apply_orientation(img_rgb *im, int o) {
    if (o < 2 || o > 8) return IMG_OK;
    int h = im->h, w = im->w, swap = o >= 5;
    int oh = swap ? w : h, ow = swap ? h : w;
    uint8_t *out = malloc((size_t)h * w * 3);
    if (!out) return IMG_NOMEM;
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            int sy, sx;
            switch (o) {
            case 2: sy = y; sx = w - 1 - x; break;                 /* FLIP_LEFT_RIGHT */
            case 3: sy = h - 1 - y; sx = w - 1 - x; break;         /* ROTATE_180 */
            case 4: sy = h - 1 - y; sx = x; break;                 /* FLIP_TOP_BOTTOM */
            case 5: sy = x; sx = y; break;                         /* TRANSPOSE */
            case 6: sy = h - 1 - x; sx = y; break;                 /* ROTATE_270 (clockwise) */
            case 7: sy = h - 1 - x; sx = w - 1 - y; break;         /* TRANSVERSE */
            default: sy = x; sx = w - 1 - y; break;                /* 8: ROTATE_90 */
            }
            memcpy(out + ((size_t)y * ow + x) * 3, im->rgb + ((size_t)sy * w + sx) * 3, 3);
        }
    free(im->rgb);
    im->rgb = out;
    im->h = oh;
    im->w = ow;
    return IMG_OK;
}

static int check_pixels(long long w, long long h, char *why, size_t len) {
    if (w < 1 || h < 1) {
        set_why(why, len, "image has no pixels (%lldx%lld)", w, h);
        return IMG_BAD;
    }
    if (w * h > IMG_MAX_PIXELS) {
        set_why(why, len, "image is %lldx%lld = %lld pixels, more than %lld (PIL's decompression-bomb limit)", w, h,
                w * h, IMG_MAX_PIXELS);
        return IMG_BAD;
    }
    return IMG_OK;
}

/* ---- JPEG ---------------------------------------------------------------- */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    struct jpeg_decompress_struct cinfo;
    uint8_t *row;  /* one scanline as libjpeg gives it */
    img_rgb im;
    int nomem;
    char *why;
    size_t whylen;
} jpeg_ctx;

static void jpeg_fail(j_common_ptr c) {
    jpeg_ctx *x = (jpeg_ctx *)c->err;
    char msg[JMSG_LENGTH_MAX];
    c->err->format_message(c, msg);
    x->nomem = c->err->msg_code == JERR_OUT_OF_MEMORY;
    set_why(x->why, x->whylen, "%s: %s", x->nomem ? "out of memory decoding a JPEG" : "corrupt or unsupported JPEG", msg);
    longjmp(x->jb, 1);
}

/* Warnings that mean the image data is missing or garbled are errors; the
 * others (extraneous bytes between markers, a bad ICC segment, unknown JFIF
 * revision ...) leave complete pixels and are accepted, as PIL accepts them. */
static void jpeg_message(j_common_ptr c, int level) {
    if (level >= 0) return;
    int code = c->err->msg_code;
    if (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE || code == JWRN_MUST_RESYNC ||
        code == JWRN_ARITH_BAD_CODE) {
        jpeg_ctx *x = (jpeg_ctx *)c->err;
        char msg[JMSG_LENGTH_MAX];
        c->err->format_message(c, msg);
        set_why(x->why, x->whylen, "%s JPEG: %s", code == JWRN_JPEG_EOF ? "truncated" : "corrupt", msg);
        longjmp(x->jb, 1);
    }
}

/* One decoded scanline (nc components) to RGB. PIL: L is replicated; a
 * 4-component JPEG is CMYK read as "CMYK;I" (Adobe's inverted convention) and
 * converted by Convert.c cmyk2rgb. */
static void scanline_to_rgb(const uint8_t *in, int nc, int w, uint8_t *o) {
    if (nc == 3) {
        memcpy(o, in, (size_t)w * 3);
    } else if (nc == 1) {
        for (int x = 0; x < w; x++) o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = in[x];
    } else {
        for (int x = 0; x < w; x++) {
            const uint8_t *p = in + 4 * x;
            /* PIL unpacks "CMYK;I" as 255 - v, then cmyk2rgb: nk = 255 - k = the raw K byte */
            int nk = p[3], tmp;
            for (int ch = 0; ch < 3; ch++) {
                int c = 255 - p[ch];
                tmp = c * nk + 128; /* MULDIV255 */
                int v = nk - (((tmp >> 8) + tmp) >> 8);
                o[3 * x + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
}

static int jpeg_run(jpeg_ctx *x, const uint8_t *buf, size_t n) {
    if (setjmp(x->jb)) return x->nomem ? IMG_NOMEM : IMG_BAD;
    jpeg_create_decompress(&x->cinfo);
    jpeg_mem_src(&x->cinfo, buf, (unsigned long)n);
    jpeg_save_markers(&x->cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&x->cinfo, TRUE);
    int nc = x->cinfo.num_components;
    if (nc != 1 && nc != 3 && nc != 4) {
        set_why(x->why, x->whylen, "JPEG with %d colour components (only 1, 3 and 4 are images)", nc);
        return IMG_BAD;
    }
    int rc = check_pixels(x->cinfo.image_width, x->cinfo.image_height, x->why, x->whylen);
    if (rc) return rc;
    x->cinfo.out_color_space = nc == 1 ? JCS_GRAYSCALE : nc == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_start_decompress(&x->cinfo);
    int w = (int)x->cinfo.output_width, h = (int)x->cinfo.output_height;
    x->row = malloc((size_t)w * nc);
    x->im.rgb = malloc((size_t)w * h * 3);
    if (!x->row || !x->im.rgb) {
        set_why(x->why, x->whylen, "out of memory for a %dx%d image", w, h);
        return IMG_NOMEM;
    }
    x->im.w = w;
    x->im.h = h;
    while (x->cinfo.output_scanline < x->cinfo.output_height) {
        JSAMPROW r = x->row;
        int y = (int)x->cinfo.output_scanline;
        if (jpeg_read_scanlines(&x->cinfo, &r, 1) != 1) {
            set_why(x->why, x->whylen, "truncated JPEG: no data for row %d of %d", y, h);
            return IMG_BAD;
        }
        scanline_to_rgb(x->row, nc, w, x->im.rgb + (size_t)y * w * 3);
    }
    int orient = 1;
    for (jpeg_saved_marker_ptr m = x->cinfo.marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 5 && memcmp(m->data, "Exif\0", 5) == 0) {
            orient = img_exif_orientation(m->data, m->data_length); /* the first Exif segment, as PIL */
            break;
        }
    /* no jpeg_finish_decompress: the pixels are complete; a missing EOI is not an error (PIL agrees) */
    return apply_orientation(&x->im, orient);
}

static int decode_jpeg(const uint8_t *buf, size_t n, img_rgb *out, char *why, size_t whylen) {
    jpeg_ctx *x = new_ctx(sizeof *x, why, whylen);
    if (!x) return IMG_NOMEM;
    x->why = why;
    x->whylen = whylen;
    x->cinfo.err = jpeg_std_error(&x->pub);
    x->pub.error_exit = jpeg_fail;
    x->pub.emit_message = jpeg_message;
    int rc = jpeg_run(x, buf, n);
    jpeg_destroy_decompress(&x->cinfo);
    free(x->row);
    if (rc == IMG_OK) *out = x->im;
    else free(x->im.rgb);
    free(x);
    return rc;
}

/* ---- PNG ----------------------------------------------------------------- */

typedef struct {
    png_structp png;
    png_infop info, end;
    const uint8_t *buf;
    size_t n, pos;
    img_rgb im;
    png_bytep *rows;
    int in_end;  /* the image is read; errors in the chunks after it are ignored */
    char *why;
    size_t whylen;
} png_ctx;

static void png_fail(png_structp png, png_const_charp msg) {
    png_ctx *x = png_get_error_ptr(png);
    if (!x->in_end) set_why(x->why, x->whylen, "corrupt or unsupported PNG: %s", msg);
    png_longjmp(png, 1);
}

static void png_warn(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static void png_read_mem(png_structp png, png_bytep dst, size_t len) {
    png_ctx *x = png_get_io_ptr(png);
    if (len > x->n - x->pos) png_error(png, "truncated file (the data ends inside a chunk)");
    memcpy(dst, x->buf + x->pos, len);
    x->pos += len;
}

/* The eXIf chunk of info (libpng drops the "Exif\0\0" that PIL prepends). */
static int png_orientation(png_structp png, png_infop info) {
    png_uint_32 len = 0;
    png_bytep data = NULL;
    if (!info || !png_get_eXIf_1(png, info, &len, &data) || !data || len == 0 || len > 0xFFFF00u) return 0;
    uint8_t *blk = malloc((size_t)len + 6);
    if (!blk) return 0;
    memcpy(blk, "Exif\0\0", 6);
    memcpy(blk + 6, data, len);
    int o = img_exif_orientation(blk, (size_t)len + 6);
    free(blk);
    return o;
}

static void png_transforms(png_structp png, png_infop info) {
    int ct = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if (depth == 16) png_set_strip_16(png); /* high byte, as PIL's "RGB;16B" unpackers */
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ct == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    /* alpha dropped, as PIL's convert("RGB"); png_set_palette_to_rgb also turns a tRNS chunk into alpha */
    if ((ct & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
}

static int png_run(png_ctx *x) {
    if (setjmp(png_jmpbuf(x->png))) {
        if (!x->in_end) return IMG_BAD;
        goto orient; /* a broken chunk after the image data, or a missing IEND: the pixels are complete */
    }
    png_set_read_fn(x->png, x, png_read_mem);
    png_read_info(x->png, x->info);
    png_uint_32 w = png_get_image_width(x->png, x->info), h = png_get_image_height(x->png, x->info);
    int rc = check_pixels(w, h, x->why, x->whylen);
    if (rc) return rc;
    png_transforms(x->png, x->info);
    if (png_get_rowbytes(x->png, x->info) != (size_t)w * 3) {
        set_why(x->why, x->whylen, "PNG rows are %zu bytes after conversion to RGB, expected %u",
                (size_t)png_get_rowbytes(x->png, x->info), (unsigned)w * 3);
        return IMG_BAD;
    }
    x->im.rgb = malloc((size_t)w * h * 3);
    x->rows = malloc((size_t)h * sizeof *x->rows);
    if (!x->im.rgb || !x->rows) {
        set_why(x->why, x->whylen, "out of memory for a %ux%u image", (unsigned)w, (unsigned)h);
        return IMG_NOMEM;
    }
    x->im.w = (int)w;
    x->im.h = (int)h;
    for (png_uint_32 y = 0; y < h; y++) x->rows[y] = x->im.rgb + (size_t)y * w * 3;
    png_read_image(x->png, x->rows);
    x->in_end = 1;
    png_read_end(x->png, x->end);
    x->in_end = 2; /* the end chunks were read completely */
orient:;
    int o = png_orientation(x->png, x->info);
    if (!o && x->in_end == 2) o = png_orientation(x->png, x->end);
    return apply_orientation(&x->im, o ? o : 1);
}

static int decode_png(const uint8_t *buf, size_t n, img_rgb *out, char *why, size_t whylen) {
    png_ctx *x = new_ctx(sizeof *x, why, whylen);
    if (!x) return IMG_NOMEM;
    x->buf = buf;
    x->n = n;
    x->why = why;
    x->whylen = whylen;
    x->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, x, png_fail, png_warn);
    if (x->png) x->info = png_create_info_struct(x->png);
    if (x->info) x->end = png_create_info_struct(x->png);
    int rc = IMG_NOMEM;
    if (x->end) rc = png_run(x);
    else set_why(why, whylen, "out of memory for the PNG decoder");
    png_destroy_read_struct(x->png ? &x->png : NULL, x->info ? &x->info : NULL, x->end ? &x->end : NULL);
    free(x->rows);
    if (rc == IMG_OK) *out = x->im;
    else free(x->im.rgb);
    free(x);
    return rc;
}

/* ---- dispatch ------------------------------------------------------------ */

int img_decode(const uint8_t *buf, size_t n, img_rgb *out, char *why, size_t whylen) {
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memset(out, 0, sizeof *out);
    if (n == 0) {
        set_why(why, whylen, "empty file (0 bytes)");
        return IMG_BAD;
    }
    if (n >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF) return decode_jpeg(buf, n, out, why, whylen);
    if (n >= 8 && memcmp(buf, png_sig, 8) == 0) return decode_png(buf, n, out, why, whylen);
    char shown[40];
    size_t k = 0;
    for (size_t i = 0; i < n && i < 8; i++) k += (size_t)snprintf(shown + k, sizeof shown - k, "%s%02x", i ? " " : "", buf[i]);
    set_why(why, whylen, "not a JPEG or PNG file (it starts with bytes %s; a JPEG starts with ff d8 ff, a PNG with 89 50 4e 47)",
            shown);
    return IMG_BAD;
}
