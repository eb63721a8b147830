/* img_scan.h: find the classes and image files of an image-folder tree.
 *
 *   DIR/<class>/...                 one split, cut by --val-fraction
 *   DIR/train/<class>/... + DIR/val/<class>/...  (or DIR/test/<class>/...)
 *
 * Classes are the directory names (symlinks followed, names starting with '.'
 * left out) sorted by byte value, as torchvision's ImageFolder (sorted()).
 * Inside a class directory every file ending in .jpg, .jpeg or .png (any case)
 * is a candidate, found recursively (symlinks followed; a directory that leads
 * back to one of its ancestors, by (dev, inode), is a symlink loop). Within a
 * class, files are ordered by (directory path, file name) bytes, which is
 * ImageFolder's sorted(os.walk(...)) order. */
#ifndef EFFNET_IMG_SCAN_H
#define EFFNET_IMG_SCAN_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *rel;      /* path relative to the input directory */
    int32_t label;
    int64_t bytes;  /* file size when scanned; -1 when readdir said it is a regular file (not stat()ed) */
} img_item;

typedef struct {
    img_item *v;
    size_t n, cap;
} img_item_list;

typedef struct {
    char *rel;      /* relative path of the bad file or directory */
    char *reason;
} img_bad;

typedef struct {
    img_bad *v;
    size_t n, cap;
} img_bad_list;

typedef struct {
    /* in */
    const char *input;          /* the input directory, as given (no trailing '/') */
    double val_fraction;        /* for DIR/<class>/ input */
    int val_fraction_given;     /* --val-fraction was on the command line */
    int skip_bad;               /* record bad entries instead of stopping */
    /* out */
    int layout;                 /* 0: DIR/<class>; 1: DIR/train + DIR/val; 2: DIR/train + DIR/test */
    int nclasses;
    char **classes;
    img_item_list split[2];     /* train, test: ImageFolder order */
    img_bad_list bad;           /* found while scanning (only with skip_bad) */
    long ignored;               /* files without an image extension */
    char ignored_example[512];
    int test_missing_classes;   /* classes without a folder in val/ or test/ */
} img_scan;

/* Scan s->input. Problems with the tree itself (unreadable input, no classes,
 * a class name with a newline, val/ classes unknown to train/) stop through
 * EFF_FATAL; bad files, empty class directories and symlink loops do too
 * unless s->skip_bad, which lists them in s->bad. Nothing is written. */
void img_scan_run(img_scan *s);
void img_scan_free(img_scan *s);

/* Add an entry to a bad list (copies both strings). */
void img_bad_add(img_bad_list *l, const char *rel, const char *reason);

/* The --val-fraction rule: 1 if the file with this relative path goes to the
 * test split: the first 8 bytes of SHA-256(rel), big-endian, < f * 2^64. */
int img_in_test_split(const char *rel, double f);

#endif
