/* cmd_ckpt.c: `effnet ckpt info|stats|diff` -- inspect HDF5 checkpoints
 * (docs/checkpoint-tools.md; the layout is docs/checkpoint-format.md).
 *
 *   effnet ckpt info  FILE [--json]   header, config, training state, tensor table
 *   effnet ckpt stats FILE [--json]   per-tensor statistics, BN gamma per stage
 *   effnet ckpt diff  A B  [--json]   per-tensor relative change, update/weight per layer
 *
 * Tensors are read generically from /model with checked HDF5 calls. The file
 * is first checked against the model its header names (the same rules as
 * eff_checkpoint_load: exactly the state_dict keys, PyTorch shapes, floats for
 * tensors and an integer scalar for num_batches_tracked), so a truncated file,
 * an HDF5 file that is not a checkpoint, a missing or extra tensor, or a wrong
 * shape is an error that names the file (and the tensor), never a crash. */
#define _POSIX_C_SOURCE 200809L
#include "checkpoint.h"
#include "cmd/cli.h"
#include "common.h"
#include "h5io.h"
#include "model.h"

#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { GROUP_STEM = 0, GROUP_HEAD = 8, GROUP_CLASSIFIER = 9, NGROUPS = 10 };
#define SMALL_GAMMA 0.01 /* |gamma| below this counts as "small" in the BN summary */

static const char *const usage_text =
    "usage: effnet ckpt info FILE [--json]\n"
    "       effnet ckpt stats FILE [--json]\n"
    "       effnet ckpt diff A B [--json]\n\n"
    "Inspect checkpoints written by effnet train (or imported from PyTorch):\n"
    "  info   header (schema, model, classes, resolution), provenance, config text, training state\n"
    "         (epoch, step, accuracy), optimizer, and the tensors with shapes and dtypes\n"
    "  stats  per tensor: mean, std (population, ddof 0), min, max, L2 norm, fraction of zeros;\n"
    "         BN gamma (BN weight) summary per stage (stem, stage 1..7, head)\n"
    "  diff   per tensor: ||B-A||/||A||; per layer: update-to-weight ratio ||W_B-W_A||/||W_A||\n"
    "         (and per optimizer step); A and B must hold the same model and classes\n\n"
    "options:\n"
    "  --json         print one JSON object instead of tables\n";

/* One state_dict key of the model, in PyTorch's state_dict order. */
typedef struct Key {
    char name[128];
    char layer[128]; /* the module: the name without its last component */
    int ndim;
    int64_t shape[4];
    size_t numel;
    int is_int;   /* num_batches_tracked: an integer scalar */
    int is_param; /* a parameter (conv/linear weight, BN weight/bias), not a buffer */
    int bn_gamma; /* a BN's weight */
    int group;    /* GROUP_STEM, 1..7 (stage), GROUP_HEAD, GROUP_CLASSIFIER */
    char dtype[16]; /* as stored: float32, float64, int64, ... */
} Key;

/* A root (or group) attribute, read generically. */
typedef struct Attr {
    char *name;
    enum { ATTR_STR, ATTR_INT, ATTR_UINT, ATTR_FLOAT, ATTR_OTHER } kind;
    char *s;
    long long i;
    unsigned long long u;
    double d;
} Attr;

typedef struct AttrList {
    Attr *a;
    int n, cap;
} AttrList;

typedef struct Ckpt {
    const char *path;
    hid_t f;
    EffH5Quiet quiet;
    char model[64];
    int classes, resolution;
    long long bytes;
    EffModel m; /* tables only (eff_model_build_tables): a key/shape/stage map, no weights */
    Key *keys;
    int nkeys;
} Ckpt;

/* ---- HDF5 helpers (fatal, naming the file) ---------------------------------- */

EFF_NORETURN EFF_PRINTF(2, 3) static void h5_fatal(const Ckpt *c, const char *fmt, ...) {
    char detail[512], what[1024];
    eff_h5_error_detail(detail, sizeof detail);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    EFF_FATAL("checkpoint '%s': %s: %s\nHINT: the file is damaged or not a complete effnet checkpoint "
              "(docs/checkpoint-format.md); use another copy (best.h5 or an earlier checkpoint)", c->path, what, detail);
}

static void str_copy(char *dst, size_t cap, const char *src) { snprintf(dst, cap, "%s", src); }

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *p = eff_malloc(n + 1, "string");
    memcpy(p, s, n + 1);
    return p;
}

