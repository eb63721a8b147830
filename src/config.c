/* config.c: table-driven config keys, INI files via iniparser, --set overrides. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"
#include "common.h"

#include <ctype.h>
#include <errno.h>
#include <iniparser.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { K_STR, K_INT, K_BOOL, K_REAL } KeyType;

typedef struct Key {
    const char *name; /* section.key */
    KeyType type;
    size_t off, cap;  /* offset in EffConfig; cap for strings */
    const char *def;
    double lo, hi;    /* numeric range; for strings a '|' list of choices in help */
    const char *choices;
    const char *help;
} Key;

#define S(f) offsetof(EffConfig, f), sizeof(((EffConfig *)0)->f)
#define N(f) offsetof(EffConfig, f), 0
static const Key keys[] = {
    {"model.name", K_STR, S(model), "efficientnet-b0", 0, 0, "efficientnet-b0|efficientnet-b1|efficientnet-b2|efficientnet-b3|efficientnet-b4|efficientnet-b5|efficientnet-b6|efficientnet-b7", "model"},
    {"model.resolution", K_INT, N(resolution), "0", 0, 2048, NULL, "input resolution (0: the model's own, e.g. 224 for B0)"},
    {"model.classes", K_INT, N(classes), "0", 0, 65536, NULL, "number of classes (0: the data's, after data.classes; CIFAR-10: 10)"},
    {"model.dropout", K_REAL, N(dropout), "-1", -1, 0.95, NULL, "dropout rate (-1: the model's own); block rates scale with it (seed variant; torchvision: the classifier's only)"},
    {"model.variant", K_STR, S(variant), "seed", 0, 0, "seed|torchvision", "architecture: the seed's, or torchvision's efficientnet_bN (its state_dict keys, so its weights import name for name; docs/model.md)"},
    {"model.stochastic_depth", K_REAL, N(stochastic_depth), "-1", -1, 1, NULL, "torchvision variant: stochastic_depth_prob, block i of n drops its residual branch per image at this x i / n (-1: the variant's own, 0.2; the seed has none)"},
    {"model.stem_stride", K_INT, N(stem_stride), "2", 1, 2, NULL, "the stem conv's stride: 2 is the model's own (224 -> 112); 1 keeps the input's resolution through the stem, the usual CIFAR adaptation at 32x32 (about 4x the compute; a checkpoint records it)"},
    {"train.epochs", K_INT, N(epochs), "40", 1, 100000, NULL, "epochs"},
    {"train.max_steps", K_INT, N(max_steps), "0", 0, 1e12, NULL, "stop after this many optimizer steps in total (0: no limit)"},
    {"train.batch", K_INT, N(batch), "32", 1, 65536, NULL, "images per rank per micro-batch"},
    {"train.accum", K_INT, N(accum), "1", 1, 1024, NULL, "gradient accumulation: micro-batches per optimizer step"},
    {"train.max_batch", K_INT, N(max_batch), "0", 0, 65536, NULL, "largest micro-batch that fits in memory, for a resume on another rank count (0: the checkpoint's, or train.batch if larger)"},
    {"train.recompute", K_STR, S(recompute), "none", 0, 0, "none|bnswish", "activation recomputation: bnswish keeps only the BN inputs of the blocks' expand and depthwise BN+swish and rebuilds their outputs in backward (bit-identical gradients, less memory, one more pass over them)"},
    {"train.label_smoothing", K_REAL, N(label_smoothing), "0", 0, 0.99, NULL, "cross-entropy label smoothing"},
    {"train.init_from", K_STR, S(init_from), "", 0, 0, NULL, "fine-tuning: start from this checkpoint's weights (no optimizer state or position; a classifier of another class count is re-initialised as a fresh nn.Linear would be); ignored by --resume"},
    {"train.init_strict", K_BOOL, N(init_strict), "false", 0, 1, NULL, "train.init_from: refuse any re-initialised or ignored tensor"},
    {"train.freeze", K_STR, S(freeze), "none", 0, 0, "none|stem|1|2|3|4|5|6|7", "fine-tuning: freeze the stem (stem) or the stem and stages 1..N of the stage table (torchvision: features.0 .. features.N); frozen tensors take no gradient, no all-reduce and no optimizer state, and backward stops above them (docs/finetuning.md)"},
    {"train.freeze_bn", K_STR, S(freeze_bn), "train", 0, 0, "train|eval", "the frozen layers' BatchNorms: train normalises with batch statistics and updates the running ones; eval uses the running statistics and leaves them unchanged"},
    {"train.resume_fallback", K_STR, S(resume_fallback), "none", 0, 0, "none|best", "--resume when the checkpoint fails its checksum (damaged on disk): none stops with an error; best resumes from OUTPUT_DIR/best.h5 instead"},
    {"train.seed", K_INT, N(seed), "1", 0, 2147483647.0, NULL, "seed of weights, sampler, augmentation and dropout"},
    {"train.threads", K_INT, N(threads), "0", 0, 4096, NULL, "OpenMP/BLAS threads per rank (0: OMP_NUM_THREADS if set, else the cores of the rank's affinity mask over the ranks on its node sharing them)"},
    {"train.backend", K_STR, S(backend), "auto", 0, 0, "auto|cpu|cuda", "compute backend (auto: cuda when this build has CUDA and every rank sees a GPU, else cpu)"},
    {"train.precision", K_STR, S(precision), "bf16", 0, 0, "fp32|bf16|fp16", "CUDA math precision (fp16 adds dynamic loss scaling); the CPU backend is always fp32"},
    {"train.deterministic", K_BOOL, N(deterministic), "false", 0, 1, NULL, "CUDA: only deterministic cuDNN algorithms (our own kernels always are)"},
    {"train.cuda_graph", K_STR, S(cuda_graph), "auto", 0, 0, "auto|on|off", "CUDA: capture the step (forward, backward, all-reduce) in a CUDA graph after one eager step (auto: when train.accum = 1)"},
    {"optim.name", K_STR, S(optimizer), "adam", 0, 0, "adam|adamw|sgd", "optimizer (adam: L2 weight decay as the seed; adamw: decoupled)"},
    {"optim.lr", K_REAL, N(lr), "0.001", 0, 100, NULL, "peak learning rate"},
    {"optim.weight_decay", K_REAL, N(weight_decay), "0.0001", 0, 10, NULL, "weight decay"},
    {"optim.beta1", K_REAL, N(beta1), "0.9", 0, 0.999999, NULL, "Adam beta1"},
    {"optim.beta2", K_REAL, N(beta2), "0.999", 0, 0.99999999, NULL, "Adam beta2"},
    {"optim.eps", K_REAL, N(eps), "1e-8", 1e-30, 1, NULL, "Adam epsilon"},
    {"optim.momentum", K_REAL, N(momentum), "0.9", 0, 0.999999, NULL, "SGD momentum"},
    {"optim.nesterov", K_BOOL, N(nesterov), "false", 0, 1, NULL, "SGD Nesterov momentum"},
    {"optim.backbone_lr_mult", K_REAL, N(backbone_lr_mult), "1", 0, 100, NULL, "learning rate of every parameter except the classifier (classifier.*): optim.lr x this, with every schedule and optimizer (0: only the head trains)"},
    {"optim.shard", K_STR, S(shard), "auto", 0, 0, "auto|on|off", "ZeRO-1: each rank keeps and updates only its 1/N of the optimizer state, then the parameters are all-gathered (with world > 1; auto: on the CPU backend only; on: also over NCCL on CUDA, not yet run on a GPU)"},
    {"schedule.name", K_STR, S(schedule), "constant", 0, 0, "constant|cosine", "learning-rate schedule (cosine: linear warmup, then cosine to min_lr)"},
    {"schedule.warmup_steps", K_INT, N(warmup_steps), "0", 0, 1e12, NULL, "linear warmup steps (cosine schedule)"},
    {"schedule.min_lr", K_REAL, N(min_lr), "0", 0, 100, NULL, "final learning rate of the cosine schedule"},
    {"data.dir", K_STR, S(data_dir), "data/cifar10-h5", 0, 0, NULL, "directory with index.txt and the shards (made by cifar10-to-h5)"},
    {"data.classes", K_STR, S(class_subset), "", 0, 0, NULL, "train and test on these classes only, e.g. 5,6,7,8,9, relabelled 0..k-1 in that order (empty: all)"},
    {"data.augment", K_BOOL, N(augment), "true", 0, 1, NULL, "the seed's train augmentation (false: resize + normalize only)"},
    {"data.train_subset", K_INT, N(train_subset), "0", 0, 1e9, NULL, "use only the first N train samples (0: all)"},
    {"data.test_subset", K_INT, N(test_subset), "0", 0, 1e9, NULL, "evaluate only the first N test samples (0: all)"},
    {"data.loader_threads", K_INT, N(loader_threads), "1", 1, 64, NULL, "augmentation threads per rank (besides the prefetch thread)"},
    {"data.pipeline", K_STR, S(pipeline), "auto", 0, 0, "auto|cifar|imagenet", "augmentation: cifar is the seed's (resize, flip, rotation, pad + crop, colour jitter); imagenet is torchvision's recipe (RandomResizedCrop + flip; evaluation resizes the shorter side to data.eval_resize and centre-crops); auto: cifar for CIFAR-10 shards, imagenet for images-to-h5 shards"},
    {"data.normalize", K_STR, S(normalize), "auto", 0, 0, "auto|seed|dataset|imagenet", "Normalize mean and std: seed (the seed's CIFAR-10 constants), dataset (the shards' train_mean/train_std), imagenet (0.485,0.456,0.406 / 0.229,0.224,0.225, for ImageNet weights); auto: seed for CIFAR-10 shards, dataset for images-to-h5 shards"},
    {"data.interpolation", K_STR, S(interpolation), "bilinear", 0, 0, "bilinear|bicubic", "filter of every resize in the loader (PIL's, as torchvision's InterpolationMode; torchvision's EfficientNet weights were evaluated with bicubic)"},
    {"data.eval_resize", K_INT, N(eval_resize), "0", 0, 65536, NULL, "imagenet pipeline: evaluation resizes the shorter side to this, then centre-crops model.resolution (0: resolution / 0.875, 256 for 224)"},
    {"data.crop_scale_min", K_REAL, N(crop_scale_min), "0.08", 0.01, 1, NULL, "imagenet pipeline: RandomResizedCrop's smallest area fraction (scale = (min, 1))"},
    {"data.gpu_augment", K_STR, S(gpu_augment), "auto", 0, 0, "auto|on|off", "CUDA backend: keep the uint8 train set on the GPU and augment there (auto: on with the CUDA backend)"},
    {"output.dir", K_STR, S(output_dir), "runs/default", 0, 0, NULL, "directory for the log, metrics.jsonl and checkpoints"},
    {"output.log_interval", K_INT, N(log_interval), "100", 1, 1e9, NULL, "log every N optimizer steps"},
    {"output.eval_interval", K_INT, N(eval_interval), "1", 1, 100000, NULL, "evaluate every N epochs"},
    {"output.checkpoint_interval", K_INT, N(checkpoint_interval), "1", 1, 100000, NULL, "write last.h5 every N epochs"},
    {"output.keep_every", K_INT, N(keep_every), "0", 0, 100000, NULL, "also keep epoch-NNNN.h5 every K epochs (0: never)"},
    {"output.keep", K_INT, N(keep), "0", 0, 100000, NULL, "number of epoch-NNNN.h5 files to keep (0: all)"},
    {"output.trace", K_BOOL, N(trace), "false", 0, 1, NULL, "write a per-rank timeline, OUTPUT_DIR/trace-rankR.json (Chrome trace format; slurm/trace_merge.py joins the ranks)"},
    {"output.lock", K_BOOL, N(lock), "true", 0, 1, NULL, "hold OUTPUT_DIR/effnet.lock for the run: a second job on the same directory is refused, naming the holder"},
    {"output.lock_wait_s", K_REAL, N(lock_wait_s), "30", 0, 86400, NULL, "how long a job waits for the directory's lock (a requeue overlapping the old run's teardown) before it refuses to start"},
    {"output.comm_timing", K_BOOL, N(comm_timing), "false", 0, 1, NULL, "barrier before each all-reduce so the timing summary splits load-imbalance wait from transfer"},
    {"comm.timeout_s", K_REAL, N(comm_timeout), "300", 1, 1e6, NULL, "watchdog (MPI and NCCL): a collective waiting longer names the ranks that did not arrive and aborts the job (exit 4)"},
    {"comm.bucket_mb", K_REAL, N(bucket_mb), "4", 0.01, 4096, NULL, "gradient bucket size in MiB, NCCL and MPI (buckets start as backward finishes them)"},
    {"comm.overlap", K_INT, N(overlap), "1", 0, 1, NULL, "MPI path: all-reduce gradient buckets during backward (0: one all-reduce after it)"},
    {"debug.nan_at_step", K_INT, N(nan_at_step), "0", 0, 1e12, NULL, "test hook: make the loss NaN at this global step (0: off)"},
    {"debug.dump_indices", K_INT, N(dump_indices), "0", 0, 1, NULL, "write the global sample indices of every step to OUTPUT_DIR/indices-rankR.txt (tests of resume)"},
    {"debug.sleep_ms", K_INT, N(sleep_ms), "0", 0, 100000, NULL, "test hook: sleep this long per step (0: off)"},
    {"debug.setup_sleep_ms", K_INT, N(setup_sleep_ms), "0", 0, 100000, NULL, "test hook: sleep this long in start-up, after the data is loaded (0: off); makes start-up signal tests deterministic"},
    {"debug.sleep_rank", K_INT, N(sleep_rank), "-1", -1, 1e6, NULL, "test hook: only this rank sleeps debug.sleep_ms (-1: every rank); makes a straggler"},
};
#undef S
#undef N
enum { NKEYS = sizeof keys / sizeof keys[0] };

