/* cifar10-to-h5: convert the CIFAR-10 binary version into sharded HDF5.
 *
 *   cifar10-to-h5 --input DIR --output OUT [--shards N] [--force] [--quiet]
 *
 * DIR holds data_batch_1.bin .. data_batch_5.bin, test_batch.bin and
 * batches.meta.txt. OUT becomes a directory of train-0000k-of-0000N.h5,
 * test-00000-of-00001.h5 and index.txt (docs/data-format.md). Every input is
 * read and validated before anything is written; the shards are written into a
 * temporary directory beside OUT that is renamed onto OUT at the end, so a
 * failure leaves no partial output and never touches an existing OUT. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "conv_common.h"
#include "sha256.h"
#include "data/shard.h"

#define REC_BYTES 3073
#define IMG_BYTES 3072
#define N_CLASSES 10
#define N_BIN 6 /* data_batch_1..5, test_batch */

static const char *const BIN_NAMES[N_BIN] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                             "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};
static const char *const META_NAME = "batches.meta.txt";

typedef struct {
    const char *input, *output;
    long shards, records, chunk;
    int force, quiet;
} options;

typedef struct {
    char path[4200];
    uint8_t *data;  /* records x 3073 */
    size_t bytes;
    char sha256[65];
} source;

typedef struct {
    options opt;
    char out[4096];    /* output without trailing slashes */
    char tmp[4200];    /* temporary directory, "" until created */
    source src[N_BIN + 1];  /* the six .bin files, then batches.meta.txt */
    char classes[N_CLASSES][EFF_SHARD_NAME_LEN];
    double mean[3], std[3];
    FILE *index;
    char index_tmp[4300];
    double t0;
} converter;

static void usage(FILE *to) {
    fprintf(to,
            "usage: cifar10-to-h5 --input DIR --output OUT [--shards N] [--force] [--quiet]\n"
            "  --input DIR      CIFAR-10 binary version: data_batch_1.bin .. data_batch_5.bin,\n"
            "                   test_batch.bin, batches.meta.txt (data_tools/fetch_cifar10.sh gets it)\n"
            "  --output OUT     directory to create: train-*-of-*.h5, test-00000-of-00001.h5, index.txt\n"
            "  --shards N       number of train shards (default 1; the test split is one shard)\n"
            "  --force          replace an existing OUT (only one that cifar10-to-h5 wrote)\n"
            "  --quiet          no progress lines\n"
            "  --records-per-file N   expected records per .bin file (default 10000; for small test data)\n"
            "  --chunk-images K       images per HDF5 chunk (default 256 = 768 KiB)\n");
}

/* Error with nothing written yet: the message, then exit 1. */
#define FAIL EFF_FATAL

/* ---- output-directory helpers ------------------------------------------ */

/* 1 if dir looks like our output (an index.txt with our format line) or is empty. */
static int is_our_output(const char *dir) {
    char p[4200], line[256];
    snprintf(p, sizeof p, "%s/%s", dir, EFF_SHARD_INDEX_NAME);
    FILE *f = fopen(p, "r");
    if (f) {
        int ok = 0;
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "format " EFF_SHARD_FORMAT, strlen("format " EFF_SHARD_FORMAT)) == 0) ok = 1;
        fclose(f);
        if (ok) {
            /* and nothing in it but our file names */
            DIR *d = opendir(dir);
            if (!d) return 0;
            struct dirent *e;
            while ((e = readdir(d))) {
                const char *n = e->d_name;
                size_t L = strlen(n);
                if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, EFF_SHARD_INDEX_NAME)) continue;
                if (!((strncmp(n, "train-", 6) == 0 || strncmp(n, "test-", 5) == 0) && L > 3 && !strcmp(n + L - 3, ".h5")))
                    ok = 0;
            }
            closedir(d);
        }
        return ok;
    }
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    closedir(d);
    return empty;
}

static void check_output(converter *c) {
    struct stat st;
    if (lstat(c->out, &st) != 0) {
        if (errno != ENOENT && errno != ENOTDIR) FAIL("cannot inspect output '%s': %s\nHINT: check the path", c->out, strerror(errno));
        return;
    }
    if (!c->opt.force)
        FAIL("output '%s' already exists; nothing was changed\nHINT: pass --force to replace it, or choose another --output", c->out);
    if (!S_ISDIR(st.st_mode) || !is_our_output(c->out))
        FAIL("output '%s' exists and is not a shard directory written by cifar10-to-h5; refusing to replace it even with --force\nHINT: choose another --output or remove it yourself",
             c->out);
}