static void dtype_name(hid_t t, char *buf, size_t cap) {
    H5T_class_t cl = H5Tget_class(t);
    size_t sz = H5Tget_size(t);
    if (cl == H5T_FLOAT) snprintf(buf, cap, "float%zu", sz * 8);
    else if (cl == H5T_INTEGER) snprintf(buf, cap, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", sz * 8);
    else if (cl == H5T_STRING) snprintf(buf, cap, "string");
    else snprintf(buf, cap, "class%d", (int)cl);
}

/* Read attribute `name` of object loc into *out. */
static void read_attr(const Ckpt *c, hid_t loc, const char *obj, const char *name, Attr *out) {
    memset(out, 0, sizeof *out);
    out->name = dup_str(name);
    out->kind = ATTR_OTHER;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) h5_fatal(c, "cannot open attribute '%s' of '%s'", name, obj);
    hid_t sp = H5Aget_space(a), t = H5Aget_type(a);
    if (sp < 0 || t < 0) h5_fatal(c, "cannot read the type of attribute '%s' of '%s'", name, obj);
    hssize_t npts = H5Sget_simple_extent_npoints(sp);
    H5T_class_t cl = H5Tget_class(t);
    if (npts == 1 && cl == H5T_STRING) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5T_cset_t cs = H5Tget_cset(t);
        htri_t vl = H5Tis_variable_str(t);
        if (mt < 0 || cs == H5T_CSET_ERROR || vl < 0 || H5Tset_cset(mt, cs) < 0)
            h5_fatal(c, "cannot set up a string type for attribute '%s' of '%s'", name, obj);
        if (vl > 0) {
            char *s = NULL;
            if (H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Aread(a, mt, &s) < 0)
                h5_fatal(c, "cannot read attribute '%s' of '%s'", name, obj);
            out->s = dup_str(s ? s : "");
            if (s && H5free_memory(s) < 0) h5_fatal(c, "cannot free attribute '%s' of '%s'", name, obj);
        } else {
            size_t n = H5Tget_size(t);
            out->s = eff_calloc(n + 1, 1, "string attribute");
            if (n == 0 || H5Tset_size(mt, n + 1) < 0 || H5Aread(a, mt, out->s) < 0)
                h5_fatal(c, "cannot read attribute '%s' of '%s'", name, obj);
        }
        out->kind = ATTR_STR;
        if (H5Tclose(mt) < 0) h5_fatal(c, "closing a string type");
    } else if (npts == 1 && cl == H5T_INTEGER) {
        int is_unsigned = H5Tget_sign(t) == H5T_SGN_NONE;
        if (H5Aread(a, is_unsigned ? H5T_NATIVE_ULLONG : H5T_NATIVE_LLONG, is_unsigned ? (void *)&out->u : (void *)&out->i) < 0)
            h5_fatal(c, "cannot read attribute '%s' of '%s'", name, obj);
        out->kind = is_unsigned ? ATTR_UINT : ATTR_INT;
    } else if (npts == 1 && cl == H5T_FLOAT) {
        if (H5Aread(a, H5T_NATIVE_DOUBLE, &out->d) < 0) h5_fatal(c, "cannot read attribute '%s' of '%s'", name, obj);
        out->kind = ATTR_FLOAT;
    } else {
        char dt[32];
        dtype_name(t, dt, sizeof dt);
        char buf[96];
        snprintf(buf, sizeof buf, "<%s, %lld values>", dt, (long long)npts);
        out->s = dup_str(buf);
    }
    if (H5Tclose(t) < 0 || H5Sclose(sp) < 0 || H5Aclose(a) < 0) h5_fatal(c, "closing attribute '%s' of '%s'", name, obj);
}

typedef struct AttrWalk {
    const Ckpt *c;
    const char *obj;
    AttrList *list;
} AttrWalk;

static herr_t attr_cb(hid_t loc, const char *name, const H5A_info_t *info, void *data) {
    (void)info;
    AttrWalk *w = data;
    AttrList *l = w->list;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        Attr *na = eff_calloc((size_t)cap, sizeof *na, "attribute list");
        if (l->n) memcpy(na, l->a, (size_t)l->n * sizeof *na);
        eff_free(l->a);
        l->a = na;
        l->cap = cap;
    }
    read_attr(w->c, loc, w->obj, name, &l->a[l->n++]);
    return 0;
}

/* Every attribute of object `obj` ("/", "/train", "/optimizer"), by name. An
 * absent group gives an empty list (and returns 0). */
static int read_attrs(const Ckpt *c, const char *obj, AttrList *out) {
    memset(out, 0, sizeof *out);
    if (strcmp(obj, "/") != 0 && !eff_h5_exists(c->f, obj)) return 0;
    hid_t o = H5Oopen(c->f, obj, H5P_DEFAULT);
    if (o < 0) h5_fatal(c, "cannot open '%s'", obj);
    AttrWalk w = {c, obj, out};
    hsize_t idx = 0;
    if (H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_INC, &idx, attr_cb, &w) < 0) h5_fatal(c, "cannot list the attributes of '%s'", obj);
    if (H5Oclose(o) < 0) h5_fatal(c, "closing '%s'", obj);
    return 1;
}

static void free_attrs(AttrList *l) {
    for (int i = 0; i < l->n; i++) {
        eff_free(l->a[i].name);
        eff_free(l->a[i].s);
    }
    eff_free(l->a);
    memset(l, 0, sizeof *l);
}

static const Attr *find_attr(const AttrList *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->a[i].name, name)) return &l->a[i];
    return NULL;
}

static double attr_num(const Attr *a, double dflt) {
    if (!a) return dflt;
    switch (a->kind) {
    case ATTR_INT: return (double)a->i;
    case ATTR_UINT: return (double)a->u;
    case ATTR_FLOAT: return a->d;
    default: return dflt;
    }
}

/* ---- JSON output -------------------------------------------------------------- */

static void json_str(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        default:
            if (*p < 0x20) printf("\\u%04x", *p);
            else putchar(*p);
        }
    }
    putchar('"');
}

/* A number, or null for NaN/Inf (JSON has neither). */
static void json_num(double x) {
    if (isfinite(x)) printf("%.10g", x);
    else fputs("null", stdout);
}

static void json_attr_value(const Attr *a) {
    switch (a->kind) {
    case ATTR_INT: printf("%lld", a->i); break;
    case ATTR_UINT: printf("%llu", a->u); break;
    case ATTR_FLOAT: json_num(a->d); break;
    default: json_str(a->s ? a->s : ""); break;
    }
}

/* {"name": value, ...} of every attribute except `skip` (NULL: none). */
static void json_attrs(const AttrList *l, const char *skip) {
    putchar('{');
    int first = 1;
    for (int i = 0; i < l->n; i++) {
        if (skip && !strcmp(l->a[i].name, skip)) continue;
        if (!first) fputs(", ", stdout);
        first = 0;
        json_str(l->a[i].name);
        fputs(": ", stdout);
        json_attr_value(&l->a[i]);
    }
    putchar('}');
}

static void json_shape(const Key *k) {
    putchar('[');
    for (int d = 0; d < k->ndim; d++) printf("%s%lld", d ? ", " : "", (long long)k->shape[d]);
    putchar(']');
}


/* ---- opening and validating a checkpoint -------------------------------------- */

static const char *group_name(int g, char *buf, size_t cap) {
    if (g == GROUP_STEM) return "stem";
    if (g == GROUP_HEAD) return "head";
    if (g == GROUP_CLASSIFIER) return "classifier";
    snprintf(buf, cap, "stage %d", g);
    return buf;
}

