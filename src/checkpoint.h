/* checkpoint.h: HDF5 checkpoints (model, optimizer, training state, config,
 * provenance), written atomically by rank 0 and loadable by PyTorch + h5py.
 * The file layout is specified in docs/checkpoint-format.md. */
#ifndef EFFNET_CHECKPOINT_H
#define EFFNET_CHECKPOINT_H

#include "model.h"

#include <stddef.h>
#include <stdint.h>

/* Version 1 throughout: attributes added later (the fp16 scaler's, the batch
 * split of /train) are optional, and a file without them reads as 0 (see
 * docs/checkpoint-format.md, "Versioning"): no older reader misreads a newer
 * file, and every older file still loads. */
#define EFF_CKPT_SCHEMA_VERSION 1
#define EFF_CKPT_FORMAT "effnet-checkpoint"

/* The file's first EFF_CKPT_USERBLOCK bytes are an HDF5 user block (HDF5 and
 * h5py skip it) holding, as NUL-padded text, EFF_CKPT_MAGIC then the lines
 * "sha256 <hex>" and "bytes <n>": the SHA-256 and length of the rest of the
 * file. Readers check it before HDF5 reads a byte (eff_ckpt_verify), so a
 * file damaged on disk is refused with a clear error instead of being parsed.
 * Files without it (older effnet, h5py-written imports) still load. */
#define EFF_CKPT_USERBLOCK 512
#define EFF_CKPT_MAGIC "effnet-checkpoint-sha256 1\n"

/* What eff_checkpoint_save wrote: the whole file's SHA-256 and size (what
 * sha256sum and ls -l report), for the log. */
typedef struct {
    char sha256[65];
    long long bytes;
} EffCkptWritten;

/* Check path's user block against the rest of the file. 1: verified; 0: the
 * file has no effnet checksum (it starts with HDF5's own signature: older
 * effnet, or written by another tool); -1: missing, unreadable, truncated or
 * damaged, with err saying which and what to do. */
int eff_ckpt_verify(const char *path, char *err, size_t errlen);

typedef struct EffTrainState {
    int64_t epoch;          /* epoch in progress (1-based) when saved */
    int64_t step_in_epoch;  /* optimizer steps completed within that epoch (sampler position) */
    int64_t global_step;    /* optimizer steps completed in total */
    int64_t best_epoch;     /* 0 if none yet */
    double best_acc;        /* percent, -1 if none yet */
    double last_acc;        /* percent, -1 if none yet */
    double last_loss;       /* test loss of the last eval, or NaN */
    uint64_t seed;          /* run seed: every RNG stream (sampler, augmentation, dropout) is a pure function of
                               (seed, epoch/step, index), so this plus the counters is the full RNG state */
    int world_size;
    int64_t batch_per_rank; /* the micro-batch: images per rank per forward (BN statistics and dropout keys) */
    int64_t accum;          /* micro-batches per optimizer step */
    int64_t global_batch;   /* world_size x batch_per_rank x accum: the recipe's batch, kept by elastic resume.
                               All three 0 when loaded from a file written before elastic resume: the
                               driver then takes batch and accum from the stored config */
    double lr;              /* current learning rate (schedule state is a pure function of global_step; stored
                               for provenance) */
    double loss_scale;      /* fp16 dynamic loss scale (src/amp.h); 0 when the run does not scale (bf16, fp32,
                               CPU) or the checkpoint predates it */
    int64_t loss_scale_good_steps, loss_scale_skipped; /* the scaler's growth counter and skipped-step count */
    /* Filled by eff_checkpoint_load from /optimizer's "name" attribute ("" if the
     * file has no /optimizer); ignored by eff_checkpoint_save, which takes the name
     * as an argument. Lets a resume check that the optimizer did not change. */
    char optimizer[32];
} EffTrainState;

/* Write model params + BN buffers (+ num_batches_tracked per BN as an int64
 * scalar, value m->bn_batches) under /model/<state_dict key> in PyTorch layout,
 * the optimizer moments (m->adam_m, m->adam_v) under /optimizer/exp_avg/<key>
 * and /optimizer/exp_avg_sq/<key> in PyTorch layout with attributes step =
 * m->adam_t and name = optimizer_name -- for the trainable parameters only:
 * the optimizer state must be one range, [m->train_lo, total) (a sharded
 * state is gathered first), and with train.freeze the frozen tensors have no
 * moments and /optimizer gets attribute frozen = their count -- the training state as attributes of
 * /train, and as root attributes: format, schema_version, model, classes,
 * resolution, created, config (config_ini; NULL is stored as ""), hdf5_version,
 * the variant (only when not the seed: absent reads as seed), stem_stride
 * (only when not 2: absent reads as 2), and the n_prov
 * provenance pairs (a key may not repeat a reserved name).
 *
 * The file starts with a user block holding the SHA-256 of the rest
 * (EFF_CKPT_USERBLOCK); returned is the SHA-256 of the whole file.
 *
 * Atomic: the file is built in memory (HDF5 core driver; about twice the
 * file's size in host memory while saving), written to PATH.tmp.<pid> in the
 * same directory, fsynced, closed, renamed onto PATH, and the directory is
 * fsynced. On any HDF5 or I/O error, and for a NaN/Inf in any tensor, it
 * removes the temporary file, leaves PATH untouched, and exits through
 * EFF_FATAL with a message naming the file and what failed. */
