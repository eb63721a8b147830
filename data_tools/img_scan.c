/* img_scan.c: see img_scan.h. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* d_type, DT_REG */
#include "img_scan.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "common.h"
#include "sha256.h"

#define PATH_CAP 4096
#define MAX_DEPTH 256

static const char *const SPLIT_DIRS[3] = {"", "val", "test"};

typedef struct {
    dev_t dev;
    ino_t ino;
    const char *rel;
} dir_id;

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = eff_malloc(n, "a path");
    memcpy(d, s, n);
    return d;
}

void img_bad_add(img_bad_list *l, const char *rel, const char *reason) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        EFF_CHECK(l->v, "out of memory for the list of %zu bad files", l->cap);
    }
    l->v[l->n].rel = dup_str(rel);
    l->v[l->n].reason = dup_str(reason);
    l->n++;
}

static void item_add(img_item_list *l, const char *rel, int32_t label, int64_t bytes) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        EFF_CHECK(l->v, "out of memory for the list of %zu image files", l->cap);
    }
    l->v[l->n].rel = dup_str(rel);
    l->v[l->n].label = label;
    l->v[l->n].bytes = bytes;
    l->n++;
}

/* A bad entry: listed with --skip-bad, otherwise the end (nothing written yet). */
static void bad(img_scan *s, const char *rel, const char *fmt, ...) EFF_PRINTF(3, 4);
static void bad(img_scan *s, const char *rel, const char *fmt, ...) {
    char reason[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (!s->skip_bad)
        EFF_FATAL("bad input '%s/%s': %s; nothing was written\nHINT: fix or remove it, or pass --skip-bad to convert the rest "
                  "(OUT/skipped.txt then lists every skipped file with its reason)",
                  s->input, rel, reason);
    img_bad_add(&s->bad, rel, reason);
}

static int has_image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

/* Directory entries are stored as one string: the d_type byte, then the name. */
#define ENT_NAME(e) ((e) + 1)
#define ENT_TYPE(e) ((unsigned char)(e)[0])

static int cmp_names(const void *a, const void *b) {
    return strcmp(ENT_NAME(*(char *const *)a), ENT_NAME(*(char *const *)b));
}

/* The entries of a directory but . and .., sorted by name bytes; NULL (errno set) if unreadable. */
static char **list_dir(const char *path, size_t *n) {
    DIR *d = opendir(path);
    if (!d) return NULL;
    size_t cap = 64;
    char **v = eff_malloc(cap * sizeof *v, "a directory listing");
    *n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (*n == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof *v);
            EFF_CHECK(v, "out of memory listing '%s' (%zu entries)", path, *n);
        }
        size_t L = strlen(e->d_name);
        char *ent = eff_malloc(L + 2, "a directory entry");
        ent[0] = (char)e->d_type;
        memcpy(ent + 1, e->d_name, L + 1);
        v[(*n)++] = ent;
    }
    closedir(d);
    qsort(v, *n, sizeof *v, cmp_names);
    return v;
}