/* ---- input ------------------------------------------------------------- */

static void read_whole(const char *path, uint8_t **data, size_t *bytes) {
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT)
            FAIL("missing input file '%s'\nHINT: --input must hold the CIFAR-10 binary version (data_batch_1.bin .. data_batch_5.bin, test_batch.bin, batches.meta.txt); data_tools/fetch_cifar10.sh downloads it",
                 path);
        FAIL("cannot read input '%s': %s\nHINT: check the path and its permissions", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) FAIL("input '%s' is not a regular file\nHINT: point --input at the extracted cifar-10-batches-bin directory", path);
    FILE *f = fopen(path, "rb");
    if (!f) FAIL("cannot read input '%s': %s\nHINT: check its permissions (it must be readable by this user)", path, strerror(errno));
    size_t n = (size_t)st.st_size;
    uint8_t *buf = eff_malloc(n ? n : 1, path);
    size_t got = n ? fread(buf, 1, n, f) : 0;
    if (got != n || ferror(f))
        FAIL("cannot read input '%s': read %zu of %zu bytes (%s)\nHINT: the file or the disk is damaged; copy it again", path, got, n,
             ferror(f) ? strerror(errno) : "file shrank while reading");
    fclose(f);
    *data = buf;
    *bytes = n;
}

static void read_inputs(converter *c) {
    long R = c->opt.records;
    for (int i = 0; i < N_BIN; i++) {
        source *s = &c->src[i];
        snprintf(s->path, sizeof s->path, "%s/%s", c->opt.input, BIN_NAMES[i]);
        read_whole(s->path, &s->data, &s->bytes);
        if (s->bytes % REC_BYTES != 0)
            FAIL("input '%s' is %zu bytes, not a multiple of the %d-byte CIFAR-10 record (1 label byte + 3072 pixel bytes)\nHINT: the file is truncated, or it is not the CIFAR-10 binary version (CIFAR-100 records are 3074 bytes); download it again",
                 s->path, s->bytes, REC_BYTES);
        if (s->bytes / REC_BYTES != (size_t)R)
            FAIL("input '%s' holds %zu records, expected exactly %ld\nHINT: each CIFAR-10 batch file has 10000 records; the file is truncated or from another data set; download it again",
                 s->path, s->bytes / REC_BYTES, R);
        for (long r = 0; r < R; r++) {
            int lab = s->data[(size_t)r * REC_BYTES];
            if (lab >= N_CLASSES)
                FAIL("input '%s' record %ld (byte offset %zu) has label %d, outside 0-9\nHINT: the file is corrupt or not CIFAR-10; download it again",
                     s->path, r, (size_t)r * REC_BYTES, lab);
        }
        eff_sha256_hex(s->data, s->bytes, s->sha256);
    }
    /* batches.meta.txt: the ten class names, one a line. */
    source *m = &c->src[N_BIN];
    snprintf(m->path, sizeof m->path, "%s/%s", c->opt.input, META_NAME);
    read_whole(m->path, &m->data, &m->bytes);
    eff_sha256_hex(m->data, m->bytes, m->sha256);
    int k = 0;
    size_t i = 0;
    while (i < m->bytes) {
        size_t j = i;
        while (j < m->bytes && m->data[j] != '\n') j++;
        size_t a = i, b = j;
        while (a < b && (m->data[a] == ' ' || m->data[a] == '\t' || m->data[a] == '\r')) a++;
        while (b > a && (m->data[b - 1] == ' ' || m->data[b - 1] == '\t' || m->data[b - 1] == '\r')) b--;
        if (b > a) {
            if (k == N_CLASSES)
                FAIL("input '%s' has more than %d class names (line '%.*s')\nHINT: it must list the ten CIFAR-10 classes, one per line",
                     m->path, N_CLASSES, (int)(b - a > 40 ? 40 : b - a), (const char *)m->data + a);
            if (b - a >= EFF_SHARD_NAME_LEN)
                FAIL("input '%s': class name '%.*s' is longer than %d characters", m->path, (int)(b - a), (const char *)m->data + a,
                     EFF_SHARD_NAME_LEN - 1);
            for (size_t q = a; q < b; q++)
                if (m->data[q] < 0x20 || m->data[q] > 0x7e)
                    FAIL("input '%s': class name on line %d has a non-printable byte 0x%02x", m->path, k + 1, m->data[q]);
            memset(c->classes[k], 0, EFF_SHARD_NAME_LEN);
            memcpy(c->classes[k], m->data + a, b - a);
            k++;
        }
        i = j + 1;
    }
    if (k != N_CLASSES)
        FAIL("input '%s' has %d class names, expected %d\nHINT: it must list the ten CIFAR-10 classes, one per line", m->path, k, N_CLASSES);
}