static int key_group(const EffModel *m, const char *name) {
    if (!strncmp(name, "stem.", 5)) return GROUP_STEM;
    if (!strncmp(name, "head.", 5)) return GROUP_HEAD;
    if (!strncmp(name, "classifier.", 11)) return GROUP_CLASSIFIER;
    int bi = -1;
    if (sscanf(name, "blocks.block_%d.", &bi) == 1 && bi >= 0 && bi < m->nblocks) return 1 + m->blk[bi].stage;
    EFF_FATAL("internal: state_dict key '%s' belongs to no stage", name);
}

static void add_key(Ckpt *c, const char *name, int ndim, const int64_t *shape, int is_int, int is_param, int bn_gamma) {
    Key *k = &c->keys[c->nkeys++];
    memset(k, 0, sizeof *k);
    str_copy(k->name, sizeof k->name, name);
    str_copy(k->layer, sizeof k->layer, name);
    char *dot = strrchr(k->layer, '.');
    if (dot) *dot = '\0';
    k->ndim = ndim;
    k->numel = 1;
    for (int d = 0; d < ndim; d++) {
        k->shape[d] = shape[d];
        k->numel *= (size_t)shape[d];
    }
    k->is_int = is_int;
    k->is_param = is_param;
    k->bn_gamma = bn_gamma;
    k->group = key_group(&c->m, name);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* The model's state_dict keys in PyTorch's order: each parameter; after a BN's
 * bias, its running_mean, running_var and num_batches_tracked. */
static void build_keys(Ckpt *c) {
    const EffModel *m = &c->m;
    c->keys = eff_calloc((size_t)(m->ptab.count + 2 * m->btab.count), sizeof *c->keys, "checkpoint key table");
    for (int i = 0; i < m->ptab.count; i++) {
        const EffView *v = &m->ptab.views[i];
        int is_bn = v->kind == EFF_KIND_BN;
        add_key(c, v->name, v->ndim, v->shape, 0, 1, is_bn && ends_with(v->name, ".weight"));
        if (is_bn && ends_with(v->name, ".bias")) {
            char prefix[96], name[128];
            snprintf(prefix, sizeof prefix, "%.*s", (int)(strlen(v->name) - 5), v->name);
            const char *bufs[] = {"running_mean", "running_var"};
            for (int b = 0; b < 2; b++) {
                snprintf(name, sizeof name, "%s.%s", prefix, bufs[b]);
                const EffView *bv = eff_table_find(&m->btab, name);
                EFF_CHECK(bv, "internal: BN buffer '%s' missing from the model's table", name);
                add_key(c, bv->name, bv->ndim, bv->shape, 0, 0, 0);
            }
            snprintf(name, sizeof name, "%s.num_batches_tracked", prefix);
            add_key(c, name, 0, NULL, 1, 0, 0);
        }
    }
}

static int find_key(const Ckpt *c, const char *name) {
    for (int i = 0; i < c->nkeys; i++)
        if (!strcmp(c->keys[i].name, name)) return i;
    return -1;
}

/* /model must hold exactly the keys, each with PyTorch's shape and the right
 * type class (like eff_checkpoint_load); records each tensor's stored dtype. */
static void validate(Ckpt *c) {
    if (!eff_h5_exists(c->f, "/model"))
        EFF_FATAL("checkpoint '%s' has no group /model (no tensors)\nHINT: the file is not a complete effnet checkpoint "
                  "(layout: docs/checkpoint-format.md)", c->path);
    H5G_info_t gi;
    if (H5Gget_info_by_name(c->f, "/model", &gi, H5P_DEFAULT) < 0) h5_fatal(c, "cannot list group /model");
    char *seen = eff_calloc((size_t)c->nkeys + 1, 1, "key flags");
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        ssize_t len = H5Lget_name_by_idx(c->f, "/model", H5_INDEX_NAME, H5_ITER_INC, i, NULL, 0, H5P_DEFAULT);
        if (len < 0) h5_fatal(c, "cannot read entry %llu of /model", (unsigned long long)i);
        char *name = eff_malloc((size_t)len + 1, "tensor name");
        if (H5Lget_name_by_idx(c->f, "/model", H5_INDEX_NAME, H5_ITER_INC, i, name, (size_t)len + 1, H5P_DEFAULT) != len)
            h5_fatal(c, "cannot read entry %llu of /model", (unsigned long long)i);
        int k = find_key(c, name);
        if (k < 0)
            EFF_FATAL("checkpoint '%s' holds an unexpected tensor '/model/%s': not a state_dict key of %s with %d "
                      "classes\nHINT: the file was written for another model or version", c->path, name, c->model,
                      c->classes);
        seen[k] = 1;
        eff_free(name);
    }
    int present = 0;
    for (int k = 0; k < c->nkeys; k++) present += seen[k];
    for (int k = 0; k < c->nkeys; k++)
        if (!seen[k])
            EFF_FATAL("checkpoint '%s' lacks tensor '/model/%s' (%d of the %d state_dict keys of %s are present)\n"
                      "HINT: the file is incomplete or was edited; use another checkpoint (best.h5 or an earlier one)",
                      c->path, c->keys[k].name, present, c->nkeys, c->model);
    eff_free(seen);
    char path[192];
    for (int k = 0; k < c->nkeys; k++) {
        Key *key = &c->keys[k];
        snprintf(path, sizeof path, "/model/%s", key->name);
        hid_t d = H5Dopen2(c->f, path, H5P_DEFAULT);
        if (d < 0) h5_fatal(c, "'%s' is not a readable dataset", path);
        hid_t sp = H5Dget_space(d), t = H5Dget_type(d);
        if (sp < 0 || t < 0) h5_fatal(c, "cannot read the dataspace or type of '%s'", path);
        int nd = H5Sget_simple_extent_ndims(sp);
        if (nd < 0) h5_fatal(c, "cannot read the rank of '%s'", path);
        hsize_t hd[H5S_MAX_RANK];
        if (H5Sget_simple_extent_dims(sp, hd, NULL) != nd) h5_fatal(c, "cannot read the dims of '%s'", path);
        int same = nd == key->ndim;
        for (int i = 0; same && i < nd; i++) same = hd[i] == (hsize_t)key->shape[i];
        if (!same) {
            int64_t got[H5S_MAX_RANK];
            for (int i = 0; i < nd; i++) got[i] = (int64_t)hd[i];
            char a[200], b[200];
            eff_h5_fmt_dims(a, sizeof a, nd, got);
            eff_h5_fmt_dims(b, sizeof b, key->ndim, key->shape);
            EFF_FATAL("tensor '%s' in checkpoint '%s' has shape %s, but %s with %d classes has %s\nHINT: the file was "
                      "written for another model or edited; use a checkpoint written by effnet train",
                      path, c->path, a, c->model, c->classes, b);
        }
        H5T_class_t cl = H5Tget_class(t);
        if (cl != (key->is_int ? H5T_INTEGER : H5T_FLOAT))
            EFF_FATAL("tensor '%s' in checkpoint '%s' is of HDF5 type class %d, expected %s\nHINT: weights and BN "
                      "statistics are floating point, num_batches_tracked an integer", path, c->path, (int)cl,
                      key->is_int ? "integer" : "floating point");
        dtype_name(t, key->dtype, sizeof key->dtype);
        if (H5Tclose(t) < 0 || H5Sclose(sp) < 0 || H5Dclose(d) < 0) h5_fatal(c, "closing '%s'", path);
    }
}