static void free_list(char **v, size_t n) {
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

static void note_ignored(img_scan *s, const char *rel) {
    if (s->ignored++ == 0 && (size_t)snprintf(s->ignored_example, sizeof s->ignored_example, "%s", rel) >= sizeof s->ignored_example)
        memcpy(s->ignored_example + sizeof s->ignored_example - 4, "...", 4);
}

typedef struct {
    img_scan *s;
    img_item_list *out;
    int32_t label;
    long found;          /* image files (good or bad) found under the class directory */
    dir_id stack[MAX_DEPTH];
} walker;

/* One entry of a class directory (or of a directory below it). */
static void walk_dir(walker *w, const char *rel, int depth);

/* d_type (from readdir) saves a stat() per plain file: DT_REG is a regular
 * file that is not a symlink. Anything else, or DT_UNKNOWN, is stat()ed. */
static void walk_entry(walker *w, const char *rel, int depth, unsigned char d_type) {
    img_scan *s = w->s;
    const char *name = strrchr(rel, '/') + 1;
    int img = has_image_ext(name);
    if (d_type == DT_REG) {
        if (!img) {
            note_ignored(s, rel);
        } else {
            w->found++;
            item_add(w->out, rel, w->label, -1);
        }
        return;
    }
    char abs[2 * PATH_CAP];
    snprintf(abs, sizeof abs, "%s/%s", s->input, rel);
    struct stat st;
    if (stat(abs, &st) != 0) {
        int e = errno;
        if (e == ELOOP) {
            w->found++;
            bad(s, rel, "symbolic link loop (%s)", strerror(e));
        } else if (img) {
            w->found++;
            bad(s, rel, e == ENOENT ? "broken symbolic link (its target does not exist)" : "cannot stat: %s", strerror(e));
        } else {
            note_ignored(s, rel);
        }
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        for (int i = 0; i <= depth; i++)
            if (w->stack[i].dev == st.st_dev && w->stack[i].ino == st.st_ino) {
                w->found++;
                if (w->stack[i].rel[0])
                    bad(s, rel, "symbolic link loop: it leads back to '%s/%s'", s->input, w->stack[i].rel);
                else
                    bad(s, rel, "symbolic link loop: it leads back to the input directory '%s'", s->input);
                return;
            }
        if (depth + 1 >= MAX_DEPTH) {
            w->found++;
            bad(s, rel, "directories nested more than %d deep", MAX_DEPTH);
            return;
        }
        w->stack[depth + 1] = (dir_id){st.st_dev, st.st_ino, rel};
        walk_dir(w, rel, depth + 1);
    } else if (!img) {
        note_ignored(s, rel);
    } else if (!S_ISREG(st.st_mode)) {
        w->found++;
        bad(s, rel, "not a regular file");
    } else {
        w->found++;
        item_add(w->out, rel, w->label, (int64_t)st.st_size);
    }
}

static void walk_dir(walker *w, const char *rel, int depth) {
    char abs[2 * PATH_CAP];
    snprintf(abs, sizeof abs, "%s/%s", w->s->input, rel);
    size_t n = 0;
    char **names = list_dir(abs, &n);
    if (!names) {
        w->found++;
        bad(w->s, rel, "cannot read directory: %s", strerror(errno));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char child[PATH_CAP];
        if ((size_t)snprintf(child, sizeof child, "%s/%s", rel, ENT_NAME(names[i])) >= sizeof child) {
            w->found++;
            bad(w->s, rel, "an entry's path is longer than %d bytes", PATH_CAP - 1);
            continue;
        }
        walk_entry(w, child, depth, ENT_TYPE(names[i]));
    }
    free_list(names, n);
}

/* ImageFolder's order inside a class: by directory path, then file name. */
static int cmp_items(const void *a, const void *b) {
    const char *p = ((const img_item *)a)->rel, *q = ((const img_item *)b)->rel;
    const char *sp = strrchr(p, '/'), *sq = strrchr(q, '/');
    size_t dp = (size_t)(sp - p), dq = (size_t)(sq - q);
    int c = memcmp(p, q, dp < dq ? dp : dq);
    if (c) return c;
    if (dp != dq) return dp < dq ? -1 : 1;
    return strcmp(sp + 1, sq + 1);
}

/* Walk class directory `rel` into list `out`; one holding no image file is bad.
 * The ancestors' stack starts at the input directory, so that a link back to
 * it (or to DIR/train) is a loop too, not a second copy of every class. */
static void walk_class(img_scan *s, const char *rel, int32_t label, img_item_list *out) {
    walker *w = eff_calloc(1, sizeof *w, "the directory walker");
    w->s = s;
    w->out = out;
    w->label = label;
    char prefix[PATH_CAP], abs[2 * PATH_CAP];
    int depth = -1;
    struct stat st;
    for (const char *p = rel;; p++) { /* "", "train", "train/cat" */
        if (*p && *p != '/') continue;
        snprintf(prefix, sizeof prefix, "%.*s", (int)(p - rel), rel);
        snprintf(abs, sizeof abs, "%s%s%s", s->input, prefix[0] ? "/" : "", prefix);
        if (stat(abs, &st) == 0 && depth + 1 < MAX_DEPTH) {
            const char *name = !prefix[0] ? "" : !*p ? rel : !strcmp(prefix, "train") ? "train" : !strcmp(prefix, "val") ? "val" : "test";
            w->stack[++depth] = (dir_id){st.st_dev, st.st_ino, name};
        }
        if (!*p) break;
    }
    size_t first = out->n;
    walk_dir(w, rel, depth);
    qsort(out->v + first, out->n - first, sizeof *out->v, cmp_items);
    if (w->found == 0) bad(s, rel, "class directory holds no .jpg, .jpeg or .png file");
    free(w);
}

int img_in_test_split(const char *rel, double f) {
    char hex[65];
    eff_sha256_hex(rel, strlen(rel), hex);
    hex[16] = '\0';
    uint64_t u = strtoull(hex, NULL, 16);
    /* u < f * 2^64 exactly: f * 2^64 is exact in double, and u < t <=> u < ceil(t) for an integer u */
    double t = ceil(ldexp(f, 64));
    return t >= 18446744073709551616.0 || u < (uint64_t)t;
}

/* 1 if rel (relative to the input) is a directory, following symlinks. */
static int is_dir(const img_scan *s, const char *rel) {
    char abs[2 * PATH_CAP];
    snprintf(abs, sizeof abs, "%s/%s", s->input, rel);
    struct stat st;
    return stat(abs, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The class names: non-hidden directories directly inside rel ("" for the input itself). */
static char **find_classes(img_scan *s, const char *rel, int *nclasses) {
    char abs[2 * PATH_CAP];
    snprintf(abs, sizeof abs, "%s%s%s", s->input, rel[0] ? "/" : "", rel);
    size_t n = 0;
    char **names = list_dir(abs, &n);
    if (!names) EFF_FATAL("cannot read input directory '%s': %s\nHINT: --input must be a readable directory of class folders", abs, strerror(errno));
    char **cls = eff_malloc((n ? n : 1) * sizeof *cls, "the class list");
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        char sub[PATH_CAP];
        const char *name = ENT_NAME(names[i]);
        snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", name);
        if (name[0] == '.' || !is_dir(s, sub)) {
            if (name[0] != '.') note_ignored(s, sub);
            continue;
        }
        if (strpbrk(name, "\n\r"))
            EFF_FATAL("class directory '%s/%s' has a line break in its name; classes.txt lists one class per line\nHINT: rename the directory",
                      s->input, sub);
        cls[k++] = dup_str(name);
    }
    free_list(names, n);
    if (k == 0)
        EFF_FATAL("'%s' holds no class directories; nothing was written\nHINT: the layout is DIR/<class>/<image files>, or DIR/train/<class>/... with DIR/val/<class>/... (or DIR/test/...)",
                  abs);
    *nclasses = k;
    return cls;
}

static int class_index(const img_scan *s, const char *name) {
    for (int i = 0; i < s->nclasses; i++)
        if (!strcmp(s->classes[i], name)) return i;
    return -1;
}

/* DIR/train/<class> and DIR/{val,test}/<class>: the eval classes must be train classes. */
static void scan_split_dirs(img_scan *s) {
    const char *ev = SPLIT_DIRS[s->layout];
    s->classes = find_classes(s, "train", &s->nclasses);
    int ne = 0;
    char **eval = find_classes(s, ev, &ne);
    for (int i = 0; i < ne; i++)
        if (class_index(s, eval[i]) < 0)
            EFF_FATAL("'%s/%s/%s' is a class that '%s/train' does not have; nothing was written\nHINT: the %s/ classes must be train/ classes (labels come from train/); rename or remove it",
                      s->input, ev, eval[i], s->input, ev);
    for (int c = 0; c < s->nclasses; c++) {
        char rel[PATH_CAP];
        snprintf(rel, sizeof rel, "train/%s", s->classes[c]);
        walk_class(s, rel, c, &s->split[0]);
        snprintf(rel, sizeof rel, "%s/%s", ev, s->classes[c]);
        if (is_dir(s, rel)) walk_class(s, rel, c, &s->split[1]);
        else s->test_missing_classes++;
    }
    free_list(eval, (size_t)ne);
}

/* DIR/<class>: every file goes to train or test by img_in_test_split. */
static void scan_class_dirs(img_scan *s) {
    s->classes = find_classes(s, "", &s->nclasses);
    img_item_list all = {0};
    for (int c = 0; c < s->nclasses; c++) walk_class(s, s->classes[c], c, &all);
    for (size_t i = 0; i < all.n; i++) {
        img_item *it = &all.v[i];
        img_item_list *l = &s->split[img_in_test_split(it->rel, s->val_fraction)];
        item_add(l, it->rel, it->label, it->bytes);
        free(it->rel);
    }
    free(all.v);
}

void img_scan_run(img_scan *s) {
    struct stat st;
    if (stat(s->input, &st) != 0)
        EFF_FATAL("cannot read input '%s': %s\nHINT: --input must be a directory of class folders", s->input, strerror(errno));
    if (!S_ISDIR(st.st_mode)) EFF_FATAL("input '%s' is not a directory\nHINT: --input must be a directory of class folders", s->input);
    int val = is_dir(s, "val"), test = is_dir(s, "test");
    s->layout = is_dir(s, "train") && (val || test) ? (val ? 1 : 2) : 0;
    if (s->layout && val && test)
        EFF_FATAL("input '%s' has train/, val/ and test/ folders: which one is the evaluation split is ambiguous; nothing was written\nHINT: move val/ or test/ out of '%s'",
                  s->input, s->input);
    if (s->layout && s->val_fraction_given)
        EFF_FATAL("--val-fraction is for DIR/<class>/ input, but '%s' already has train/ and %s/ folders\nHINT: drop --val-fraction (%s/ is the test split)",
                  s->input, SPLIT_DIRS[s->layout], SPLIT_DIRS[s->layout]);
    if (s->layout) scan_split_dirs(s);
    else scan_class_dirs(s);
}

void img_scan_free(img_scan *s) {
    for (int sp = 0; sp < 2; sp++) {
        for (size_t i = 0; i < s->split[sp].n; i++) free(s->split[sp].v[i].rel);
        free(s->split[sp].v);
    }
    for (size_t i = 0; i < s->bad.n; i++) {
        free(s->bad.v[i].rel);
        free(s->bad.v[i].reason);
    }
    free(s->bad.v);
    for (int c = 0; c < s->nclasses; c++) free(s->classes[c]);
    free(s->classes);
}