/* Per-channel mean and (population) std over the train split, on the [0,1] scale. */
static void train_stats(converter *c) {
    uint64_t s1[3] = {0, 0, 0}, s2[3] = {0, 0, 0};
    for (int f = 0; f < 5; f++)
        for (long r = 0; r < c->opt.records; r++) {
            const uint8_t *rec = c->src[f].data + (size_t)r * REC_BYTES + 1;
            for (int ch = 0; ch < 3; ch++) {
                uint64_t a = 0, b = 0;
                for (int p = 0; p < 1024; p++) {
                    unsigned v = rec[ch * 1024 + p];
                    a += v;
                    b += v * v;
                }
                s1[ch] += a;
                s2[ch] += b;
            }
        }
    double n = 5.0 * (double)c->opt.records * 1024.0;
    for (int ch = 0; ch < 3; ch++) {
        double mean = (double)s1[ch] / n;
        double var = (double)s2[ch] / n - mean * mean;
        c->mean[ch] = mean / 255.0;
        c->std[ch] = sqrt(var > 0 ? var : 0) / 255.0;
    }
}

/* ---- HDF5 output --------------------------------------------------------- */

/* A uint8 dataset, written whole and closed. */
static int write_dataset(hid_t f, const char *name, int rank, const hsize_t *dims, const hsize_t *chunk,
                         const uint8_t *data, const char *path) {
    hid_t d = conv_make_dataset(f, name, H5T_STD_U8LE, H5T_NATIVE_UINT8, rank, dims, NULL, chunk, data, path);
    if (d < 0) return -1;
    H5OK(H5Dclose(d), name);
    return 0;
fail:
    return -1;
}