static void ckpt_open(Ckpt *c, const char *path) {
    memset(c, 0, sizeof *c);
    c->path = path;
    c->f = -1;
    char err[1024];
    /* peek diagnoses a missing file, a directory, a non-HDF5 or truncated file,
     * a wrong format or schema version, and a bad header, each naming the file. */
    if (!eff_checkpoint_peek(path, c->model, sizeof c->model, &c->classes, &c->resolution, err, sizeof err))
        EFF_FATAL("%s", err);
    EffModelSpec spec;
    EFF_CHECK(eff_model_spec(c->model, &spec), "checkpoint '%s' names unknown model '%s'\nHINT: effnet knows "
              "efficientnet-b0 .. efficientnet-b7", path, c->model);
    struct stat sb;
    EFF_CHECK(stat(path, &sb) == 0, "cannot stat checkpoint '%s'", path);
    c->bytes = (long long)sb.st_size;
    eff_model_build_tables(&c->m, &spec, c->classes);
    build_keys(c);
    eff_h5_quiet_begin(&c->quiet);
    c->f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (c->f < 0) h5_fatal(c, "cannot open the file");
    validate(c);
}

static void ckpt_close(Ckpt *c) {
    if (c->f >= 0 && H5Fclose(c->f) < 0) h5_fatal(c, "closing the file");
    eff_h5_quiet_end(&c->quiet);
    eff_model_destroy(&c->m);
    eff_free(c->keys);
    memset(c, 0, sizeof *c);
}

/* Key k's values as doubles (malloc'd; the caller frees). */
static double *read_tensor(const Ckpt *c, const Key *k) {
    char path[192];
    snprintf(path, sizeof path, "/model/%s", k->name);
    double *x = eff_malloc(k->numel * sizeof(double), k->name);
    hid_t d = H5Dopen2(c->f, path, H5P_DEFAULT);
    if (d < 0) h5_fatal(c, "cannot open tensor '%s'", path);
    if (H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) < 0) {
        char detail[512];
        eff_h5_error_detail(detail, sizeof detail);
        EFF_FATAL("reading tensor '%s' from checkpoint '%s' failed: %s\nHINT: the file is damaged (a checksum error "
                  "means flipped bits); use another copy (best.h5 or an earlier checkpoint)", path, c->path, detail);
    }
    if (H5Dclose(d) < 0) h5_fatal(c, "closing tensor '%s'", path);
    return x;
}

/* ---- statistics --------------------------------------------------------------- */

typedef struct Stats {
    size_t n;
    double mean, m2, min, max, sumsq, zeros; /* m2: sum of squared deviations from the mean */
} Stats;

static Stats stats_of(const double *x, size_t n) {
    Stats s = {n, 0, 0, INFINITY, -INFINITY, 0, 0};
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += x[i];
        s.sumsq += x[i] * x[i];
        if (x[i] < s.min) s.min = x[i];
        if (x[i] > s.max) s.max = x[i];
        s.zeros += x[i] == 0.0;
    }
    s.mean = n ? sum / (double)n : 0;
    for (size_t i = 0; i < n; i++) s.m2 += (x[i] - s.mean) * (x[i] - s.mean);
    return s;
}

/* Chan et al.'s pairwise combination of two summaries. */
static void stats_merge(Stats *a, const Stats *b) {
    if (!b->n) return;
    if (!a->n) {
        *a = *b;
        return;
    }
    double n = (double)(a->n + b->n), delta = b->mean - a->mean;
    a->m2 += b->m2 + delta * delta * (double)a->n * (double)b->n / n;
    a->mean += delta * (double)b->n / n;
    a->n += b->n;
    a->sumsq += b->sumsq;
    a->zeros += b->zeros;
    if (b->min < a->min) a->min = b->min;
    if (b->max > a->max) a->max = b->max;
}

static double stats_std(const Stats *s) { return s->n ? sqrt(s->m2 / (double)s->n) : 0; }

/* ---- info --------------------------------------------------------------------- */

static const char *const header_attrs[] = {"format", "schema_version", "model", "classes", "resolution",
                                           "created", "config", "hdf5_version"};

static int is_header_attr(const char *name) {
    for (size_t i = 0; i < sizeof header_attrs / sizeof *header_attrs; i++)
        if (!strcmp(name, header_attrs[i])) return 1;
    return 0;
}

static void print_attr_text(const Attr *a) {
    switch (a->kind) {
    case ATTR_INT: printf("%lld", a->i); break;
    case ATTR_UINT: printf("%llu", a->u); break;
    case ATTR_FLOAT: printf("%.10g", a->d); break;
    default: printf("%s", a->s ? a->s : ""); break;
    }
}