static int fail(char *err, size_t n, const char *fmt, ...) EFF_PRINTF(3, 4);
static int fail(char *err, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return 0;
}

static const Key *find_key(const char *name) {
    for (int i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0) return &keys[i];
    return NULL;
}

static int choice_ok(const char *choices, const char *v) {
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *q = strchr(p, '|');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0) return 1;
        if (!q) break;
        p = q + 1;
    }
    return 0;
}

static int set_value(EffConfig *c, const Key *k, const char *v, const char *where, char *err, size_t n) {
    char *base = (char *)c + k->off;
    switch (k->type) {
    case K_STR:
        if (strlen(v) >= k->cap) return fail(err, n, "%s: %s: value too long (max %zu characters)", where, k->name, k->cap - 1);
        if (k->choices && !choice_ok(k->choices, v))
            return fail(err, n, "%s: %s: '%s' is not one of %s", where, k->name, v, k->choices);
        snprintf(base, k->cap, "%s", v);
        return 1;
    case K_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes")) *(long *)base = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no")) *(long *)base = 0;
        else return fail(err, n, "%s: %s: '%s' is not a boolean (true/false)", where, k->name, v);
        return 1;
    case K_INT: {
        long x;
        if (!eff_parse_int(v, (long)k->lo, (long)k->hi, &x)) {
            char *end;
            errno = 0;
            strtol(v, &end, 10);
            if (end == v || *end) return fail(err, n, "%s: %s: '%s' is not an integer", where, k->name, v);
            return fail(err, n, "%s: %s: %s is out of range [%.0f, %.0f]", where, k->name, v, k->lo, k->hi);
        }
        *(long *)base = x;
        return 1;
    }
    case K_REAL: {
        double x;
        if (!eff_parse_double(v, &x) || !isfinite(x)) return fail(err, n, "%s: %s: '%s' is not a number", where, k->name, v);
        if (x < k->lo || x > k->hi) return fail(err, n, "%s: %s: %s is out of range [%g, %g]", where, k->name, v, k->lo, k->hi);
        *(double *)base = x;
        return 1;
    }
    }
    return fail(err, n, "internal: bad key type");
}