EffCkptWritten eff_checkpoint_save(const char *path, const EffModel *m, const EffTrainState *st,
                                   const char *optimizer_name, int resolution, const char *config_ini,
                                   const char *const *prov_keys, const char *const *prov_vals, int n_prov);

/* train.init_from: what eff_checkpoint_init_from did, tensor by tensor. */
typedef struct {
    int loaded;             /* tensors copied from the file */
    int reinit, ignored;    /* kept as initialised (shape differs: the classifier), in the file but not the model */
    char reinit_names[512], ignored_names[512]; /* comma-separated, cut short with ", ..." */
    int file_classes;
    int file_stem_stride; /* the checkpoint's stem stride (2 for every file without the attribute) */
} EffInitReport;

/* Weights only (fine-tuning): copy /model's parameters and BN buffers into m
 * (created and initialised with the same model name, any class count), with
 * no optimizer state or training position. A tensor whose shape differs is
 * allowed only for the classifier (classifier.*), which then keeps its fresh
 * initialisation; a tensor of the model missing from the file, or of another
 * shape elsewhere, is an error; tensors of the file that the model lacks are
 * ignored. strict: any re-initialised or ignored tensor is an error too. */
void eff_checkpoint_init_from(const char *path, EffModel *m, int strict, EffInitReport *rep);

/* ---- reading: one open/validate/key API for eff_checkpoint_peek,
 * eff_checkpoint_load and `effnet ckpt` ------------------------------------ */

typedef struct EffCkptFile EffCkptFile; /* an open checkpoint whose header passed the checks */

typedef struct EffCkptHeader {
    char model[64];         /* root attribute 'model' as stored ("efficientnet-b0", or "b0") */
    char variant[16];       /* root attribute 'variant' ("torchvision"); "seed" when absent (every older file) */
    int stem_stride;        /* root attribute 'stem_stride' (model.stem_stride = 1); 2 when absent (every older file) */
    int64_t schema_version; /* EFF_CKPT_SCHEMA_VERSION: another one does not open */
    int classes, resolution;
    long long bytes;        /* the file's size */
    int checksum;           /* 1: its SHA-256 header was verified on open; 0: it has none (older, or h5py-written) */
} EffCkptHeader;

/* Open PATH read-only and check its header: format, schema version, model,
 * classes, resolution. Returns NULL with a message naming the file in err for
 * a missing file, a directory, a file that is not HDF5, a truncated or damaged
 * one, a wrong format or schema version, a missing or bad header attribute.
 * HDF5's automatic error printing is off while the file is open (our
 * messages quote its innermost error); close files in the reverse order. */
EffCkptFile *eff_ckpt_open(const char *path, char *err, size_t errlen);
/* Close and free f. Returns 1, or 0 with "closing checkpoint 'PATH' failed" in err. */
int eff_ckpt_close(EffCkptFile *f, char *err, size_t errlen);
const EffCkptHeader *eff_ckpt_header(const EffCkptFile *f);
const char *eff_ckpt_path(const EffCkptFile *f);
/* The model spec the header names (name, variant, stem stride); 0 if effnet does not know it. */
int eff_ckpt_spec(const EffCkptFile *f, EffModelSpec *spec);

/* Is name a root attribute of the header, set by eff_checkpoint_save itself
 * (format, schema_version, model, classes, resolution, created, config,
 * hdf5_version, variant, stem_stride)? The other root attributes are provenance. */
int eff_ckpt_header_attr(const char *name);

/* The functions below that take an EffCkptFile exit through EFF_FATAL,
 * naming the file, when an HDF5 call fails on it. */

/* Does object `name` ("/model", "/optimizer/exp_avg", ...) exist? */
int eff_ckpt_exists(EffCkptFile *f, const char *name);
/* The number of links in group grp; 0 if there is no such group. */
long long eff_ckpt_group_size(EffCkptFile *f, const char *grp);

/* A key of the model's state_dict, in PyTorch's order. */
typedef struct EffCkptKey {
    char name[128];
    int ndim;
    int64_t shape[4];     /* PyTorch's */
    size_t numel;
    EffParamKind kind;    /* of its view; num_batches_tracked: EFF_KIND_BUFFER */
    int is_param;         /* a parameter (m->ptab): also a key of /optimizer/exp_avg{,_sq} */
    int is_int;           /* num_batches_tracked: an integer scalar */
} EffCkptKey;

