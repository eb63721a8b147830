/* cmd_ckpt.c: `effnet ckpt info|stats|diff` -- inspect HDF5 checkpoints
 * (docs/checkpoint-tools.md; the layout is docs/checkpoint-format.md).
 *
 *   effnet ckpt info  FILE [--json]   header, config, training state, tensor table
 *   effnet ckpt stats FILE [--json]   per-tensor statistics, BN gamma per stage
 *   effnet ckpt diff  A B  [--json]   per-tensor relative change, update/weight per layer
 *
 * The file is read through checkpoint.h's reader (EffCkptFile), the one
 * eff_checkpoint_load uses: it opens and checks the header, lists the model's
 * state_dict keys and matches /model against them. On top of that the file is
 * checked completely against the model its header names (exactly the
 * state_dict keys, PyTorch shapes, floats for tensors and an integer scalar
 * for num_batches_tracked) before anything is printed, so a truncated file,
 * an HDF5 file that is not a checkpoint, a missing or extra tensor, or a wrong
 * shape is an error that names the file (and the tensor), never a crash. */
#define _POSIX_C_SOURCE 200809L
#include "checkpoint.h"
#include "cmd/cli.h"
#include "common.h"
#include "h5io.h"
#include "jsonout.h"
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    "  --json         print one JSON object instead of tables\n\n"
    "PyTorch state_dicts in and out: effnet-torch import STATE.pt OUT.h5 --model NAME | export CKPT.h5 OUT.pt\n"
    "(installed beside effnet; data_tools/effnet-torch in the source tree; docs/checkpoint-tools.md)\n";

/* A state_dict key of the model, with what the tables print about it. */
typedef struct Key {
    const EffCkptKey *sd; /* name, shape, numel, parameter or buffer, integer scalar */
    char layer[128];      /* the module: the name without its last component */
    int bn_gamma;         /* a BN's weight */
    int group;            /* GROUP_STEM, 1..7 (stage), GROUP_HEAD, GROUP_CLASSIFIER */
    char dtype[16];       /* as stored: float32, float64, int64, ... */
} Key;

typedef struct Ckpt {
    const char *path;
    EffCkptFile *f;
    const EffCkptHeader *h;
    EffModel m;     /* tables only (eff_model_build_tables): a key/shape/stage map, no weights */
    EffCkptKeys sd; /* the model's state_dict keys, in PyTorch's order */
    Key *keys;      /* one per sd key */
    int nkeys;
} Ckpt;

static double attr_num(const EffCkptAttr *a, double dflt) {
    if (!a) return dflt;
    switch (a->kind) {
    case EFF_CKPT_ATTR_INT: return (double)a->i;
    case EFF_CKPT_ATTR_UINT: return (double)a->u;
    case EFF_CKPT_ATTR_FLOAT: return a->d;
    default: return dflt;
    }
}

/* ---- JSON output (jsonout.h) ------------------------------------------------- */

#define NUM_FMT "%.10g" /* the figures' precision; NaN and Inf become null */

static void json_attr_value(cJSON *o, const char *name, const EffCkptAttr *a) {
    switch (a->kind) {
    case EFF_CKPT_ATTR_INT: eff_json_int(o, name, a->i); break;
    case EFF_CKPT_ATTR_UINT: eff_json_uint(o, name, a->u); break;
    case EFF_CKPT_ATTR_FLOAT: eff_json_num(o, name, a->d, NUM_FMT); break;
    default: eff_json_str(o, name, a->s ? a->s : ""); break;
    }
}

/* {"name": value, ...} of every attribute except `skip` (NULL: none), as o[key]. */
static void json_attrs(cJSON *o, const char *key, const EffCkptAttrs *l, const char *skip) {
    cJSON *a = eff_json_add_object(o, key);
    for (int i = 0; i < l->n; i++)
        if (!skip || strcmp(l->a[i].name, skip)) json_attr_value(a, l->a[i].name, &l->a[i]);
}

static void json_shape(cJSON *o, const EffCkptKey *k) {
    cJSON *a = eff_json_add_array(o, "shape");
    for (int d = 0; d < k->ndim; d++) eff_json_int(a, NULL, (long long)k->shape[d]);
}