void eff_config_defaults(EffConfig *c) {
    char err[256];
    memset(c, 0, sizeof *c);
    for (int i = 0; i < NKEYS; i++)
        EFF_CHECK(set_value(c, &keys[i], keys[i].def, "defaults", err, sizeof err), "%s", err);
}

int eff_config_set(EffConfig *c, const char *assignment, char *err, size_t n) {
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment) return fail(err, n, "--set '%s': expected section.key=value", assignment);
    char name[96];
    size_t len = (size_t)(eq - assignment);
    if (len >= sizeof name) return fail(err, n, "--set '%s': key too long", assignment);
    memcpy(name, assignment, len);
    name[len] = '\0';
    const Key *k = find_key(name);
    if (!k) return fail(err, n, "--set: unknown key '%s' (see 'effnet train --help')", name);
    return set_value(c, k, eq + 1, "--set", err, n);
}

/* Try dir/name and dir/name.ini; 1 and the path in out when one is a file. */
static int try_dir(const char *dir, size_t dlen, const char *name, char *out, size_t cap) {
    static const char *const suffix[] = {"", ".ini"};
    for (int i = 0; i < 2; i++) {
        snprintf(out, cap, "%.*s/%s%s", (int)dlen, dir, name, suffix[i]);
        FILE *f = fopen(out, "r");
        if (f) {
            fclose(f);
            return 1;
        }
    }
    return 0;
}

