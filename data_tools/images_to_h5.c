/* images-to-h5: convert an image folder (one directory per class, JPEG/PNG)
 * into sharded HDF5 (the effnet-images-h5 format, docs/data-format.md).
 *
 *   images-to-h5 --input DIR --output OUT --shards N [--size S] [--val-fraction F]
 *                [--test-shards M] [--threads T] [--force] [--skip-bad] [--quiet]
 *
 * The tree is scanned first (img_scan.c: classes, files, split); then each
 * shard is filled batch by batch: T threads decode a batch (img_decode.c) and
 * resize it (img_resize.c), the main thread appends it to the shard in input
 * order (img_h5.c). Shards go to a temporary directory beside OUT that is
 * renamed onto OUT at the end; any error, or SIGINT/SIGTERM, removes it, so
 * OUT is either the old one or the complete new one. Batch boundaries and
 * every write depend only on the input, never on T, so the bytes do not. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <limits.h>
#include <libgen.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "conv_common.h"
#include "img_decode.h"
#include "img_h5.h"
#include "img_resize.h"
#include "img_scan.h"
#include "sha256.h"

#define INDEX_NAME "index.txt"
#define CLASSES_NAME "classes.txt"
#define SKIPPED_NAME "skipped.txt"
#define MAX_FILE_BYTES (1LL << 31)
static const char *const SPLIT_NAMES[2] = {"train", "test"};

typedef struct {
    const char *input, *output;
    long shards, test_shards, size, threads;
    double val_fraction;
    int val_fraction_given, force, skip_bad, quiet;
} options;

typedef struct {
    int split, k, count;
    int64_t first, n;
    char name[64];
} shard_entry;

typedef struct {
    options opt;
    char in[4096];          /* input without trailing slashes */
    char out[4096];         /* output without trailing slashes */
    char tmp[4200];         /* temporary directory, "" when none */
    char dataset[256];      /* basename of the input */
    img_scan scan;
    img_h5_meta meta;
    int batch;              /* images per decode batch (depends on --size only) */
    int nshards[2];
    int64_t split_n[2];     /* images written per split */
    shard_entry *entries;
    int n_entries;
    uint64_t s1[3], s2[3];  /* train pixel sums */
    int64_t train_pixels;
    /* progress */
    double t0, t_split, t_print;
    int64_t done_images, done_bytes, split_total;
    int cur_split;
} converter;

static converter *g_conv;                  /* for the exit-time cleanup */
static volatile sig_atomic_t g_stop;       /* SIGINT / SIGTERM seen */

static void usage(FILE *to) {
    fprintf(to,
            "usage: images-to-h5 --input DIR --output OUT --shards N [--size S] [--val-fraction F]\n"
            "                    [--test-shards M] [--threads T] [--force] [--skip-bad] [--quiet]\n"
            "  --input DIR        DIR/<class>/<images>, or DIR/train/<class>/... with DIR/val/<class>/...\n"
            "                     (or DIR/test/<class>/...); .jpg .jpeg .png, any case, in subfolders too\n"
            "  --output OUT       directory to create: index.txt, classes.txt, train-*-of-*.h5, test-*-of-*.h5\n"
            "  --shards N         number of train shards\n"
            "  --size S           resize the shorter side to S (area averaging, PIL's BOX) and centre-crop SxS;\n"
            "                     without it images keep their size (the ragged layout)\n"
            "  --val-fraction F   for DIR/<class>/ input: the fraction of files (by a hash of their path)\n"
            "                     that form the test split (default 0.1)\n"
            "  --test-shards M    number of test shards (default: N scaled by the test/train sizes, at least 1)\n"
            "  --threads T        decoding threads (default: the CPUs this process may use)\n"
            "  --force            replace an existing OUT (only one that images-to-h5 wrote)\n"
            "  --skip-bad         skip unreadable or broken files, empty class folders and symlink loops, and\n"
            "                     list them in OUT/skipped.txt (default: stop at the first one)\n"
            "  --quiet            no progress lines\n");
}

/* ---- output directory ------------------------------------------------------ */

static void cleanup_at_exit(void) {
    if (g_conv && g_conv->tmp[0]) {
        if (conv_remove_tree_flat(g_conv->tmp) != 0)
            fprintf(stderr, "effnet: warning: could not remove the temporary directory '%s'; remove it by hand\n", g_conv->tmp);
        else
            fprintf(stderr, "images-to-h5: removed the unfinished output; '%s' was not changed\n", g_conv->out);
        g_conv->tmp[0] = '\0';
    }
}