/* n, or null when it is negative (unknown) */
static void json_int_or_null(cJSON *o, const char *name, long long n) {
    if (n >= 0) eff_json_int(o, name, n);
    else eff_json_null(o, name);
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
    if (!strncmp(name, "stem.", 5) || !strncmp(name, "features.0.", 11)) return GROUP_STEM;
    if (!strncmp(name, "head.", 5) || !strncmp(name, "features.8.", 11)) return GROUP_HEAD;
    if (!strncmp(name, "classifier.", 11)) return GROUP_CLASSIFIER;
    int bi = -1, st = -1;
    if (sscanf(name, "blocks.block_%d.", &bi) == 1 && bi >= 0 && bi < m->nblocks) return 1 + m->blk[bi].stage;
    if (sscanf(name, "features.%d.", &st) == 1 && st >= 1 && st <= 7) return st; /* torchvision: features.<stage> */
    EFF_FATAL("internal: state_dict key '%s' belongs to no stage", name);
}

/* Open path and check its header (exits naming the file); no tensors yet. */
static void ckpt_open(Ckpt *c, const char *path) {
    memset(c, 0, sizeof *c);
    c->path = path;
    char err[1024];
    c->f = eff_ckpt_open(path, err, sizeof err);
    if (!c->f) EFF_FATAL("%s", err);
    c->h = eff_ckpt_header(c->f);
}

/* Every key of the model must be in /model, nothing else, with PyTorch's shape
 * and the right type class (like eff_checkpoint_load); records each dtype. */
static void validate(Ckpt *c) {
    if (!eff_ckpt_exists(c->f, "/model"))
        EFF_FATAL("checkpoint '%s' has no group /model (no tensors)\nHINT: the file is not a complete effnet checkpoint "
                  "(layout: docs/checkpoint-format.md)", c->path);
    char *seen = eff_calloc((size_t)c->nkeys + 1, 1, "key flags");
    char *extra = eff_ckpt_match(c->f, "/model", &c->sd, 0, seen);
    if (extra)
        EFF_FATAL("checkpoint '%s' holds an unexpected tensor '/model/%s': not a state_dict key of %s with %d "
                  "classes\nHINT: the file was written for another model or version", c->path, extra, c->h->model,
                  c->h->classes);
    int present = 0;
    for (int k = 0; k < c->nkeys; k++) present += seen[k];
    for (int k = 0; k < c->nkeys; k++)
        if (!seen[k])
            EFF_FATAL("checkpoint '%s' lacks tensor '/model/%s' (%d of the %d state_dict keys of %s are present)\n"
                      "HINT: the file is incomplete or was edited; use another checkpoint (best.h5 or an earlier one)",
                      c->path, c->keys[k].sd->name, present, c->nkeys, c->h->model);
    eff_free(seen);
    for (int k = 0; k < c->nkeys; k++) {
        const EffCkptKey *key = c->keys[k].sd;
        EffCkptTensor t;
        eff_ckpt_tensor(c->f, key, &t);
        int same = t.ndim == key->ndim;
        for (int i = 0; same && i < t.ndim; i++) same = t.shape[i] == key->shape[i];
        if (!same) {
            char a[200], b[200];
            eff_h5_fmt_dims(a, sizeof a, t.ndim, t.shape);
            eff_h5_fmt_dims(b, sizeof b, key->ndim, key->shape);
            EFF_FATAL("tensor '/model/%s' in checkpoint '%s' has shape %s, but %s with %d classes has %s\nHINT: the "
                      "file was written for another model or edited; use a checkpoint written by effnet train",
                      key->name, c->path, a, c->h->model, c->h->classes, b);
        }
        if (key->is_int ? !t.is_int : !t.is_float)
            EFF_FATAL("tensor '/model/%s' in checkpoint '%s' is of HDF5 type class %d, expected %s\nHINT: weights and "
                      "BN statistics are floating point, num_batches_tracked an integer", key->name, c->path,
                      t.type_class, key->is_int ? "integer" : "floating point");
        snprintf(c->keys[k].dtype, sizeof c->keys[k].dtype, "%s", t.dtype);
    }
}