/* The directory of the running executable, from /proc/self/exe. */
static int exe_dir(char *out, size_t cap) {
    ssize_t len = readlink("/proc/self/exe", out, cap - 1);
    if (len <= 0) return 0;
    out[len] = '\0';
    char *slash = strrchr(out, '/');
    if (!slash) return 0;
    *slash = '\0';
    return 1;
}

int eff_config_find(const char *name, char *out, size_t cap, char *searched, size_t scap) {
    snprintf(out, cap, "%s", name);
    snprintf(searched, scap, "%s", name);
    FILE *f = fopen(name, "r");
    if (f) {
        fclose(f);
        return 1;
    }
    if (strchr(name, '/')) return 0; /* a path, not a name */
    const char *env = getenv("EFFNET_CONFIG_PATH");
    for (const char *p = env; p && *p;) {
        const size_t len = strcspn(p, ":");
        if (len && try_dir(p, len, name, out, cap)) return 1;
        p += len + (p[len] == ':');
    }
    char dir[1024], cand[1200];
    if (exe_dir(dir, sizeof dir)) {
        /* installed: PREFIX/bin -> PREFIX/share/effnet/configs; built: build/ -> the source tree's configs */
        snprintf(cand, sizeof cand, "%s/../share/effnet/configs", dir);
        if (try_dir(cand, strlen(cand), name, out, cap)) return 1;
        snprintf(cand, sizeof cand, "%s/../configs", dir);
        if (try_dir(cand, strlen(cand), name, out, cap)) return 1;
        snprintf(searched, scap, "%s, $EFFNET_CONFIG_PATH (%s), %s/../share/effnet/configs, %s/../configs", name,
                 env ? env : "unset", dir, dir);
    }
    snprintf(out, cap, "%s", name);
    return 0;
}