static void on_signal(int sig) { g_stop = sig; }

static int our_file_name(const char *n) {
    size_t L = strlen(n);
    if (!strcmp(n, INDEX_NAME) || !strcmp(n, CLASSES_NAME) || !strcmp(n, SKIPPED_NAME)) return 1;
    return (strncmp(n, "train-", 6) == 0 || strncmp(n, "test-", 5) == 0) && L > 3 && !strcmp(n + L - 3, ".h5");
}

/* 1 if dir is empty, or holds our index.txt and nothing but our file names. */
static int is_our_output(const char *dir) {
    char p[4200], line[256];
    snprintf(p, sizeof p, "%s/%s", dir, INDEX_NAME);
    FILE *f = fopen(p, "r");
    int ok = !f, empty = 1;
    if (f) {
        while (fgets(line, sizeof line, f))
            if (!strcmp(line, "format " IMG_H5_FORMAT "\n")) ok = 1;
        fclose(f);
    }
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        empty = 0;
        if (!our_file_name(e->d_name)) ok = 0;
    }
    closedir(d);
    return f ? ok : empty;
}

static void check_output(converter *c) {
    struct stat st;
    if (lstat(c->out, &st) != 0) {
        if (errno != ENOENT) EFF_FATAL("cannot inspect output '%s': %s\nHINT: check the path", c->out, strerror(errno));
        return;
    }
    if (!c->opt.force)
        EFF_FATAL("output '%s' already exists; nothing was changed\nHINT: pass --force to replace it, or choose another --output", c->out);
    if (!S_ISDIR(st.st_mode) || !is_our_output(c->out))
        EFF_FATAL("output '%s' exists and is not a shard directory written by images-to-h5; refusing to replace it even with --force\nHINT: choose another --output or remove it yourself",
                  c->out);
}

/* realpath of p, or of its parent joined with its last component when p does not exist. */
static void resolve(const char *p, char *res) {
    if (realpath(p, res)) return;
    char a[4096], b[4096], parent[PATH_MAX];
    snprintf(a, sizeof a, "%s", p);
    snprintf(b, sizeof b, "%s", p);
    if (!realpath(dirname(a), parent)) {
        snprintf(res, PATH_MAX, "%s", p);
        return;
    }
    if (snprintf(res, PATH_MAX, "%s/%s", strcmp(parent, "/") ? parent : "", basename(b)) >= PATH_MAX)
        snprintf(res, PATH_MAX, "%s", p);
}

static int inside(const char *a, const char *b) { /* a is b or below b */
    size_t L = strlen(b);
    return !strncmp(a, b, L) && (a[L] == '\0' || a[L] == '/' || (L == 1 && b[0] == '/'));
}

/* The output must not be inside the input (it would be read as a class) nor contain it (--force would delete it). */
static void check_overlap(converter *c) {
    char ri[PATH_MAX], ro[PATH_MAX];
    resolve(c->in, ri);
    resolve(c->out, ro);
    if (inside(ro, ri))
        EFF_FATAL("output '%s' is inside input '%s'; nothing was written\nHINT: write the shards outside the image folder", c->out, c->in);
    if (inside(ri, ro))
        EFF_FATAL("input '%s' is inside output '%s'; nothing was written\nHINT: choose an --output outside the image folder", c->in, c->out);
    const char *base = strrchr(ri, '/');
    if ((size_t)snprintf(c->dataset, sizeof c->dataset, "%s", base && base[1] ? base + 1 : ri) >= sizeof c->dataset)
        EFF_FATAL("input directory name '%s' is longer than %zu bytes\nHINT: rename it", ri, sizeof c->dataset - 1);
    if (strpbrk(c->dataset, "\n\r"))
        EFF_FATAL("input directory name '%s' has a line break; index.txt records it on one line\nHINT: rename the directory", c->in);
}

/* ---- decoding a batch (worker threads) --------------------------------------- */

enum { SLOT_TODO = 1 }; /* besides IMG_OK, IMG_BAD, IMG_NOMEM */

typedef struct {
    const img_item *item;
    int status;
    char why[600];
    img_rgb im;             /* ragged: the decoded image (owned until appended) */
    int h, w;               /* as stored */
    int64_t bytes;          /* file bytes read */
    uint64_t s1[3], s2[3];  /* pixel sums as stored */
} slot;