/* Write one shard: samples [lo, hi) of the split made of files [f0, f0+nf). */
static int write_shard(converter *c, const char *split, int f0, int shard, int count, long lo, long hi,
                       uint8_t *img, uint8_t *lab) {
    char name[64], path[4300];
    snprintf(name, sizeof name, "%s-%05d-of-%05d.h5", split, shard, count);
    snprintf(path, sizeof path, "%s/%s", c->tmp, name);
    long n = hi - lo, R = c->opt.records;
    for (long i = 0; i < n; i++) {
        long g = lo + i;
        const uint8_t *rec = c->src[f0 + g / R].data + (size_t)(g % R) * REC_BYTES;
        lab[i] = rec[0];
        uint8_t *o = img + (size_t)i * IMG_BYTES;
        for (int p = 0; p < 1024; p++) {
            o[3 * p] = rec[1 + p];
            o[3 * p + 1] = rec[1 + 1024 + p];
            o[3 * p + 2] = rec[1 + 2048 + p];
        }
    }
    hid_t f = conv_create_file(path);
    if (f < 0) return -1;
    hsize_t dims[4] = {(hsize_t)n, 32, 32, 3};
    hsize_t chunk[4] = {(hsize_t)(c->opt.chunk < n ? c->opt.chunk : n), 32, 32, 3};
    hsize_t ldims[1] = {(hsize_t)n}, lchunk[1] = {(hsize_t)(n < 65536 ? n : 65536)};
    if (write_dataset(f, "images", 4, dims, chunk, img, path) || write_dataset(f, "labels", 1, ldims, lchunk, lab, path))
        goto fail;
    {
        int version = EFF_SHARD_SCHEMA_VERSION, ncls = N_CLASSES, hwc[3] = {32, 32, 3};
        long long first = lo, total = 5L * R * (f0 == 0) + R * (f0 != 0);
        char files[N_BIN + 1][32], shas[N_BIN + 1][64];
        for (int i = 0; i <= N_BIN; i++) {
            memset(files[i], 0, sizeof files[i]);
            memcpy(files[i], i < N_BIN ? BIN_NAMES[i] : META_NAME, strlen(i < N_BIN ? BIN_NAMES[i] : META_NAME));
            memcpy(shas[i], c->src[i].sha256, 64);
        }
        if (conv_attr_str(f, "format", EFF_SHARD_FORMAT, path) ||
            conv_attr_num(f, "schema_version", H5T_STD_I32LE, H5T_NATIVE_INT, &version, 0, path) ||
            conv_attr_str(f, "split", split, path) ||
            conv_attr_num(f, "shard_index", H5T_STD_I32LE, H5T_NATIVE_INT, &shard, 0, path) ||
            conv_attr_num(f, "shard_count", H5T_STD_I32LE, H5T_NATIVE_INT, &count, 0, path) ||
            conv_attr_num(f, "first_index", H5T_STD_I64LE, H5T_NATIVE_LLONG, &first, 0, path) ||
            conv_attr_num(f, "num_examples", H5T_STD_I64LE, H5T_NATIVE_LLONG, &total, 0, path) ||
            conv_attr_str(f, "layout", "NHWC", path) ||
            conv_attr_num(f, "image_shape", H5T_STD_I32LE, H5T_NATIVE_INT, hwc, 3, path) ||
            conv_attr_num(f, "num_classes", H5T_STD_I32LE, H5T_NATIVE_INT, &ncls, 0, path) ||
            conv_attr_strs(f, "class_names", &c->classes[0][0], EFF_SHARD_NAME_LEN, N_CLASSES, path) ||
            conv_attr_strs(f, "source_files", &files[0][0], 32, N_BIN + 1, path) ||
            conv_attr_strs(f, "source_sha256", &shas[0][0], 64, N_BIN + 1, path) ||
            conv_attr_num(f, "train_mean", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, c->mean, 3, path) ||
            conv_attr_num(f, "train_std", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, c->std, 3, path))
            goto fail;
    }
    H5OK(H5Fclose(f), "close file");
    f = -1;
    char sha[65];
    struct stat st;
    if (eff_sha256_file(path, sha) != 0 || stat(path, &st) != 0) {
        fprintf(stderr, "effnet: error: cannot read back '%s': %s\n", path, strerror(errno));
        return -1;
    }
    if (fprintf(c->index, "shard %s %d %d %ld %ld %lld %s %s\n", split, shard, count, lo, n, (long long)st.st_size, name, sha) < 0) {
        fprintf(stderr, "effnet: error: writing '%s' failed: %s\n", c->index_tmp, strerror(errno));
        return -1;
    }
    if (!c->opt.quiet)
        fprintf(stderr, "cifar10-to-h5: wrote %-28s %6ld images  [%5.1f s]\n", name, n, eff_time() - c->t0);
    return 0;
fail:
    if (f >= 0) H5Fclose(f);
    return -1;
}

static int write_all(converter *c) {
    long R = c->opt.records, ntrain = 5 * R;
    snprintf(c->index_tmp, sizeof c->index_tmp, "%s/%s", c->tmp, EFF_SHARD_INDEX_NAME);
    c->index = fopen(c->index_tmp, "w");
    if (!c->index) {
        fprintf(stderr, "effnet: error: cannot create '%s': %s\n", c->index_tmp, strerror(errno));
        return -1;
    }
    fprintf(c->index,
            "# effnet-hpc CIFAR-10 shard index, written by cifar10-to-h5; layout in docs/data-format.md\n"
            "format %s\nschema_version %d\nheight 32\nwidth 32\nchannels 3\nnum_classes %d\n"
            "split train %ld %ld\nsplit test %ld 1\n",
            EFF_SHARD_FORMAT, EFF_SHARD_SCHEMA_VERSION, N_CLASSES, ntrain, c->opt.shards, R);
    long maxn = (ntrain + c->opt.shards - 1) / c->opt.shards;
    if (maxn < R) maxn = R;
    uint8_t *img = malloc((size_t)maxn * IMG_BYTES), *lab = malloc((size_t)maxn);
    int rc = 0;
    if (!img || !lab) {
        fprintf(stderr, "effnet: error: out of memory for a %ld-image shard buffer\n", maxn);
        rc = -1;
    }
    for (long k = 0; k < c->opt.shards && !rc; k++)
        rc = write_shard(c, "train", 0, (int)k, (int)c->opt.shards, k * ntrain / c->opt.shards,
                         (k + 1) * ntrain / c->opt.shards, img, lab);
    if (!rc) rc = write_shard(c, "test", 5, 0, 1, 0, R, img, lab);
    free(img);
    free(lab);
    if (fclose(c->index) != 0 && !rc) {
        fprintf(stderr, "effnet: error: writing '%s' failed: %s\nHINT: the disk may be full\n", c->index_tmp, strerror(errno));
        rc = -1;
    }
    c->index = NULL;
    return rc;
}