int eff_config_load_file(EffConfig *c, const char *path, char *err, size_t n) {
    FILE *f = fopen(path, "r");
    if (!f) return fail(err, n, "config '%s': cannot open: %s", path, strerror(errno));
    fclose(f);
    dictionary *d = iniparser_load(path);
    if (!d) return fail(err, n, "config '%s': INI syntax error (iniparser's message above)", path);
    int ok = 1;
    for (int s = 0; ok && s < iniparser_getnsec(d); s++) {
        const char *sec = iniparser_getsecname(d, s);
        int nk = iniparser_getsecnkeys(d, sec);
        const char **ks = nk > 0 ? eff_calloc((size_t)nk, sizeof(char *), "config keys") : NULL;
        if (nk > 0) iniparser_getseckeys(d, sec, ks);
        for (int i = 0; ok && i < nk; i++) {
            /* iniparser gives "section:key", lower-cased */
            char name[128];
            snprintf(name, sizeof name, "%s", ks[i]);
            char *colon = strchr(name, ':');
            if (colon) *colon = '.';
            const Key *k = find_key(name);
            char where[1100];
            snprintf(where, sizeof where, "config '%s'", path);
            if (!k) ok = fail(err, n, "%s: unknown key '%s' (see 'effnet train --help')", where, name);
            else ok = set_value(c, k, iniparser_getstring(d, ks[i], ""), where, err, n);
        }
        eff_free((void *)ks);
    }
    /* keys before any [section] are not allowed: every key lives in a section */
    for (ssize_t i = 0; ok && i < d->size; i++)
        if (d->key[i] && d->val[i] && !strchr(d->key[i], ':'))
            ok = fail(err, n, "config '%s': key '%s' is outside a [section]", path, d->key[i]);
    iniparser_freedict(d);
    return ok;
}