typedef struct {
    converter *c;
    slot *slots;
    int n;
    uint8_t *fixed;         /* n * S * S * 3 */
    atomic_int next;
    atomic_llong images, bytes;
    int started;            /* worker threads running on it */
    pthread_t tid[256];
} batch_job;

/* The whole file into a malloc'd buffer. */
static int read_file(const char *path, uint8_t **buf, size_t *n, char *why, size_t len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(why, len, "cannot read: %s", strerror(errno));
        if (fd >= 0) close(fd);
        return IMG_BAD;
    }
    if (st.st_size > MAX_FILE_BYTES) {
        snprintf(why, len, "file is %lld bytes, more than the %lld-byte limit for one image", (long long)st.st_size, MAX_FILE_BYTES);
        close(fd);
        return IMG_BAD;
    }
    size_t size = (size_t)st.st_size, got = 0;
    *buf = malloc(size ? size : 1);
    if (!*buf) {
        snprintf(why, len, "out of memory for a %zu-byte file", size);
        close(fd);
        return IMG_NOMEM;
    }
    while (got < size) {
        ssize_t r = read(fd, *buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            snprintf(why, len, "cannot read: %s", r < 0 ? strerror(errno) : "the file shrank while being read");
            close(fd);
            free(*buf);
            *buf = NULL;
            return IMG_BAD;
        }
        got += (size_t)r;
    }
    close(fd);
    *n = size;
    return IMG_OK;
}

static void pixel_sums(slot *s, const uint8_t *p, size_t npix) {
    uint64_t a[3] = {0, 0, 0}, b[3] = {0, 0, 0};
    for (size_t i = 0; i < npix; i++)
        for (int ch = 0; ch < 3; ch++) {
            unsigned v = p[3 * i + ch];
            a[ch] += v;
            b[ch] += v * v;
        }
    memcpy(s->s1, a, sizeof a);
    memcpy(s->s2, b, sizeof b);
}

/* Read, decode and (with --size) resize image i of the batch. */
static void process_one(batch_job *b, int i) {
    converter *c = b->c;
    slot *s = &b->slots[i];
    char path[8400];
    snprintf(path, sizeof path, "%s/%s", c->in, s->item->rel);
    uint8_t *buf = NULL;
    size_t n = 0;
    s->status = read_file(path, &buf, &n, s->why, sizeof s->why);
    if (s->status != IMG_OK) return;
    s->bytes = (int64_t)n;
    s->status = img_decode(buf, n, &s->im, s->why, sizeof s->why);
    free(buf);
    if (s->status != IMG_OK) return;
    if (c->meta.fixed) {
        int S = c->meta.S;
        uint8_t *dst = b->fixed + (size_t)i * S * S * 3;
        img_resize_crop(s->im.rgb, s->im.h, s->im.w, S, dst);
        free(s->im.rgb);
        s->im.rgb = NULL;
        s->h = s->w = S;
        if (s->status == IMG_OK) pixel_sums(s, dst, (size_t)S * S);
    } else {
        s->h = s->im.h;
        s->w = s->im.w;
        pixel_sums(s, s->im.rgb, (size_t)s->h * s->w);
    }
}

static void progress(converter *c, batch_job *b) {
    double now = eff_time();
    if (c->opt.quiet || now - c->t_print < 10.0) return;
    c->t_print = now;
    long long done = c->done_images + atomic_load(&b->images), bytes = c->done_bytes + atomic_load(&b->bytes);
    double dt = now - c->t_split > 1e-9 ? now - c->t_split : 1e-9;
    fprintf(stderr, "images-to-h5: %s %lld/%lld images (%.0f%%), %.0f images/s, %.1f MB/s  [%.1f s]\n",
            SPLIT_NAMES[c->cur_split], done, (long long)c->split_total, 100.0 * done / (c->split_total ? c->split_total : 1),
            done / dt, bytes / dt / 1e6, now - c->t0);
}

/* Take images of the batch by its atomic counter until none is left or a signal came. */
static void decode_share(batch_job *b, int print) {
    for (;;) {
        if (g_stop) break;
        int i = atomic_fetch_add(&b->next, 1);
        if (i >= b->n) break;
        process_one(b, i);
        atomic_fetch_add(&b->images, 1);
        atomic_fetch_add(&b->bytes, b->slots[i].bytes);
        if (print) progress(b->c, b);
    }
}

static void *worker(void *arg) {
    decode_share(arg, 0);
    return NULL;
}