int main(int argc, char **argv) {
    converter c;
    memset(&c, 0, sizeof c);
    c.opt.shards = 1;
    c.opt.records = 10000;
    c.opt.chunk = 256;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--force")) c.opt.force = 1;
        else if (!strcmp(a, "--quiet")) c.opt.quiet = 1;
        else if (v && !strcmp(a, "--input")) { c.opt.input = v; i++; }
        else if (v && !strcmp(a, "--output")) { c.opt.output = v; i++; }
        else if (v && !strcmp(a, "--shards")) {
            if (!eff_parse_int(v, 1, 4096, &c.opt.shards)) FAIL("--shards '%s' is not an integer in 1..4096", v);
            i++;
        } else if (v && !strcmp(a, "--records-per-file")) {
            if (!eff_parse_int(v, 1, 1000000, &c.opt.records)) FAIL("--records-per-file '%s' is not an integer in 1..1000000", v);
            i++;
        } else if (v && !strcmp(a, "--chunk-images")) {
            if (!eff_parse_int(v, 1, 100000, &c.opt.chunk)) FAIL("--chunk-images '%s' is not an integer in 1..100000", v);
            i++;
        } else {
            usage(stderr);
            FAIL("unknown or incomplete argument '%s'", a);
        }
    }
    if (!c.opt.input || !c.opt.output) {
        usage(stderr);
        FAIL("--input and --output are required");
    }
    if (c.opt.shards > 5 * c.opt.records)
        FAIL("--shards %ld is more than the %ld train images", c.opt.shards, 5 * c.opt.records);
    if (strlen(c.opt.output) + 16 >= sizeof c.out) FAIL("--output path is too long");
    snprintf(c.out, sizeof c.out, "%s", c.opt.output);
    for (size_t L = strlen(c.out); L > 1 && c.out[L - 1] == '/'; L--) c.out[L - 1] = '\0';
    c.t0 = eff_time();

    check_output(&c);
    conv_probe_output(c.out, c.tmp, sizeof c.tmp);
    read_inputs(&c);
    train_stats(&c);
    if (!c.opt.quiet)
        fprintf(stderr, "cifar10-to-h5: read and validated %d files (%ld images) from '%s'  [%.1f s]\n", N_BIN + 1,
                6 * c.opt.records, c.opt.input, eff_time() - c.t0);

    conv_make_tmp(c.out, c.tmp, sizeof c.tmp);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* errors are reported with eff_h5_error_detail */
    int rc = write_all(&c);
    if (!rc) rc = conv_commit_output(c.out, c.tmp);
    if (rc) {
        if (c.tmp[0] && conv_remove_tree_flat(c.tmp) != 0)
            fprintf(stderr, "effnet: warning: could not remove the temporary directory '%s'\n", c.tmp);
        fprintf(stderr, "effnet: error: conversion failed; '%s' was not changed\n", c.out);
        return 1;
    }
    for (int i = 0; i <= N_BIN; i++) free(c.src[i].data);
    if (!c.opt.quiet)
        fprintf(stderr, "cifar10-to-h5: done: %ld train images in %ld shard(s), %ld test images -> '%s'  [%.1f s]\n",
                5 * c.opt.records, c.opt.shards, c.opt.records, c.out, eff_time() - c.t0);
    return 0;
}