static long long count_links(const Ckpt *c, const char *grp) {
    if (!eff_h5_exists(c->f, grp)) return 0;
    H5G_info_t gi;
    if (H5Gget_info_by_name(c->f, grp, &gi, H5P_DEFAULT) < 0) h5_fatal(c, "cannot list group %s", grp);
    return (long long)gi.nlinks;
}

static int64_t read_i64_scalar(const Ckpt *c, const Key *k) {
    double *v = read_tensor(c, k);
    int64_t x = (int64_t)v[0];
    eff_free(v);
    return x;
}

static int do_info(const char *path, int json) {
    Ckpt c;
    ckpt_open(&c, path);
    AttrList root, train, opt;
    read_attrs(&c, "/", &root);
    int has_train = read_attrs(&c, "/train", &train);
    int has_opt = read_attrs(&c, "/optimizer", &opt);
    long long n_exp_avg = count_links(&c, "/optimizer/exp_avg"), n_exp_avg_sq = count_links(&c, "/optimizer/exp_avg_sq");
    size_t params = 0, buffers = 0;
    int nparam = 0, nbuf = 0, nnbt = 0;
    int64_t nbt_min = INT64_MAX, nbt_max = INT64_MIN;
    for (int k = 0; k < c.nkeys; k++) {
        const Key *key = &c.keys[k];
        if (key->is_int) {
            int64_t v = read_i64_scalar(&c, key);
            nnbt++;
            if (v < nbt_min) nbt_min = v;
            if (v > nbt_max) nbt_max = v;
        } else if (key->is_param) {
            params += key->numel;
            nparam++;
        } else {
            buffers += key->numel;
            nbuf++;
        }
    }
    const Attr *cfg = find_attr(&root, "config");
    const char *config = cfg && cfg->s ? cfg->s : "";
    const Attr *schema = find_attr(&root, "schema_version");
    if (json) {
        printf("{\"file\": ");
        json_str(path);
        printf(", \"bytes\": %lld, \"format\": \"%s\", \"schema_version\": %lld, \"model\": ", c.bytes, EFF_CKPT_FORMAT,
               (long long)attr_num(schema, -1));
        json_str(c.model);
        printf(", \"classes\": %d, \"resolution\": %d, \"attributes\": ", c.classes, c.resolution);
        json_attrs(&root, "config");
        printf(", \"config\": ");
        json_str(config);
        printf(", \"train\": ");
        if (has_train) json_attrs(&train, NULL);
        else fputs("null", stdout);
        printf(", \"optimizer\": ");
        if (has_opt) {
            json_attrs(&opt, NULL);
            printf(", \"optimizer_tensors\": {\"exp_avg\": %lld, \"exp_avg_sq\": %lld}", n_exp_avg, n_exp_avg_sq);
        } else {
            fputs("null", stdout);
        }
        printf(", \"params\": %zu, \"param_tensors\": %d, \"buffers\": %zu, \"buffer_tensors\": %d, "
               "\"num_batches_tracked\": {\"count\": %d, \"min\": %lld, \"max\": %lld}, \"tensors\": [",
               params, nparam, buffers, nbuf, nnbt, (long long)nbt_min, (long long)nbt_max);
        for (int k = 0; k < c.nkeys; k++) {
            const Key *key = &c.keys[k];
            printf("%s{\"name\": ", k ? ", " : "");
            json_str(key->name);
            printf(", \"shape\": ");
            json_shape(key);
            printf(", \"dtype\": \"%s\", \"numel\": %zu, \"kind\": \"%s\"}", key->dtype, key->numel,
                   key->is_param ? "parameter" : "buffer");
        }
        printf("]}\n");
    } else {
        const Attr *created = find_attr(&root, "created"), *h5v = find_attr(&root, "hdf5_version");
        printf("checkpoint   %s (%.1f MB)\n", path, (double)c.bytes / 1e6);
        printf("format       %s, schema version %lld\n", EFF_CKPT_FORMAT, (long long)attr_num(schema, -1));
        printf("model        %s, %d classes, resolution %d\n", c.model, c.classes, c.resolution);
        printf("created      %s (HDF5 %s)\n", created && created->s ? created->s : "(unknown)",
               h5v && h5v->s ? h5v->s : "(unknown)");
        if (has_train) {
            printf("training     epoch %.0f, step in epoch %.0f, global step %.0f, world size %.0f, seed %.0f, lr %g\n",
                   attr_num(find_attr(&train, "epoch"), NAN), attr_num(find_attr(&train, "step_in_epoch"), NAN),
                   attr_num(find_attr(&train, "global_step"), NAN), attr_num(find_attr(&train, "world_size"), NAN),
                   attr_num(find_attr(&train, "seed"), NAN), attr_num(find_attr(&train, "lr"), NAN));
            double last = attr_num(find_attr(&train, "last_acc"), -1), best = attr_num(find_attr(&train, "best_acc"), -1);
            printf("accuracy     ");
            if (last >= 0) printf("last %.2f%% (test loss %.4f)", last, attr_num(find_attr(&train, "last_loss"), NAN));
            else printf("last: none yet");
            if (best >= 0) printf(", best %.2f%% at epoch %.0f\n", best, attr_num(find_attr(&train, "best_epoch"), NAN));
            else printf(", best: none yet\n");
        } else {
            printf("training     (no /train: not resumable, e.g. imported from PyTorch)\n");
        }
        if (has_opt) {
            const Attr *on = find_attr(&opt, "name");
            printf("optimizer    %s, step %.0f (exp_avg %lld, exp_avg_sq %lld tensors)\n", on && on->s ? on->s : "?",
                   attr_num(find_attr(&opt, "step"), NAN), n_exp_avg, n_exp_avg_sq);
        } else {
            printf("optimizer    (none)\n");
        }
        int any = 0;
        for (int i = 0; i < root.n; i++) {
            if (is_header_attr(root.a[i].name)) continue;
            printf("%-12s %s = ", any ? "" : "provenance", root.a[i].name);
            print_attr_text(&root.a[i]);
            putchar('\n');
            any = 1;
        }
        if (!any) printf("provenance   (none)\n");
        printf("parameters   %zu in %d tensors; BN buffers %zu in %d tensors; num_batches_tracked ", params, nparam,
               buffers, nbuf);
        if (nbt_min == nbt_max) printf("%lld (all %d BNs)\n", (long long)nbt_min, nnbt);
        else printf("%lld .. %lld (%d BNs)\n", (long long)nbt_min, (long long)nbt_max, nnbt);
        printf("\nconfig:%s\n", config[0] ? "" : " (none stored)");
        const char *p = config;
        while (*p) {
            const char *nl = strchr(p, '\n');
            int len = nl ? (int)(nl - p) : (int)strlen(p);
            printf("  %.*s\n", len, p);
            p += len + (nl ? 1 : 0);
        }
        printf("\ntensors (/model, state_dict order):\n");
        printf("  %-46s %-20s %-8s %10s\n", "name", "shape", "dtype", "numel");
        for (int k = 0; k < c.nkeys; k++) {
            const Key *key = &c.keys[k];
            char shp[64];
            eff_h5_fmt_dims(shp, sizeof shp, key->ndim, key->shape);
            printf("  %-46s %-20s %-8s %10zu\n", key->name, shp, key->dtype, key->numel);
        }
    }
    free_attrs(&root);
    free_attrs(&train);
    free_attrs(&opt);
    ckpt_close(&c);
    return 0;
}