/* Start decoding n items on T-1 new threads; the main thread joins in at batch_finish. */
static void batch_start(converter *c, batch_job *b, const img_item *items, int n) {
    memset(b->slots, 0, (size_t)n * sizeof *b->slots);
    for (int i = 0; i < n; i++) {
        b->slots[i].item = &items[i];
        b->slots[i].status = SLOT_TODO;
    }
    b->n = n;
    atomic_store(&b->next, 0);
    atomic_store(&b->images, 0);
    atomic_store(&b->bytes, 0);
    b->started = 0;
    for (int t = 0; t < (int)c->opt.threads - 1 && t < 256 && t + 1 < n; t++)
        if (pthread_create(&b->tid[b->started], NULL, worker, b) == 0) b->started++;
}

static void batch_finish(converter *c, batch_job *b) {
    decode_share(b, 1);
    for (int t = 0; t < b->started; t++) pthread_join(b->tid[t], NULL);
    b->started = 0;
    if (g_stop) EFF_FATAL("interrupted by signal %d; nothing was written to '%s'", (int)g_stop, c->out);
    c->done_images += b->n;
    c->done_bytes += atomic_load(&b->bytes);
}

/* ---- writing shards ------------------------------------------------------------ */

/* Append the good images of a decoded batch to the shard, in input order; a bad
 * one stops the conversion, or with --skip-bad is listed. */
static void collect(converter *c, batch_job *b, img_h5_shard *w, int split) {
    int n = b->n, m = 0;
    size_t isz = c->meta.fixed ? (size_t)c->meta.S * c->meta.S * 3 : 0, total = 0;
    int32_t *labels = eff_malloc((size_t)n * sizeof *labels, "batch labels");
    int32_t *hw = eff_malloc((size_t)n * 2 * sizeof *hw, "batch sizes");
    const char **src = eff_malloc((size_t)n * sizeof *src, "batch sources");
    for (int i = 0; i < n; i++) {
        slot *s = &b->slots[i];
        if (s->status == IMG_NOMEM)
            EFF_FATAL("out of memory on '%s/%s': %s\nHINT: use fewer --threads, or a node with more memory", c->in, s->item->rel, s->why);
        if (s->status != IMG_OK) {
            if (!c->opt.skip_bad)
                EFF_FATAL("bad input '%s/%s': %s\nHINT: fix or remove it, or pass --skip-bad to convert the rest (OUT/skipped.txt then lists every skipped file with its reason)%s",
                          c->in, s->item->rel, s->why,
                          strncmp(strrchr(s->item->rel, '/') + 1, "._", 2) ? "" : "; a name starting with '._' is a macOS resource-fork file, not an image");
            img_bad_add(&c->scan.bad, s->item->rel, s->why);
            continue;
        }
        if (c->meta.fixed && m != i) memmove(b->fixed + (size_t)m * isz, b->fixed + (size_t)i * isz, isz);
        labels[m] = s->item->label;
        hw[2 * m] = s->h;
        hw[2 * m + 1] = s->w;
        src[m] = s->item->rel;
        total += (size_t)s->h * s->w * 3;
        if (split == 0)
            for (int ch = 0; ch < 3; ch++) {
                c->s1[ch] += s->s1[ch];
                c->s2[ch] += s->s2[ch];
            }
        if (split == 0) c->train_pixels += (int64_t)s->h * s->w;
        m++;
    }
    uint8_t *pix = b->fixed;
    if (!c->meta.fixed) { /* concatenate the ragged images */
        pix = eff_malloc(total ? total : 1, "the batch's pixels");
        size_t off = 0;
        for (int i = 0; i < n; i++)
            if (b->slots[i].status == IMG_OK) {
                size_t sz = (size_t)b->slots[i].h * b->slots[i].w * 3;
                memcpy(pix + off, b->slots[i].im.rgb, sz);
                off += sz;
            }
    }
    int rc = img_h5_append(w, pix, total, m, labels, hw, src);
    if (!c->meta.fixed) free(pix);
    for (int i = 0; i < n; i++) {
        free(b->slots[i].im.rgb);
        b->slots[i].im.rgb = NULL;
    }
    free(labels); free(hw); free(src);
    if (rc) EFF_FATAL("writing shard '%s' failed (above); nothing was written to '%s'", w->path, c->out);
}

/* One decode batch: items [lo, lo+n) of a split, inside shard k. */
typedef struct {
    int split, k;
    int64_t lo, shard_lo, shard_hi;
    int n;
} batch_plan;