typedef struct EffCkptKeys {
    EffCkptKey *k;
    int n;
} EffCkptKeys;

/* The state_dict keys of m (its tables are enough: eff_model_build_tables):
 * each parameter and, after a BN's bias, its running_mean, running_var and
 * num_batches_tracked. Free with eff_ckpt_keys_free. */
void eff_ckpt_keys(const EffModel *m, EffCkptKeys *out);
void eff_ckpt_keys_free(EffCkptKeys *ks);
/* The key called name, or NULL: is name a state_dict key of the model? */
const EffCkptKey *eff_ckpt_key_find(const EffCkptKeys *ks, const char *name);
/* Match the links of group grp against ks (params_only: the parameter keys
 * only), in name order; present[i] = 1 for each key i found (present may be
 * NULL). Returns NULL if every link is such a key, else the first one that
 * is not (malloc'd, free with eff_free). */
char *eff_ckpt_match(EffCkptFile *f, const char *grp, const EffCkptKeys *ks, int params_only, char *present);

/* How /model/<key> is stored. */
typedef struct EffCkptTensor {
    int ndim;
    int64_t shape[32];    /* H5S_MAX_RANK */
    int type_class;       /* H5T_class_t: H5T_INTEGER, H5T_FLOAT, ... */
    int is_float, is_int; /* type_class is H5T_FLOAT / H5T_INTEGER */
    char dtype[16];       /* float32, float64, int64, uint8, string, ... */
} EffCkptTensor;
/* Exits if /model/<key> is not a readable dataset. */
void eff_ckpt_tensor(EffCkptFile *f, const EffCkptKey *k, EffCkptTensor *out);
/* /model/<key>'s k->numel values converted to double (malloc'd, free with
 * eff_free); exits on a read error (a Fletcher-32 checksum error, say). */
double *eff_ckpt_read(EffCkptFile *f, const EffCkptKey *k);

/* An attribute, read whatever its type. */
typedef enum EffCkptAttrKind {
    EFF_CKPT_ATTR_STR, EFF_CKPT_ATTR_INT, EFF_CKPT_ATTR_UINT, EFF_CKPT_ATTR_FLOAT, EFF_CKPT_ATTR_OTHER
} EffCkptAttrKind;
typedef struct EffCkptAttr {
    char *name;
    EffCkptAttrKind kind;
    char *s;              /* STR: the text; OTHER: a description ("<int64, 3 values>") */
    long long i;          /* INT */
    unsigned long long u; /* UINT */
    double d;             /* FLOAT */
} EffCkptAttr;
typedef struct EffCkptAttrs {
    EffCkptAttr *a;
    int n, cap;
} EffCkptAttrs;
/* Every attribute of object obj ("/", "/train", "/optimizer") in name order.
 * Returns 0 with an empty list if obj does not exist. Free with eff_ckpt_attrs_free. */
int eff_ckpt_attrs(EffCkptFile *f, const char *obj, EffCkptAttrs *out);
void eff_ckpt_attrs_free(EffCkptAttrs *l);
const EffCkptAttr *eff_ckpt_attr_find(const EffCkptAttrs *l, const char *name);

/* Read the header without loading tensors: model name, classes, resolution,
 * format and schema check. Returns 1 on success; on failure writes a message
 * (naming the file) to err and returns 0: missing file, not HDF5, truncated,
 * wrong format or schema version, missing header attribute. */
int eff_checkpoint_peek(const char *path, char *model_name, size_t model_cap, int *classes, int *resolution, char *err,
                        size_t errlen);

/* Set spec's variant (and its stochastic depth) and stem stride to the
 * checkpoint's; 0 with a message naming the file in err when it cannot be read. */
int eff_checkpoint_peek_variant(const char *path, EffModelSpec *spec, char *err, size_t errlen);

/* Load into an already-created model of the same spec. Checks format, schema
 * version, model name, classes, that /model holds exactly the model's
 * state_dict keys, and every tensor's shape and type class (EFF_FATAL naming
 * the file and tensor on a mismatch; tensor data is Fletcher-32 checked).
 * Loads params, BN buffers and bn_batches; if load_optimizer, also the moments
 * and adam_t (the file must then have /optimizer; m's optimizer state must
 * be whole, eff_model_create's; the moments of tensors the file's run had
 * frozen, its /optimizer attribute frozen, load as zeros). Fills *st if non-NULL (the
 * file must then have /train). If config_out is non-NULL, returns the stored
 * config text (malloc'd, free with eff_free), or NULL if the file has none (a
 * file exported from PyTorch, say). /optimizer and /train are only required
 * when asked for, so a file with just the header and /model loads for
 * evaluation or fine-tuning. */
void eff_checkpoint_load(const char *path, EffModel *m, int load_optimizer, EffTrainState *st, char **config_out);

#endif