/* The model the header names, as tables and keys, and the whole file checked against it. */
static void ckpt_check(Ckpt *c) {
    EffModelSpec spec;
    EFF_CHECK(eff_ckpt_spec(c->f, &spec), "checkpoint '%s' names unknown model '%s'\nHINT: effnet knows "
              "efficientnet-b0 .. efficientnet-b7", c->path, c->h->model);
    eff_model_build_tables(&c->m, &spec, c->h->classes);
    eff_ckpt_keys(&c->m, &c->sd);
    c->nkeys = c->sd.n;
    c->keys = eff_calloc((size_t)c->nkeys, sizeof *c->keys, "checkpoint key table");
    for (int k = 0; k < c->nkeys; k++) {
        Key *key = &c->keys[k];
        const EffCkptKey *sd = key->sd = &c->sd.k[k];
        snprintf(key->layer, sizeof key->layer, "%s", sd->name);
        char *dot = strrchr(key->layer, '.');
        if (dot) *dot = '\0';
        key->bn_gamma = sd->kind == EFF_KIND_BN && !strcmp(dot ? dot + 1 : "", "weight");
        key->group = key_group(&c->m, sd->name);
    }
    validate(c);
}

static void ckpt_close(Ckpt *c) {
    char err[1024];
    if (!eff_ckpt_close(c->f, err, sizeof err)) EFF_FATAL("%s", err);
    eff_model_destroy(&c->m);
    eff_ckpt_keys_free(&c->sd);
    eff_free(c->keys);
    memset(c, 0, sizeof *c);
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

static void print_attr_text(const EffCkptAttr *a) {
    switch (a->kind) {
    case EFF_CKPT_ATTR_INT: printf("%lld", a->i); break;
    case EFF_CKPT_ATTR_UINT: printf("%llu", a->u); break;
    case EFF_CKPT_ATTR_FLOAT: printf("%.10g", a->d); break;
    default: printf("%s", a->s ? a->s : ""); break;
    }
}

static int64_t read_i64_scalar(const Ckpt *c, const Key *k) {
    double *v = eff_ckpt_read(c->f, k->sd);
    int64_t x = (int64_t)v[0];
    eff_free(v);
    return x;
}

/* What `ckpt info` reports, gathered once for both outputs. */
typedef struct {
    Ckpt c;
    EffCkptAttrs root, train, opt;
    int has_train, has_opt;
    long long n_exp_avg, n_exp_avg_sq;
    size_t params, buffers;
    int nparam, nbuf, nnbt;
    int64_t nbt_min, nbt_max;
    const char *config;
    const EffCkptAttr *schema;
} Info;

static void info_gather(Info *in, const char *path) {
    memset(in, 0, sizeof *in);
    ckpt_open(&in->c, path);
    ckpt_check(&in->c);
    eff_ckpt_attrs(in->c.f, "/", &in->root);
    in->has_train = eff_ckpt_attrs(in->c.f, "/train", &in->train);
    in->has_opt = eff_ckpt_attrs(in->c.f, "/optimizer", &in->opt);
    in->n_exp_avg = eff_ckpt_group_size(in->c.f, "/optimizer/exp_avg");
    in->n_exp_avg_sq = eff_ckpt_group_size(in->c.f, "/optimizer/exp_avg_sq");
    in->nbt_min = INT64_MAX;
    in->nbt_max = INT64_MIN;
    for (int k = 0; k < in->c.nkeys; k++) {
        const Key *key = &in->c.keys[k];
        if (key->sd->is_int) {
            const int64_t v = read_i64_scalar(&in->c, key);
            in->nnbt++;
            if (v < in->nbt_min) in->nbt_min = v;
            if (v > in->nbt_max) in->nbt_max = v;
        } else if (key->sd->is_param) {
            in->params += key->sd->numel;
            in->nparam++;
        } else {
            in->buffers += key->sd->numel;
            in->nbuf++;
        }
    }
    const EffCkptAttr *cfg = eff_ckpt_attr_find(&in->root, "config");
    in->config = cfg && cfg->s ? cfg->s : "";
    in->schema = eff_ckpt_attr_find(&in->root, "schema_version");
}

static void info_free(Info *in) {
    eff_ckpt_attrs_free(&in->root);
    eff_ckpt_attrs_free(&in->train);
    eff_ckpt_attrs_free(&in->opt);
    ckpt_close(&in->c);
}

static void info_json(const Info *in, const char *path) {
    const Ckpt *c = &in->c;
    cJSON *o = eff_json_object();
    eff_json_str(o, "file", path);
    eff_json_int(o, "bytes", c->h->bytes);
    eff_json_str(o, "checksum", c->h->checksum ? "verified" : "none");
    eff_json_str(o, "format", EFF_CKPT_FORMAT);
    eff_json_int(o, "schema_version", (long long)attr_num(in->schema, -1));
    eff_json_str(o, "model", c->h->model);
    eff_json_str(o, "variant", c->h->variant);
    eff_json_int(o, "stem_stride", c->h->stem_stride);
    eff_json_int(o, "classes", c->h->classes);
    eff_json_int(o, "resolution", c->h->resolution);
    json_attrs(o, "attributes", &in->root, "config");
    eff_json_str(o, "config", in->config);
    if (in->has_train) json_attrs(o, "train", &in->train, NULL);
    else eff_json_null(o, "train");
    if (in->has_opt) {
        json_attrs(o, "optimizer", &in->opt, NULL);
        cJSON *ot = eff_json_add_object(o, "optimizer_tensors");
        eff_json_int(ot, "exp_avg", in->n_exp_avg);
        eff_json_int(ot, "exp_avg_sq", in->n_exp_avg_sq);
    } else {
        eff_json_null(o, "optimizer");
    }
    eff_json_uint(o, "params", in->params);
    eff_json_int(o, "param_tensors", in->nparam);
    eff_json_uint(o, "buffers", in->buffers);
    eff_json_int(o, "buffer_tensors", in->nbuf);
    cJSON *nbt = eff_json_add_object(o, "num_batches_tracked");
    eff_json_int(nbt, "count", in->nnbt);
    eff_json_int(nbt, "min", (long long)in->nbt_min);
    eff_json_int(nbt, "max", (long long)in->nbt_max);
    cJSON *ts = eff_json_add_array(o, "tensors");
    for (int k = 0; k < c->nkeys; k++) {
        const Key *key = &c->keys[k];
        cJSON *t = eff_json_add_object(ts, NULL);
        eff_json_str(t, "name", key->sd->name);
        json_shape(t, key->sd);
        eff_json_str(t, "dtype", key->dtype);
        eff_json_uint(t, "numel", key->sd->numel);
        eff_json_str(t, "kind", key->sd->is_param ? "parameter" : "buffer");
    }
    eff_json_write(o, stdout, "standard output");
}

/* The header lines of the table: file, checksum, format, model, creation. */
static void info_text_header(const Info *in, const char *path) {
    const Ckpt *c = &in->c;
    const EffCkptAttr *created = eff_ckpt_attr_find(&in->root, "created"),
                      *h5v = eff_ckpt_attr_find(&in->root, "hdf5_version");
    printf("checkpoint   %s (%.1f MB)\n", path, (double)c->h->bytes / 1e6);
    printf("checksum     %s\n", c->h->checksum ? "SHA-256 of the contents verified" : "none (an older effnet's file, "
           "or one written by another tool)");
    printf("format       %s, schema version %lld\n", EFF_CKPT_FORMAT, (long long)attr_num(in->schema, -1));
    printf("model        %s (%s variant%s), %d classes, resolution %d\n", c->h->model, c->h->variant,
           c->h->stem_stride == 1 ? ", stem stride 1" : "", c->h->classes, c->h->resolution);
    printf("created      %s (HDF5 %s)\n", created && created->s ? created->s : "(unknown)",
           h5v && h5v->s ? h5v->s : "(unknown)");
}

/* The training state and optimizer lines. */
static void info_text_state(const Info *in) {
    const EffCkptAttrs *train = &in->train;
    if (in->has_train) {
        printf("training     epoch %.0f, step in epoch %.0f, global step %.0f, world size %.0f, seed %.0f, lr %g\n",
               attr_num(eff_ckpt_attr_find(train, "epoch"), NAN), attr_num(eff_ckpt_attr_find(train, "step_in_epoch"), NAN),
               attr_num(eff_ckpt_attr_find(train, "global_step"), NAN), attr_num(eff_ckpt_attr_find(train, "world_size"), NAN),
               attr_num(eff_ckpt_attr_find(train, "seed"), NAN), attr_num(eff_ckpt_attr_find(train, "lr"), NAN));
        double last = attr_num(eff_ckpt_attr_find(train, "last_acc"), -1), best = attr_num(eff_ckpt_attr_find(train, "best_acc"), -1);
        printf("accuracy     ");
        if (last >= 0) printf("last %.2f%% (test loss %.4f)", last, attr_num(eff_ckpt_attr_find(train, "last_loss"), NAN));
        else printf("last: none yet");
        if (best >= 0) printf(", best %.2f%% at epoch %.0f\n", best, attr_num(eff_ckpt_attr_find(train, "best_epoch"), NAN));
        else printf(", best: none yet\n");
    } else {
        printf("training     (no /train: not resumable, e.g. imported from PyTorch)\n");
    }
    if (in->has_opt) {
        const EffCkptAttr *on = eff_ckpt_attr_find(&in->opt, "name");
        const double frozen = attr_num(eff_ckpt_attr_find(&in->opt, "frozen"), 0); /* train.freeze: no state */
        printf("optimizer    %s, step %.0f (exp_avg %lld, exp_avg_sq %lld tensors%s%.0f%s)\n", on && on->s ? on->s : "?",
               attr_num(eff_ckpt_attr_find(&in->opt, "step"), NAN), in->n_exp_avg, in->n_exp_avg_sq,
               frozen > 0 ? "; the first " : "", frozen > 0 ? frozen : 0, frozen > 0 ? " frozen, without" : "");
    } else {
        printf("optimizer    (none)\n");
    }
}

/* Provenance, counts, the config text and the tensor table. */
static void info_text_body(const Info *in) {
    const Ckpt *c = &in->c;
    int any = 0;
    for (int i = 0; i < in->root.n; i++) {
        if (eff_ckpt_header_attr(in->root.a[i].name)) continue;
        printf("%-12s %s = ", any ? "" : "provenance", in->root.a[i].name);
        print_attr_text(&in->root.a[i]);
        putchar('\n');
        any = 1;
    }
    if (!any) printf("provenance   (none)\n");
    printf("parameters   %zu in %d tensors; BN buffers %zu in %d tensors; num_batches_tracked ", in->params, in->nparam,
           in->buffers, in->nbuf);
    if (in->nbt_min == in->nbt_max) printf("%lld (all %d BNs)\n", (long long)in->nbt_min, in->nnbt);
    else printf("%lld .. %lld (%d BNs)\n", (long long)in->nbt_min, (long long)in->nbt_max, in->nnbt);
    printf("\nconfig:%s\n", in->config[0] ? "" : " (none stored)");
    for (const char *p = in->config; *p;) {
        const char *nl = strchr(p, '\n');
        const int len = nl ? (int)(nl - p) : (int)strlen(p);
        printf("  %.*s\n", len, p);
        p += len + (nl ? 1 : 0);
    }
    printf("\ntensors (/model, state_dict order):\n");
    printf("  %-46s %-20s %-8s %10s\n", "name", "shape", "dtype", "numel");
    for (int k = 0; k < c->nkeys; k++) {
        const Key *key = &c->keys[k];
        char shp[64];
        eff_h5_fmt_dims(shp, sizeof shp, key->sd->ndim, key->sd->shape);
        printf("  %-46s %-20s %-8s %10zu\n", key->sd->name, shp, key->dtype, key->sd->numel);
    }
}

static int do_info(const char *path, int json) {
    Info in;
    info_gather(&in, path);
    if (json) {
        info_json(&in, path);
    } else {
        info_text_header(&in, path);
        info_text_state(&in);
        info_text_body(&in);
    }
    info_free(&in);
    return 0;
}

/* ---- stats -------------------------------------------------------------------- */

static int do_stats(const char *path, int json) {
    Ckpt c;
    ckpt_open(&c, path);
    ckpt_check(&c);
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
        double *x = eff_ckpt_read(c.f, key->sd);
        if (key->sd->is_int) {
            int64_t v = (int64_t)x[0];
            if (v < nbt_min) nbt_min = v;
            if (v > nbt_max) nbt_max = v;
        } else {
            st[k] = stats_of(x, key->sd->numel);
            if (key->bn_gamma) {
                stats_merge(&gamma[key->group], &st[k]);
                gamma_bns[key->group]++;
                for (size_t i = 0; i < key->sd->numel; i++) gamma_small[key->group] += fabs(x[i]) < SMALL_GAMMA;
            }
        }
        eff_free(x);
    }
    cJSON *o = NULL, *ts = NULL;
    if (json) {
        o = eff_json_object();
        eff_json_str(o, "file", path);
        eff_json_str(o, "model", c.h->model);
        eff_json_int(o, "classes", c.h->classes);
        eff_json_str(o, "std", "population (ddof 0)");
        ts = eff_json_add_array(o, "tensors");
    } else {
        printf("%s: %s, %d classes (std: population, ddof 0)\n\n", path, c.h->model, c.h->classes);
        printf("%-46s %9s %12s %12s %12s %12s %12s %7s\n", "tensor", "numel", "mean", "std", "min", "max", "L2 norm",
               "zeros");
    }
    for (int k = 0; k < c.nkeys; k++) {
        const Key *key = &c.keys[k];
        if (key->sd->is_int) continue;
        const Stats *s = &st[k];
        const double l2 = sqrt(s->sumsq), zf = s->zeros / (double)s->n;
        if (json) {
            cJSON *t = eff_json_add_object(ts, NULL);
            eff_json_str(t, "name", key->sd->name);
            eff_json_str(t, "kind", key->sd->is_param ? "parameter" : "buffer");
            eff_json_uint(t, "numel", key->sd->numel);
            eff_json_num(t, "mean", s->mean, NUM_FMT);
            eff_json_num(t, "std", stats_std(s), NUM_FMT);
            eff_json_num(t, "min", s->min, NUM_FMT);
            eff_json_num(t, "max", s->max, NUM_FMT);
            eff_json_num(t, "l2", l2, NUM_FMT);
            eff_json_num(t, "zeros", zf, NUM_FMT);
        } else {
            printf("%-46s %9zu %12.5g %12.5g %12.5g %12.5g %12.5g %7.4f\n", key->sd->name, key->sd->numel, s->mean,
                   stats_std(s), s->min, s->max, l2, zf);
        }
    }
    eff_free(st);
    char gb[32];
    if (json) {
        cJSON *nbt = eff_json_add_object(o, "num_batches_tracked");
        eff_json_int(nbt, "min", (long long)nbt_min);
        eff_json_int(nbt, "max", (long long)nbt_max);
        eff_json_num(o, "small_gamma_threshold", SMALL_GAMMA, "%g");
        cJSON *bn = eff_json_add_array(o, "bn_gamma");
        for (int g = 0; g < NGROUPS; g++) {
            if (!gamma_bns[g]) continue;
            cJSON *r = eff_json_add_object(bn, NULL);
            eff_json_str(r, "stage", group_name(g, gb, sizeof gb));
            eff_json_int(r, "bns", gamma_bns[g]);
            eff_json_uint(r, "channels", gamma[g].n);
            eff_json_num(r, "mean", gamma[g].mean, NUM_FMT);
            eff_json_num(r, "std", stats_std(&gamma[g]), NUM_FMT);
            eff_json_num(r, "min", gamma[g].min, NUM_FMT);
            eff_json_num(r, "max", gamma[g].max, NUM_FMT);
            eff_json_num(r, "small", gamma_small[g] / (double)gamma[g].n, NUM_FMT);
        }
        eff_json_write(o, stdout, "standard output");
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
    EffCkptAttrs t;
    long long gs = -1;
    if (eff_ckpt_attrs(c->f, "/train", &t)) gs = (long long)attr_num(eff_ckpt_attr_find(&t, "global_step"), -1);
    eff_ckpt_attrs_free(&t);
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

/* Everything `ckpt diff` computes: per tensor, per layer, and overall. */
typedef struct {
    Ckpt A, B;
    const char *pa, *pb;
    long long sa, sb, dsteps;
    TensorDiff *td;
    Layer *layers;
    int nl;
    double all_a2, all_d2;
    size_t all_n;
    int64_t nbt_a, nbt_b;
} Diff;

/* Open both files; the same model, classes, tensor names and shapes. */
static void diff_open(Diff *d, const char *pa, const char *pb) {
    memset(d, 0, sizeof *d);
    d->pa = pa;
    d->pb = pb;
    ckpt_open(&d->A, pa);
    ckpt_open(&d->B, pb);
    const EffCkptHeader *ha = d->A.h, *hb = d->B.h;
    EFF_CHECK(!strcmp(ha->model, hb->model) && ha->classes == hb->classes, "cannot diff checkpoints of different models: "
              "'%s' holds %s with %d classes, '%s' holds %s with %d classes\nHINT: diff compares two checkpoints of the "
              "same model and number of classes (e.g. two checkpoints of one run)", pa, ha->model, ha->classes, pb,
              hb->model, hb->classes);
    ckpt_check(&d->A);
    ckpt_check(&d->B);
    /* Both files passed validation against the same model, so their keys and
     * shapes agree; check anyway, naming both files. */
    EFF_CHECK(d->A.nkeys == d->B.nkeys, "'%s' and '%s' have different tensor counts (%d, %d)", pa, pb, d->A.nkeys,
              d->B.nkeys);
    for (int k = 0; k < d->A.nkeys; k++) {
        const EffCkptKey *x = d->A.keys[k].sd, *y = d->B.keys[k].sd;
        int same = !strcmp(x->name, y->name) && x->ndim == y->ndim;
        for (int i = 0; same && i < x->ndim; i++) same = x->shape[i] == y->shape[i];
        EFF_CHECK(same, "tensor '%s' has a different shape in '%s' and '%s'\nHINT: diff compares checkpoints of the same "
                  "model", x->name, pa, pb);
    }
    d->sa = global_step(&d->A);
    d->sb = global_step(&d->B);
    d->dsteps = d->sa >= 0 && d->sb >= 0 ? llabs(d->sb - d->sa) : -1;
    d->nbt_a = d->nbt_b = -1;
}

/* One tensor pair: its sums, added to its layer's and the overall ones. */
static void diff_tensor(Diff *d, int k) {
    const Key *key = &d->A.keys[k];
    double *x = eff_ckpt_read(d->A.f, key->sd), *y = eff_ckpt_read(d->B.f, key->sd);
    if (key->sd->is_int) {
        if (d->nbt_a < 0) {
            d->nbt_a = (int64_t)x[0];
            d->nbt_b = (int64_t)y[0];
        }
    } else {
        TensorDiff *t = &d->td[k];
        for (size_t i = 0; i < key->sd->numel; i++) {
            const double v = y[i] - x[i];
            t->a2 += x[i] * x[i];
            t->b2 += y[i] * y[i];
            t->d2 += v * v;
            if (fabs(v) > t->dmax) t->dmax = fabs(v);
        }
        if (key->sd->is_param) {
            d->all_a2 += t->a2;
            d->all_d2 += t->d2;
            d->all_n += key->sd->numel;
            int l = d->nl - 1;
            if (l < 0 || strcmp(d->layers[l].name, key->layer) != 0) {
                l = d->nl++;
                d->layers[l].name = key->layer;
            }
            d->layers[l].numel += key->sd->numel;
            d->layers[l].a2 += t->a2;
            d->layers[l].d2 += t->d2;
        }
    }
    eff_free(x);
    eff_free(y);
}

static void diff_json(const Diff *d) {
    cJSON *o = eff_json_object();
    eff_json_str(o, "a", d->pa);
    eff_json_str(o, "b", d->pb);
    eff_json_str(o, "model", d->A.h->model);
    eff_json_int(o, "classes", d->A.h->classes);
    json_int_or_null(o, "global_step_a", d->sa);
    json_int_or_null(o, "global_step_b", d->sb);
    cJSON *ts = eff_json_add_array(o, "tensors");
    for (int k = 0; k < d->A.nkeys; k++) {
        const Key *key = &d->A.keys[k];
        if (key->sd->is_int) continue;
        const TensorDiff *t = &d->td[k];
        cJSON *r = eff_json_add_object(ts, NULL);
        eff_json_str(r, "name", key->sd->name);
        eff_json_str(r, "kind", key->sd->is_param ? "parameter" : "buffer");
        eff_json_num(r, "norm_a", sqrt(t->a2), NUM_FMT);
        eff_json_num(r, "norm_b", sqrt(t->b2), NUM_FMT);
        eff_json_num(r, "norm_diff", sqrt(t->d2), NUM_FMT);
        eff_json_num(r, "rel_change", ratio(sqrt(t->d2), sqrt(t->a2)), NUM_FMT);
        eff_json_num(r, "max_abs_diff", t->dmax, NUM_FMT);
    }
    cJSON *ls = eff_json_add_array(o, "layers");
    for (int l = 0; l < d->nl; l++) {
        const double u = ratio(sqrt(d->layers[l].d2), sqrt(d->layers[l].a2));
        cJSON *r = eff_json_add_object(ls, NULL);
        eff_json_str(r, "layer", d->layers[l].name);
        eff_json_uint(r, "params", d->layers[l].numel);
        eff_json_num(r, "norm_a", sqrt(d->layers[l].a2), NUM_FMT);
        eff_json_num(r, "norm_update", sqrt(d->layers[l].d2), NUM_FMT);
        eff_json_num(r, "update_to_weight", u, NUM_FMT);
        if (d->dsteps > 0) eff_json_num(r, "update_to_weight_per_step", u / (double)d->dsteps, NUM_FMT);
        else eff_json_null(r, "update_to_weight_per_step");
    }
    eff_json_uint(o, "params", d->all_n);
    eff_json_num(o, "rel_change_params", ratio(sqrt(d->all_d2), sqrt(d->all_a2)), NUM_FMT);
    json_int_or_null(o, "steps_apart", d->dsteps);
    cJSON *nbt = eff_json_add_object(o, "num_batches_tracked");
    eff_json_int(nbt, "a", (long long)d->nbt_a);
    eff_json_int(nbt, "b", (long long)d->nbt_b);
    eff_json_write(o, stdout, "standard output");
}

static void diff_text(const Diff *d) {
    printf("A: %s (%s, global step ", d->pa, d->A.h->model);
    if (d->sa >= 0) printf("%lld)\n", d->sa); else printf("unknown)\n");
    printf("B: %s (%s, global step ", d->pb, d->B.h->model);
    if (d->sb >= 0) printf("%lld)\n", d->sb); else printf("unknown)\n");
    printf("\nper tensor: rel change = ||B-A|| / ||A||\n");
    printf("%-46s %9s %12s %12s %12s %12s %12s\n", "tensor", "numel", "||A||", "||B||", "||B-A||", "rel change",
           "max|B-A|");
    for (int k = 0; k < d->A.nkeys; k++) {
        const Key *key = &d->A.keys[k];
        if (key->sd->is_int) continue;
        const TensorDiff *t = &d->td[k];
        printf("%-46s %9zu %12.5g %12.5g %12.5g %12.5g %12.5g\n", key->sd->name, key->sd->numel, sqrt(t->a2),
               sqrt(t->b2), sqrt(t->d2), ratio(sqrt(t->d2), sqrt(t->a2)), t->dmax);
    }
    printf("\nper layer (parameters): update/weight = ||W_B-W_A|| / ||W_A||");
    if (d->dsteps > 0) printf(", per step = that / %lld steps", d->dsteps);
    printf("\n%-40s %9s %12s %12s %14s %12s\n", "layer", "params", "||W_A||", "||W_B-W_A||", "update/weight", "per step");
    for (int l = 0; l < d->nl; l++) {
        const double u = ratio(sqrt(d->layers[l].d2), sqrt(d->layers[l].a2));
        printf("%-40s %9zu %12.5g %12.5g %14.5g ", d->layers[l].name, d->layers[l].numel, sqrt(d->layers[l].a2),
               sqrt(d->layers[l].d2), u);
        if (d->dsteps > 0) printf("%12.5g\n", u / (double)d->dsteps);
        else printf("%12s\n", "-");
    }
    printf("\nall %zu parameters: ||B-A|| / ||A|| = %.6g", d->all_n, ratio(sqrt(d->all_d2), sqrt(d->all_a2)));
    if (d->dsteps >= 0) printf(" (%lld optimizer steps apart)", d->dsteps);
    printf("; num_batches_tracked %lld -> %lld\n", (long long)d->nbt_a, (long long)d->nbt_b);
}

static int do_diff(const char *pa, const char *pb, int json) {
    Diff d;
    diff_open(&d, pa, pb);
    d.layers = eff_calloc((size_t)d.A.nkeys, sizeof *d.layers, "layer table");
    d.td = eff_calloc((size_t)d.A.nkeys, sizeof *d.td, "tensor differences");
    /* Read every tensor pair first, print afterwards (no partial output on a read error). */
    for (int k = 0; k < d.A.nkeys; k++) diff_tensor(&d, k);
    if (json) diff_json(&d);
    else diff_text(&d);
    eff_free(d.td);
    eff_free(d.layers);
    ckpt_close(&d.B); /* the reverse order: each restores HDF5's error printing as it found it */
    ckpt_close(&d.A);
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