/* Shard k of a split takes the input files [k*M/N, (k+1)*M/N) of its M; the
 * skipped ones among them leave it that much smaller. Batches of c->batch
 * files never straddle shards. */
static batch_plan *plan_batches(converter *c, int *count) {
    int cap = 64, nb = 0;
    batch_plan *v = eff_malloc((size_t)cap * sizeof *v, "the batch plan");
    for (int split = 0; split < 2; split++) {
        int64_t M = (int64_t)c->scan.split[split].n;
        int N = c->nshards[split];
        for (int k = 0; k < N; k++) {
            int64_t lo = k * M / N, hi = (k + 1) * M / N;
            for (int64_t i = lo; i < hi; i += c->batch) {
                if (nb == cap) {
                    cap *= 2;
                    v = realloc(v, (size_t)cap * sizeof *v);
                    EFF_CHECK(v, "out of memory for the batch plan (%d batches)", nb);
                }
                v[nb++] = (batch_plan){split, k, i, lo, hi, (int)(hi - i < c->batch ? hi - i : c->batch)};
            }
        }
    }
    *count = nb;
    return v;
}

static void shard_begin(converter *c, const batch_plan *p, img_h5_shard *w, int64_t first) {
    shard_entry *e = &c->entries[c->n_entries];
    *e = (shard_entry){p->split, p->k, c->nshards[p->split], first, 0, ""};
    snprintf(e->name, sizeof e->name, "%s-%05d-of-%05d.h5", SPLIT_NAMES[p->split], p->k, c->nshards[p->split]);
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", c->tmp, e->name);
    if (img_h5_open(w, path, &c->meta, SPLIT_NAMES[p->split], p->k, e->count, first, p->shard_hi - p->shard_lo))
        EFF_FATAL("cannot create shard '%s' (above); nothing was written to '%s'", path, c->out);
}

static void shard_end(converter *c, const batch_plan *p, img_h5_shard *w) {
    shard_entry *e = &c->entries[c->n_entries++];
    if (w->n == 0)
        EFF_FATAL("%s shard %d of %d would hold no image: all %lld of its files were skipped; nothing was written to '%s'\nHINT: use fewer shards (--shards / --test-shards), or fix the files listed above",
                  SPLIT_NAMES[p->split], p->k, e->count, (long long)(p->shard_hi - p->shard_lo), c->out);
    e->n = w->n;
    if (img_h5_close(w)) EFF_FATAL("writing shard '%s' failed (above); nothing was written to '%s'", w->path, c->out);
    if (!c->opt.quiet) {
        double dt = eff_time() - c->t_split;
        dt = dt > 1e-9 ? dt : 1e-9;
        fprintf(stderr, "images-to-h5: wrote %-26s %7lld images  (%s: %lld/%lld, %.0f images/s, %.1f MB/s)  [%.1f s]\n",
                e->name, (long long)e->n, SPLIT_NAMES[p->split], (long long)c->done_images, (long long)c->split_total,
                c->done_images / dt, c->done_bytes / dt / 1e6, eff_time() - c->t0);
    }
}

/* Every batch in order: while the main thread appends batch i to its shard,
 * T-1 threads already decode batch i+1; then the main thread helps them. */
static void convert_all(converter *c, batch_job jobs[2]) {
    int nb = 0;
    batch_plan *plan = plan_batches(c, &nb);
    img_h5_shard w;
    int64_t first = 0;
    c->cur_split = -1;
    batch_start(c, &jobs[0], c->scan.split[plan[0].split].v + plan[0].lo, plan[0].n);
    for (int i = 0; i < nb; i++) {
        const batch_plan *p = &plan[i];
        batch_job *b = &jobs[i % 2];
        if (p->split != c->cur_split) { /* a new split: its own counters and progress */
            c->cur_split = p->split;
            c->t_split = c->t_print = eff_time();
            c->done_images = c->done_bytes = 0;
            c->split_total = (int64_t)c->scan.split[p->split].n;
            first = 0;
        }
        batch_finish(c, b);
        if (i + 1 < nb) batch_start(c, &jobs[(i + 1) % 2], c->scan.split[plan[i + 1].split].v + plan[i + 1].lo, plan[i + 1].n);
        if (p->lo == p->shard_lo) shard_begin(c, p, &w, first);
        collect(c, b, &w, p->split);
        if (p->lo + p->n == p->shard_hi) {
            shard_end(c, p, &w);
            first += w.n;
            c->split_n[p->split] = first;
        }
    }
    free(plan);
}

/* ---- index, classes, skipped list ------------------------------------------------ */