/* ---- stats -------------------------------------------------------------------- */

static int do_stats(const char *path, int json) {
    Ckpt c;
    ckpt_open(&c, path);
    /* Read and reduce every tensor first, print afterwards: a read error (a
     * checksum failure, say) then never leaves half a table or half a JSON
     * object on stdout. */
    Stats *st = eff_calloc((size_t)c.nkeys, sizeof *st, "tensor statistics");
    Stats gamma[NGROUPS];
    int gamma_bns[NGROUPS] = {0};
    double gamma_small[NGROUPS] = {0};
    memset(gamma, 0, sizeof gamma);
    int64_t nbt_min = INT64_MAX, nbt_max = INT64_MIN;
    for (int k = 0; k < c.nkeys; k++) {
        const Key *key = &c.keys[k];
        double *x = read_tensor(&c, key);
        if (key->is_int) {
            int64_t v = (int64_t)x[0];
            if (v < nbt_min) nbt_min = v;
            if (v > nbt_max) nbt_max = v;
        } else {
            st[k] = stats_of(x, key->numel);
            if (key->bn_gamma) {
                stats_merge(&gamma[key->group], &st[k]);
                gamma_bns[key->group]++;
                for (size_t i = 0; i < key->numel; i++) gamma_small[key->group] += fabs(x[i]) < SMALL_GAMMA;
            }
        }
        eff_free(x);
    }
    if (json) {
        printf("{\"file\": ");
        json_str(path);
        printf(", \"model\": ");
        json_str(c.model);
        printf(", \"classes\": %d, \"std\": \"population (ddof 0)\", \"tensors\": [", c.classes);
    } else {
        printf("%s: %s, %d classes (std: population, ddof 0)\n\n", path, c.model, c.classes);
        printf("%-46s %9s %12s %12s %12s %12s %12s %7s\n", "tensor", "numel", "mean", "std", "min", "max", "L2 norm",
               "zeros");
    }
    int first = 1;
    for (int k = 0; k < c.nkeys; k++) {
        const Key *key = &c.keys[k];
        if (key->is_int) continue;
        const Stats *s = &st[k];
        const double l2 = sqrt(s->sumsq), zf = s->zeros / (double)s->n;
        if (json) {
            printf("%s{\"name\": ", first ? "" : ", ");
            json_str(key->name);
            printf(", \"kind\": \"%s\", \"numel\": %zu, \"mean\": ", key->is_param ? "parameter" : "buffer", key->numel);
            json_num(s->mean);
            printf(", \"std\": ");
            json_num(stats_std(s));
            printf(", \"min\": ");
            json_num(s->min);
            printf(", \"max\": ");
            json_num(s->max);
            printf(", \"l2\": ");
            json_num(l2);
            printf(", \"zeros\": ");
            json_num(zf);
            printf("}");
        } else {
            printf("%-46s %9zu %12.5g %12.5g %12.5g %12.5g %12.5g %7.4f\n", key->name, key->numel, s->mean,
                   stats_std(s), s->min, s->max, l2, zf);
        }
        first = 0;
    }
    eff_free(st);
    char gb[32];
    if (json) {
        printf("], \"num_batches_tracked\": {\"min\": %lld, \"max\": %lld}, \"small_gamma_threshold\": %g, \"bn_gamma\": [",
               (long long)nbt_min, (long long)nbt_max, SMALL_GAMMA);
        first = 1;
        for (int g = 0; g < NGROUPS; g++) {
            if (!gamma_bns[g]) continue;
            printf("%s{\"stage\": \"%s\", \"bns\": %d, \"channels\": %zu, \"mean\": ", first ? "" : ", ",
                   group_name(g, gb, sizeof gb), gamma_bns[g], gamma[g].n);
            json_num(gamma[g].mean);
            printf(", \"std\": ");
            json_num(stats_std(&gamma[g]));
            printf(", \"min\": ");
            json_num(gamma[g].min);
            printf(", \"max\": ");
            json_num(gamma[g].max);
            printf(", \"small\": ");
            json_num(gamma_small[g] / (double)gamma[g].n);
            printf("}");
            first = 0;
        }
        printf("]}\n");
    } else {
        if (nbt_min == nbt_max) printf("\nnum_batches_tracked: %lld in every BN\n", (long long)nbt_min);
        else printf("\nnum_batches_tracked: %lld .. %lld\n", (long long)nbt_min, (long long)nbt_max);
        printf("\nBN gamma (BatchNorm weight) per stage; small = |gamma| < %g:\n", SMALL_GAMMA);
        printf("%-10s %4s %9s %12s %12s %12s %12s %7s\n", "stage", "BNs", "channels", "mean", "std", "min", "max", "small");
        for (int g = 0; g < NGROUPS; g++) {
            if (!gamma_bns[g]) continue;
            printf("%-10s %4d %9zu %12.5g %12.5g %12.5g %12.5g %7.4f\n", group_name(g, gb, sizeof gb), gamma_bns[g],
                   gamma[g].n, gamma[g].mean, stats_std(&gamma[g]), gamma[g].min, gamma[g].max,
                   gamma_small[g] / (double)gamma[g].n);
        }
    }
    ckpt_close(&c);
    return 0;
}