int eff_config_validate(const EffConfig *c, char *err, size_t n) {
    if (!strcmp(c->schedule, "cosine") && c->warmup_steps < 0) return fail(err, n, "schedule.warmup_steps must be >= 0");
    if (c->min_lr > c->lr) return fail(err, n, "schedule.min_lr %g exceeds optim.lr %g", c->min_lr, c->lr);
    if (c->resolution != 0 && c->resolution < 16) return fail(err, n, "model.resolution %ld too small (>= 16, or 0)", c->resolution);
    if (!c->data_dir[0]) return fail(err, n, "data.dir is empty");
    if (!c->output_dir[0]) return fail(err, n, "output.dir is empty");
    if (!strcmp(c->freeze, "none") && !strcmp(c->freeze_bn, "eval"))
        return fail(err, n, "train.freeze_bn = eval, but train.freeze = none: no layer is frozen\nHINT: set train.freeze "
                    "(stem or 1..7), or leave train.freeze_bn = train");
    return 1;
}

int eff_config_freeze_stages(const EffConfig *c) {
    if (!strcmp(c->freeze, "none")) return -1;
    if (!strcmp(c->freeze, "stem")) return 0;
    return atoi(c->freeze); /* "1".."7": the key's choices */
}

void eff_config_help(FILE *f) {
    fprintf(f, "config keys (INI: [section] then key = value; override with --set section.key=value):\n");
    for (int i = 0; i < NKEYS; i++) {
        const Key *k = &keys[i];
        fprintf(f, "  %-28s default %-18s %s", k->name, k->def, k->help);
        if (k->choices) fprintf(f, " [%s]", k->choices);
        fprintf(f, "\n");
    }
}

/* " key = value " -> key, value (both trimmed, in place); 0 if no '='. */
static int split_assignment(char *line, char **key, char **value) {
    char *eq = strchr(line, '=');
    if (!eq) return 0;
    *eq = '\0';
    *key = line;
    *value = eq + 1;
    for (char **p = key; p; p = p == key ? value : NULL) {
        while (**p == ' ' || **p == '\t') (*p)++;
        char *e = *p + strlen(*p);
        while (e > *p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) *--e = '\0';
    }
    return 1;
}

int eff_config_from_ini_text(EffConfig *c, const char *text, int *unknown, char *err, size_t n) {
    char section[64] = "", line[2048];
    *unknown = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        const size_t len = nl ? (size_t)(nl - p) : strlen(p);
        snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1), p);
        p += len + (nl != NULL);
        char *key, *value, name[160];
        if (line[0] == '[') {
            char *close = strchr(line, ']');
            if (close) snprintf(section, sizeof section, "%.*s", (int)(close - line - 1), line + 1);
            continue;
        }
        if (line[0] == ';' || line[0] == '#' || !split_assignment(line, &key, &value)) continue;
        snprintf(name, sizeof name, "%s.%s", section, key);
        const Key *k = find_key(name);
        if (!k) { (*unknown)++; continue; }
        if (!set_value(c, k, value, "the checkpoint's config", err, n)) return 0;
    }
    return 1;
}

char *eff_config_to_ini(const EffConfig *c) {
    size_t cap = 8192, len = 0;
    char *out = eff_malloc(cap, "config text");
    char section[32] = "";
    for (int i = 0; i < NKEYS; i++) {
        const Key *k = &keys[i];
        const char *dot = strchr(k->name, '.');
        char sec[32], line[1200];
        snprintf(sec, sizeof sec, "%.*s", (int)(dot - k->name), k->name);
        const char *base = (const char *)c + k->off;
        int w = 0;
        if (strcmp(sec, section)) {
            w += snprintf(line + w, sizeof line - w, "%s[%s]\n", section[0] ? "\n" : "", sec);
            snprintf(section, sizeof section, "%s", sec);
        }
        switch (k->type) {
        case K_STR: w += snprintf(line + w, sizeof line - w, "%s = %s\n", dot + 1, base); break;
        case K_BOOL: w += snprintf(line + w, sizeof line - w, "%s = %s\n", dot + 1, *(const long *)base ? "true" : "false"); break;
        case K_INT: w += snprintf(line + w, sizeof line - w, "%s = %ld\n", dot + 1, *(const long *)base); break;
        case K_REAL: w += snprintf(line + w, sizeof line - w, "%s = %.17g\n", dot + 1, *(const double *)base); break;
        }
        if (len + (size_t)w + 1 > cap) {
            cap *= 2;
            char *nb = eff_malloc(cap, "config text");
            memcpy(nb, out, len);
            eff_free(out);
            out = nb;
        }
        memcpy(out + len, line, (size_t)w);
        len += (size_t)w;
    }
    out[len] = '\0';
    return out;
}