static FILE *create_text(converter *c, const char *name, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", c->tmp, name);
    FILE *f = fopen(path, "w");
    if (!f) EFF_FATAL("cannot create '%s': %s; nothing was written to '%s'", path, strerror(errno), c->out);
    return f;
}

static void close_text(converter *c, FILE *f, const char *path) {
    if (ferror(f) | (fclose(f) != 0))
        EFF_FATAL("writing '%s' failed: %s; nothing was written to '%s'\nHINT: the disk may be full", path, strerror(errno), c->out);
}

/* A path or reason on one line of skipped.txt: backslash, tab and line breaks escaped. */
static void put_escaped(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '\\') fputs("\\\\", f);
        else if (*s == '\t') fputs("\\t", f);
        else if (*s == '\n') fputs("\\n", f);
        else if (*s == '\r') fputs("\\r", f);
        else fputc(*s, f);
    }
}

static int cmp_bad(const void *a, const void *b) { return strcmp(((const img_bad *)a)->rel, ((const img_bad *)b)->rel); }

static void write_lists(converter *c, char classes_sha[65]) {
    char path[4400];
    FILE *f = create_text(c, CLASSES_NAME, path, sizeof path);
    for (int i = 0; i < c->scan.nclasses; i++) fprintf(f, "%s\n", c->scan.classes[i]);
    close_text(c, f, path);
    if (eff_sha256_file(path, classes_sha) != 0) EFF_FATAL("cannot read back '%s': %s", path, strerror(errno));
    if (!c->opt.skip_bad) return;
    img_bad_list *bl = &c->scan.bad;
    qsort(bl->v, bl->n, sizeof *bl->v, cmp_bad);
    f = create_text(c, SKIPPED_NAME, path, sizeof path);
    for (size_t i = 0; i < bl->n; i++) {
        put_escaped(f, bl->v[i].rel);
        fputc('\t', f);
        put_escaped(f, bl->v[i].reason);
        fputc('\n', f);
    }
    close_text(c, f, path);
}

static void write_index(converter *c, const char *classes_sha) {
    char path[4400];
    FILE *f = create_text(c, INDEX_NAME, path, sizeof path);
    int S = c->meta.fixed ? c->meta.S : 0;
    fprintf(f,
            "# effnet-hpc image-folder shard index, written by images-to-h5; layout in docs/data-format.md\n"
            "format %s\nschema_version %d\ndataset %s\nlayout %s\nheight %d\nwidth %d\nchannels 3\nnum_classes %d\n"
            "classes %s %s\nsplit train %lld %d\nsplit test %lld %d\n",
            IMG_H5_FORMAT, IMG_H5_SCHEMA_VERSION, c->dataset, c->meta.fixed ? "fixed" : "ragged", S, S, c->scan.nclasses,
            CLASSES_NAME, classes_sha, (long long)c->split_n[0], c->nshards[0], (long long)c->split_n[1], c->nshards[1]);
    if (c->opt.skip_bad) fprintf(f, "skipped %s %zu\n", SKIPPED_NAME, c->scan.bad.n);
    for (int i = 0; i < c->n_entries; i++) {
        const shard_entry *e = &c->entries[i];
        char sp[4400], sha[65];
        struct stat st;
        snprintf(sp, sizeof sp, "%s/%s", c->tmp, e->name);
        if (eff_sha256_file(sp, sha) != 0 || stat(sp, &st) != 0) EFF_FATAL("cannot read back '%s': %s", sp, strerror(errno));
        fprintf(f, "shard %s %d %d %lld %lld %lld %s %s\n", SPLIT_NAMES[e->split], e->k, e->count, (long long)e->first,
                (long long)e->n, (long long)st.st_size, e->name, sha);
    }
    close_text(c, f, path);
}

/* Per-channel mean and population std over every stored train pixel, [0,1] scale;
 * then written into every shard. */
static void finish_shards(converter *c) {
    double mean[3], std[3], n = (double)c->train_pixels;
    for (int ch = 0; ch < 3; ch++) {
        double m = (double)c->s1[ch] / n, var = (double)c->s2[ch] / n - m * m;
        mean[ch] = m / 255.0;
        std[ch] = sqrt(var > 0 ? var : 0) / 255.0;
    }
    for (int i = 0; i < c->n_entries; i++) {
        char sp[4400];
        snprintf(sp, sizeof sp, "%s/%s", c->tmp, c->entries[i].name);
        if (img_h5_set_totals(sp, c->split_n[c->entries[i].split], mean, std))
            EFF_FATAL("updating shard '%s' failed (above); nothing was written to '%s'", sp, c->out);
    }
}