/* ---- diff --------------------------------------------------------------------- */

/* global_step of /train, or -1 if the file has none. */
static long long global_step(const Ckpt *c) {
    AttrList t;
    long long gs = -1;
    if (read_attrs(c, "/train", &t)) gs = (long long)attr_num(find_attr(&t, "global_step"), -1);
    free_attrs(&t);
    return gs;
}

static double ratio(double num, double den) {
    if (den > 0) return num / den;
    return num == 0 ? 0 : INFINITY;
}

typedef struct TensorDiff {
    double a2, b2, d2, dmax; /* sums of squares of A, B, B-A; max |B-A| */
} TensorDiff;

typedef struct Layer {
    const char *name;
    size_t numel;
    double a2, d2; /* sum of squares of A's weights and of B-A */
} Layer;

static int do_diff(const char *pa, const char *pb, int json) {
    char ma[64], mb[64], err[1024];
    int ca, cb, ra, rb;
    if (!eff_checkpoint_peek(pa, ma, sizeof ma, &ca, &ra, err, sizeof err)) EFF_FATAL("%s", err);
    if (!eff_checkpoint_peek(pb, mb, sizeof mb, &cb, &rb, err, sizeof err)) EFF_FATAL("%s", err);
    EFF_CHECK(!strcmp(ma, mb) && ca == cb, "cannot diff checkpoints of different models: '%s' holds %s with %d classes, "
              "'%s' holds %s with %d classes\nHINT: diff compares two checkpoints of the same model and number of "
              "classes (e.g. two checkpoints of one run)", pa, ma, ca, pb, mb, cb);
    Ckpt A, B;
    ckpt_open(&A, pa);
    ckpt_open(&B, pb);
    /* Both files passed validation against the same model, so their keys and
     * shapes agree; check anyway, naming both files. */
    EFF_CHECK(A.nkeys == B.nkeys, "'%s' and '%s' have different tensor counts (%d, %d)", pa, pb, A.nkeys, B.nkeys);
    for (int k = 0; k < A.nkeys; k++) {
        const Key *x = &A.keys[k], *y = &B.keys[k];
        int same = !strcmp(x->name, y->name) && x->ndim == y->ndim;
        for (int d = 0; same && d < x->ndim; d++) same = x->shape[d] == y->shape[d];
        EFF_CHECK(same, "tensor '%s' has a different shape in '%s' and '%s'\nHINT: diff compares checkpoints of the same "
                  "model", x->name, pa, pb);
    }
    const long long sa = global_step(&A), sb = global_step(&B);
    const long long dsteps = sa >= 0 && sb >= 0 ? llabs(sb - sa) : -1;
    Layer *layers = eff_calloc((size_t)A.nkeys, sizeof *layers, "layer table");
    int nl = 0;
    double all_a2 = 0, all_d2 = 0;
    size_t all_n = 0;
    int64_t nbt_a = -1, nbt_b = -1;
    /* Read every tensor pair first, print afterwards (no partial output on a read error). */
    TensorDiff *td = eff_calloc((size_t)A.nkeys, sizeof *td, "tensor differences");
    for (int k = 0; k < A.nkeys; k++) {
        const Key *key = &A.keys[k];
        double *x = read_tensor(&A, key), *y = read_tensor(&B, key);
        if (key->is_int) {
            if (nbt_a < 0) {
                nbt_a = (int64_t)x[0];
                nbt_b = (int64_t)y[0];
            }
        } else {
            TensorDiff *t = &td[k];
            for (size_t i = 0; i < key->numel; i++) {
                double d = y[i] - x[i];
                t->a2 += x[i] * x[i];
                t->b2 += y[i] * y[i];
                t->d2 += d * d;
                if (fabs(d) > t->dmax) t->dmax = fabs(d);
            }
            if (key->is_param) {
                all_a2 += t->a2;
                all_d2 += t->d2;
                all_n += key->numel;
                int l = nl - 1;
                if (l < 0 || strcmp(layers[l].name, key->layer) != 0) {
                    l = nl++;
                    layers[l].name = key->layer;
                }
                layers[l].numel += key->numel;
                layers[l].a2 += t->a2;
                layers[l].d2 += t->d2;
            }
        }
        eff_free(x);
        eff_free(y);
    }
    if (json) {
        printf("{\"a\": ");
        json_str(pa);
        printf(", \"b\": ");
        json_str(pb);
        printf(", \"model\": ");
        json_str(A.model);
        printf(", \"classes\": %d, \"global_step_a\": ", A.classes);
        if (sa >= 0) printf("%lld", sa); else fputs("null", stdout);
        printf(", \"global_step_b\": ");
        if (sb >= 0) printf("%lld", sb); else fputs("null", stdout);
        printf(", \"tensors\": [");
    } else {
        printf("A: %s (%s, global step ", pa, A.model);
        if (sa >= 0) printf("%lld)\n", sa); else printf("unknown)\n");
        printf("B: %s (%s, global step ", pb, B.model);
        if (sb >= 0) printf("%lld)\n", sb); else printf("unknown)\n");
        printf("\nper tensor: rel change = ||B-A|| / ||A||\n");
        printf("%-46s %9s %12s %12s %12s %12s %12s\n", "tensor", "numel", "||A||", "||B||", "||B-A||", "rel change",
               "max|B-A|");
    }
    int first = 1;
    for (int k = 0; k < A.nkeys; k++) {
        const Key *key = &A.keys[k];
        if (key->is_int) continue;
        const TensorDiff *t = &td[k];
        const double rel = ratio(sqrt(t->d2), sqrt(t->a2));
        if (json) {
            printf("%s{\"name\": ", first ? "" : ", ");
            json_str(key->name);
            printf(", \"kind\": \"%s\", \"norm_a\": ", key->is_param ? "parameter" : "buffer");
            json_num(sqrt(t->a2));
            printf(", \"norm_b\": ");
            json_num(sqrt(t->b2));
            printf(", \"norm_diff\": ");
            json_num(sqrt(t->d2));
            printf(", \"rel_change\": ");
            json_num(rel);
            printf(", \"max_abs_diff\": ");
            json_num(t->dmax);
            printf("}");
        } else {
            printf("%-46s %9zu %12.5g %12.5g %12.5g %12.5g %12.5g\n", key->name, key->numel, sqrt(t->a2), sqrt(t->b2),
                   sqrt(t->d2), rel, t->dmax);
        }
        first = 0;
    }
    eff_free(td);
    const double all_rel = ratio(sqrt(all_d2), sqrt(all_a2));
    if (json) {
        printf("], \"layers\": [");
        for (int l = 0; l < nl; l++) {
            const double u = ratio(sqrt(layers[l].d2), sqrt(layers[l].a2));
            printf("%s{\"layer\": ", l ? ", " : "");
            json_str(layers[l].name);
            printf(", \"params\": %zu, \"norm_a\": ", layers[l].numel);
            json_num(sqrt(layers[l].a2));
            printf(", \"norm_update\": ");
            json_num(sqrt(layers[l].d2));
            printf(", \"update_to_weight\": ");
            json_num(u);
            printf(", \"update_to_weight_per_step\": ");
            if (dsteps > 0) json_num(u / (double)dsteps);
            else fputs("null", stdout);
            printf("}");
        }
        printf("], \"params\": %zu, \"rel_change_params\": ", all_n);
        json_num(all_rel);
        printf(", \"steps_apart\": ");
        if (dsteps >= 0) printf("%lld", dsteps); else fputs("null", stdout);
        printf(", \"num_batches_tracked\": {\"a\": %lld, \"b\": %lld}}\n", (long long)nbt_a, (long long)nbt_b);
    } else {
        printf("\nper layer (parameters): update/weight = ||W_B-W_A|| / ||W_A||");
        if (dsteps > 0) printf(", per step = that / %lld steps", dsteps);
        printf("\n%-40s %9s %12s %12s %14s %12s\n", "layer", "params", "||W_A||", "||W_B-W_A||", "update/weight", "per step");
        for (int l = 0; l < nl; l++) {
            const double u = ratio(sqrt(layers[l].d2), sqrt(layers[l].a2));
            printf("%-40s %9zu %12.5g %12.5g %14.5g ", layers[l].name, layers[l].numel, sqrt(layers[l].a2),
                   sqrt(layers[l].d2), u);
            if (dsteps > 0) printf("%12.5g\n", u / (double)dsteps);
            else printf("%12s\n", "-");
        }
        printf("\nall %zu parameters: ||B-A|| / ||A|| = %.6g", all_n, all_rel);
        if (dsteps >= 0) printf(" (%lld optimizer steps apart)", dsteps);
        printf("; num_batches_tracked %lld -> %lld\n", (long long)nbt_a, (long long)nbt_b);
    }
    eff_free(layers);
    ckpt_close(&A);
    ckpt_close(&B);
    return 0;
}