/* ---- command line and main ------------------------------------------------------- */

static long default_threads(void) {
    cpu_set_t set;
    long n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
    if (n < 1) n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : n;
}

static void parse_args(options *o, int argc, char **argv) {
    o->val_fraction = 0.1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        else if (!strcmp(a, "--force")) o->force = 1;
        else if (!strcmp(a, "--skip-bad")) o->skip_bad = 1;
        else if (!strcmp(a, "--quiet")) o->quiet = 1;
        else if (v && !strcmp(a, "--input")) { o->input = v; i++; }
        else if (v && !strcmp(a, "--output")) { o->output = v; i++; }
        else if (v && !strcmp(a, "--shards")) {
            if (!eff_parse_int(v, 1, 100000, &o->shards)) EFF_FATAL("--shards '%s' is not an integer in 1..100000", v);
            i++;
        } else if (v && !strcmp(a, "--test-shards")) {
            if (!eff_parse_int(v, 1, 100000, &o->test_shards)) EFF_FATAL("--test-shards '%s' is not an integer in 1..100000", v);
            i++;
        } else if (v && !strcmp(a, "--size")) {
            if (!eff_parse_int(v, 1, 8192, &o->size)) EFF_FATAL("--size '%s' is not an integer in 1..8192 (pixels)", v);
            i++;
        } else if (v && !strcmp(a, "--threads")) {
            if (!eff_parse_int(v, 1, 256, &o->threads)) EFF_FATAL("--threads '%s' is not an integer in 1..256", v);
            i++;
        } else if (v && !strcmp(a, "--val-fraction")) {
            if (!eff_parse_double(v, &o->val_fraction) || !(o->val_fraction > 0 && o->val_fraction < 1))
                EFF_FATAL("--val-fraction '%s' is not a number strictly between 0 and 1\nHINT: 0.1 puts about 10%% of the files in the test split", v);
            o->val_fraction_given = 1;
            i++;
        } else {
            usage(stderr);
            EFF_FATAL("unknown or incomplete argument '%s'", a);
        }
    }
    if (!o->input || !o->output || !o->shards) {
        usage(stderr);
        EFF_FATAL("--input, --output and --shards are required");
    }
    if (!o->threads) o->threads = default_threads();
}

static void strip_slashes(char *dst, size_t cap, const char *src, const char *what) {
    if (strlen(src) + 16 >= cap) EFF_FATAL("%s path is too long (%zu bytes)", what, strlen(src));
    snprintf(dst, cap, "%s", src);
    for (size_t L = strlen(dst); L > 1 && dst[L - 1] == '/'; L--) dst[L - 1] = '\0';
}

/* Shard counts and the layout's parameters, once the scan has counted the files. */
static void plan(converter *c) {
    int64_t Mtr = (int64_t)c->scan.split[0].n, Mte = (int64_t)c->scan.split[1].n;
    if (Mtr == 0) EFF_FATAL("'%s' has no train images; nothing was written\nHINT: each class folder needs .jpg, .jpeg or .png files", c->in);
    if (Mte == 0) {
        if (c->scan.layout == 0)
            EFF_FATAL("--val-fraction %g put none of the %lld images into the test split; nothing was written\nHINT: raise --val-fraction",
                      c->opt.val_fraction, (long long)Mtr);
        EFF_FATAL("'%s/%s' holds no images; nothing was written\nHINT: put the evaluation images in %s/<class>/", c->in,
                  c->scan.layout == 1 ? "val" : "test", c->scan.layout == 1 ? "val" : "test");
    }
    if (c->opt.shards > Mtr)
        EFF_FATAL("--shards %ld is more than the %lld train images\nHINT: use at most %lld shards", c->opt.shards, (long long)Mtr, (long long)Mtr);
    long ts = c->opt.test_shards ? c->opt.test_shards : (long)((c->opt.shards * Mte + Mtr - 1) / Mtr);
    if (ts < 1) ts = 1;
    if (ts > Mte) EFF_FATAL("--test-shards %ld is more than the %lld test images\nHINT: use at most %lld", ts, (long long)Mte, (long long)Mte);
    c->nshards[0] = (int)c->opt.shards;
    c->nshards[1] = (int)ts;
    img_h5_meta *m = &c->meta;
    m->dataset = c->dataset;
    m->num_classes = c->scan.nclasses;
    m->fixed = c->opt.size > 0;
    m->S = (int)c->opt.size;
    long isz = m->fixed ? (long)m->S * m->S * 3 : 0;
    /* about 768 KiB per chunk, as the CIFAR-10 shards; batches of at most 64 MiB of fixed images */
    m->chunk_images = m->fixed ? (int)(786432 / isz < 1 ? 1 : 786432 / isz > 256 ? 256 : 786432 / isz) : 0;
    m->chunk_bytes = 262144;
    c->batch = m->fixed ? (int)((64L << 20) / isz < 16 ? 16 : (64L << 20) / isz > 256 ? 256 : (64L << 20) / isz) : 64;
}