/* ---- entry point --------------------------------------------------------------- */

int cmd_ckpt(int argc, char **argv) {
    if (argc < 3 || !strcmp(argv[2], "--help") || !strcmp(argv[2], "-h") || !strcmp(argv[2], "help")) {
        fputs(usage_text, argc < 3 ? stderr : stdout);
        return argc < 3 ? 2 : 0;
    }
    const char *sub = argv[2];
    int nfiles_want;
    if (!strcmp(sub, "info") || !strcmp(sub, "stats")) nfiles_want = 1;
    else if (!strcmp(sub, "diff")) nfiles_want = 2;
    else {
        fputs(usage_text, stderr);
        EFF_FATAL("effnet ckpt: unknown subcommand '%s'\nHINT: use info, stats or diff", sub);
    }
    /* Positional file names may come before or after the flags. */
    char **flags = eff_calloc((size_t)argc + 1, sizeof *flags, "argument list");
    const char *files[2] = {NULL, NULL};
    int nflags = 3, nfiles = 0;
    flags[0] = argv[0];
    flags[1] = argv[1];
    flags[2] = argv[2];
    for (int a = 3; a < argc; a++) {
        if (argv[a][0] == '-' && argv[a][1] != '\0') flags[nflags++] = argv[a];
        else if (nfiles < 2) files[nfiles++] = argv[a];
        else nfiles++;
    }
    int json = 0;
    CliOpt opts[] = {{"--json", CLI_BOOL, &json, 0, 0, "print one JSON object instead of tables"}};
    char cmd[32];
    snprintf(cmd, sizeof cmd, "ckpt %s", sub);
    const char *usage = nfiles_want == 1 ? "FILE [--json]" : "A B [--json]";
    if (cli_parse(cmd, usage, opts, 1, nflags, flags, 3)) {
        eff_free(flags);
        return 0;
    }
    eff_free(flags);
    EFF_CHECK(nfiles == nfiles_want, "effnet ckpt %s: expected %d checkpoint file%s, got %d\nHINT: effnet ckpt %s %s", sub,
              nfiles_want, nfiles_want == 1 ? "" : "s", nfiles, sub, usage);
    if (!strcmp(sub, "info")) return do_info(files[0], json);
    if (!strcmp(sub, "stats")) return do_stats(files[0], json);
    return do_diff(files[0], files[1], json);
}