static void report_scan(converter *c) {
    if (c->opt.quiet) return;
    static const char *const lay[3] = {"DIR/<class>, split by --val-fraction", "DIR/train + DIR/val", "DIR/train + DIR/test"};
    fprintf(stderr, "images-to-h5: '%s' (%s): %d classes, %zu train + %zu test image files  [%.1f s]\n", c->in,
            lay[c->scan.layout], c->scan.nclasses, c->scan.split[0].n, c->scan.split[1].n, eff_time() - c->t0);
    if (c->scan.ignored)
        fprintf(stderr, "images-to-h5: note: ignored %ld files without a .jpg, .jpeg or .png extension (e.g. '%s')\n",
                c->scan.ignored, c->scan.ignored_example);
    if (c->scan.test_missing_classes)
        fprintf(stderr, "images-to-h5: note: %d of the %d classes have no folder in '%s/%s'\n", c->scan.test_missing_classes,
                c->scan.nclasses, c->in, c->scan.layout == 1 ? "val" : "test");
}

int main(int argc, char **argv) {
    static converter conv;
    converter *c = &conv;
    g_conv = c;
    atexit(cleanup_at_exit); /* registered before HDF5's, so it runs after HDF5 closed its files */
    parse_args(&c->opt, argc, argv);
    strip_slashes(c->in, sizeof c->in, c->opt.input, "--input");
    strip_slashes(c->out, sizeof c->out, c->opt.output, "--output");
    c->t0 = eff_time();
    check_output(c);
    check_overlap(c);
    conv_probe_output(c->out, c->tmp, sizeof c->tmp); /* before a long scan */
    c->scan.input = c->in;
    c->scan.val_fraction = c->opt.val_fraction;
    c->scan.val_fraction_given = c->opt.val_fraction_given;
    c->scan.skip_bad = c->opt.skip_bad;
    img_scan_run(&c->scan);
    report_scan(c);
    plan(c);
    /* From here on files are written: SIGINT/SIGTERM stop at the next batch and clean up (the scan,
     * which writes nothing, is simply killed). */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    conv_make_tmp(c->out, c->tmp, sizeof c->tmp);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* errors are reported with eff_h5_error_detail */
    c->entries = eff_calloc((size_t)(c->nshards[0] + c->nshards[1]), sizeof *c->entries, "the shard list");
    static batch_job jobs[2];
    for (int j = 0; j < 2; j++) {
        jobs[j].c = c;
        jobs[j].slots = eff_malloc((size_t)c->batch * sizeof *jobs[j].slots, "the decode batch");
        if (c->meta.fixed)
            jobs[j].fixed = eff_malloc((size_t)c->batch * c->meta.S * c->meta.S * 3, "the decode batch's images");
    }
    convert_all(c, jobs);
    for (int j = 0; j < 2; j++) {
        free(jobs[j].slots);
        free(jobs[j].fixed);
    }
    char classes_sha[65];
    finish_shards(c);
    write_lists(c, classes_sha);
    write_index(c, classes_sha);
    if (conv_commit_output(c->out, c->tmp)) EFF_FATAL("conversion failed; '%s' was not changed", c->out);
    if (c->opt.skip_bad && c->scan.bad.n)
        fprintf(stderr, "images-to-h5: skipped %zu bad files or folders, listed in '%s/%s'\n", c->scan.bad.n, c->out, SKIPPED_NAME);
    if (!c->opt.quiet)
        fprintf(stderr, "images-to-h5: done: %lld train images in %d shard(s), %lld test images in %d -> '%s'  [%.1f s]\n",
                (long long)c->split_n[0], c->nshards[0], (long long)c->split_n[1], c->nshards[1], c->out, eff_time() - c->t0);
    img_scan_free(&c->scan);
    free(c->entries);
    return 0;
}
