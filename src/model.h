/* model.h: EfficientNet B0-B7 on top of the op boundary in backend.h:
 * parameter tables, activation buffers, and the hand-written forward and
 * backward passes. Two variants of the architecture (model.variant,
 * docs/model.md): the seed's, and torchvision's efficientnet_b0..b7. */
#ifndef EFFNET_MODEL_H
#define EFFNET_MODEL_H

#include "backend/backend.h"
#include "common.h"
#include "params.h"

#include <stdint.h>

/* The architecture variant (config model.variant). SEED: the seed blog's
 * module (SE squeeze from the expanded channels, no SE biases, ReLU in the
 * SE, element dropout in every block). TORCHVISION: torchvision 0.14's
 * efficientnet_bN (SE squeeze from the block's input channels, SE biases,
 * SiLU in the SE, stochastic depth on the residual blocks, B5-B7 BN eps 1e-3
 * and momentum 0.01, torchvision's state_dict keys and initialisation). */
typedef enum { EFF_VARIANT_SEED = 0, EFF_VARIANT_TORCHVISION = 1 } EffVariant;
const char *eff_variant_name(int variant); /* "seed", "torchvision" */
int eff_variant_parse(const char *s);      /* -1 if unknown */

/* Scaling coefficients from the seed's efficient_config table (torchvision's
 * efficientnet_bN use the same width, depth and dropout), and the variant. */
typedef struct EffModelSpec {
    char name[32];
    double width, depth;
    int resolution;
    double dropout;          /* the classifier's (and, for the seed, the blocks' scale) */
    int variant;             /* EffVariant */
    double stochastic_depth; /* torchvision's stochastic_depth_prob (0.2); 0 for the seed */
    int stem_stride;         /* the stem conv's stride: 2 (both variants' own), or 1 (model.stem_stride, the CIFAR
                                adaptation: the stem keeps the input's resolution) */
} EffModelSpec;

/* Fill *out for "efficientnet-b0".."efficientnet-b7" (or "b0".."b7"), the
 * seed variant; 0 if unknown. */
int eff_model_spec(const char *name, EffModelSpec *out);
/* Set the variant of *spec by name ("seed", "torchvision"), with that
 * variant's stochastic depth; 0 if the name is unknown. */
int eff_model_spec_set_variant(EffModelSpec *spec, const char *variant);
/* The spec of a config's model: name, variant and stochastic depth (< 0: the
 * variant's own). Exits with a message naming the bad value and the fix. */
void eff_model_spec_config(const char *name, const char *variant, double stochastic_depth, EffModelSpec *out);
/* model.stem_stride: 1 or 2, else exits naming the key and the value. */
void eff_model_spec_set_stem_stride(EffModelSpec *spec, long stride);
int eff_round_filters(int filters, double width); /* seed's _round_filters */
int eff_round_repeats(int repeats, double depth); /* seed's _round_repeats */

enum { EFF_PROF_CONV, EFF_PROF_PWCONV, EFF_PROF_DWCONV, EFF_PROF_BN, EFF_PROF_SE, EFF_PROF_ELEMWISE,
       EFF_PROF_HEAD, EFF_PROF_OPTIM, EFF_PROF_COUNT };
extern const char *const eff_prof_names[EFF_PROF_COUNT];

typedef struct EffBlock {
    int stage, cin, cout, ce, cse, k, stride, expand, residual;
    float drop; /* seed: element dropout on the block output (all blocks) */
    float sd;   /* torchvision: stochastic-depth rate (residual blocks; per image) */
    int Hi, Wi, Ho, Wo; /* spatial size for the current activation allocation */
    /* parameter offsets (floats) into the param/grad buffers */
    size_t w_expand, g0, b0, w_dw, g1, b1, w_se1, w_se2, w_proj, g2, b2;
    size_t b_se1, b_se2; /* SE biases (torchvision; unused by the seed) */
    /* running-stat offsets into the buffer table */
    size_t rm0, rv0, rm1, rv1, rm2, rv2;
    /* saved activations (backend memory; EffAct: the backend's act type) */
    EffAct *e_conv, *e_act, *d_conv, *d_act;       /* expand / depthwise conv out, after BN+swish */
    EffAct *se_out, *p_conv, *out;                 /* SE output, project conv out, block output */
    float *e_mean, *e_rstd, *d_mean, *d_rstd, *p_mean, *p_rstd; /* BN batch statistics */
    float *se_pooled, *se_hidden, *se_gate;        /* SE per-image vectors (fp32); se_hidden: see se_act */
} EffBlock;

typedef struct EffModel {
    const EffBackend *be;
    EffModelSpec spec;
    int classes, stem_c, head_c, nblocks, nconvs;
    EffBlock *blk;
    float bn_momentum, bn_eps, head_drop;
    int se_act;       /* EFF_SE_RELU (seed) or EFF_SE_SILU (torchvision: hidden holds 2 x N x Cse floats) */
    int se_bias;      /* the SE convs have biases (torchvision) */
    float label_smoothing; /* cross-entropy label smoothing (0: the seed) */
    /* Freezing (train.freeze, eff_model_set_freeze): the stem and the first
     * freeze_blocks blocks take no gradient. The parameter buffer is laid out
     * in forward order, so they are the prefix [0, train_lo): backward stops
     * at that boundary, and the optimizer ranges and the gradient exchange
     * cover [train_lo, total) only. freeze_bn_eval: their BNs run in eval
     * mode (running statistics used, not updated), and those statistics are
     * the prefix [0, bn_lo) of the buffer table. All 0 when nothing is frozen. */
    int freeze_stages; /* -1: nothing; 0: the stem; N: the stem and stages 1..N of the stage table */
    int freeze_blocks, freeze_bn_eval;
    size_t train_lo, bn_lo;
    /* optim.backbone_lr_mult: every parameter below fc_w (all but the
     * classifier) steps with lr x this (1: one learning rate) */
    float backbone_lr_mult;
    EffTable ptab; /* parameters; grads and Adam moments use the same offsets */
    EffTable btab; /* BN running statistics */
    size_t stem_w, stem_g, stem_b, stem_rm, stem_rv;
    size_t head_w, head_g, head_b, head_rm, head_rv, fc_w, fc_b;
    float *param, *grad, *adam_m, *adam_v, *bufs; /* backend memory */
    /* The optimizer state covers the parameter ranges opt_seg[0 .. opt_nseg):
     * all of them (one range), the trainable ones [train_lo, total) with
     * train.freeze, or one rank's pieces of those under ZeRO-1
     * (eff_model_set_optimizer_ranges); adam_m/adam_v hold those ranges'
     * opt_n floats back to back. */
    EffSeg *opt_seg;
    int opt_nseg;
    size_t opt_n;
    int64_t bn_batches; /* num_batches_tracked, identical for every BN */
    /* train.recompute = bnswish (set before eff_model_alloc_acts): the blocks'
     * BN+swish outputs (expand and depthwise) are not kept; every block
     * writes them into the two shared buffers rc_e / rc_d, and backward
     * rebuilds a block's from its saved BN input and statistics
     * (be->batchnorm_apply, bit-identical). Less memory, one more pass. */
    int recompute;
    EffAct *rc_e, *rc_d;
    long adam_t;
    /* activations for batch N at resolution R (eff_model_alloc_acts) */
    int N, R, H1, Hh; /* H1: after the stem; Hh: at the head */
    float *x, *stem_col;                           /* input batch (fp32), stem im2col (CPU only) */
    EffAct *stem_conv, *stem_act, *head_conv, *head_act, *pooled, *pooled_drop, *dpool;
    EffAct *gbuf[3];                               /* activation gradients */
    float *stem_mean, *stem_rstd, *head_mean, *head_rstd, *logits, *probs, *dlogits, *se_work;
    double *bn_work;
    int32_t *labels;
    uint64_t drop_key; /* dropout key of the last forward */
    int last_train;
    /* Called during backward whenever every gradient at offsets >= first is
     * final (after the head, after each block, after the stem), so a
     * data-parallel driver can start all-reducing those buckets at once. */
    void (*grad_ready)(void *arg, size_t first);
    void *grad_ready_arg;
    /* Called after every op while set (same arg): lets a host-side
     * communicator progress its non-blocking collectives between ops. */
    void (*progress)(void *arg);
    /* Called by the forward before it reads the parameters below offset
     * `end` (before the stem, each block and the head), while set: lets
     * ZeRO-1 wait for just those parameters of an all-gather in flight. */
    void (*params_needed)(void *arg, size_t end);
    void *params_needed_arg;
    /* eff_model_train_step: capture the step into a CUDA graph (backends
     * with graph_begin) after one eager warm-up step, then replay it */
    int use_graph;
    long train_steps;
    /* profiling (seconds per op family), on when profile != 0 */
    int profile;
    double prof[EFF_PROF_COUNT];
} EffModel;

/* The model's layout without any backend memory: the parameter and buffer
 * tables (ptab, btab: PyTorch state_dict names and shapes, offsets), the
 * blocks (stage, channels, kernel, stride) and the offsets into the tables;
 * m->be and every buffer stay NULL. For tools that need the keys, shapes or
 * block -> stage map but no weights (effnet ckpt). eff_model_destroy frees it. */
void eff_model_build_tables(EffModel *m, const EffModelSpec *spec, int classes);
/* eff_model_build_tables, then allocate parameters, gradients, moments and
 * running stats. Weights are left zero: call eff_model_init_weights. */
void eff_model_create(EffModel *m, const EffBackend *be, const EffModelSpec *spec, int classes);
void eff_model_destroy(EffModel *m);
/* The variant's initialisation from a seeded generator, drawn in PyTorch's
 * element order. Seed: PyTorch's defaults (kaiming_uniform a=sqrt(5) for
 * conv/linear, BN weight 1 / bias 0). Torchvision: its EfficientNet's own
 * (kaiming_normal_ fan_out for convs, conv biases 0, Linear U(+-1/sqrt(out))
 * with bias 0). Both: running mean 0 / var 1. */
void eff_model_init_weights(EffModel *m, uint64_t seed);
/* The classifier as a fresh nn.Linear(head_c, classes) would be: weight and
 * bias U(+-1/sqrt(head_c)), from a generator keyed by seed. For train.init_from
 * when the class count changes (what PyTorch users do when fine-tuning:
 * model.classifier[1] = nn.Linear(...)); torchvision's own U(+-1/sqrt(classes))
 * gives 10 classes logits of std ~5 and a first loss of ~5.7 (docs/finetuning.md). */
void eff_model_reinit_head_linear(EffModel *m, uint64_t seed);
/* Override the model's dropout; 0 disables. Seed: the block rates scale with
 * it too. Torchvision: the classifier's only (stochastic depth is separate). */
void eff_model_set_dropout(EffModel *m, double dropout);
/* Torchvision: stochastic_depth_prob p; residual block i drops its branch
 * per image with rate p * i / nblocks (0 disables). The seed has none: p
 * must be 0. */
void eff_model_set_stochastic_depth(EffModel *m, double p);
/* train.freeze: stages = -1 (nothing), 0 (the stem) or 1..7 (the stem and
 * stages 1..N of the stage table); bn_eval (train.freeze_bn = eval): the
 * frozen BNs use their running statistics and leave them unchanged. Sets
 * the boundaries (train_lo, bn_lo, freeze_blocks); the optimizer state is
 * repacked by eff_model_set_optimizer_ranges. Exits on a bad stage count. */
void eff_model_set_freeze(EffModel *m, int stages, int bn_eval);
/* The first parameter offset of block i (i == nblocks: the head conv). */
size_t eff_model_block_first_param(const EffModel *m, int i);
/* Allocate every activation for batch N at resolution R (none during a step). */
void eff_model_alloc_acts(EffModel *m, int N, int R);
size_t eff_model_act_bytes(const EffModel *m);
double eff_model_macs(const EffModel *m, int R); /* multiply-adds per image, forward */

/* Forward pass on host input x [N][R][R][3] (NHWC) and host labels (may be
 * NULL: no loss). train selects batch statistics and dropout, keyed by
 * drop_key. Returns the mean loss (0 without labels). Logits: m->logits. */
float eff_model_forward(EffModel *m, const float *x, const int32_t *labels, int train, uint64_t drop_key);
/* The same, on an input (and labels, when with_labels) already placed in
 * m->x / m->labels in backend memory (e.g. by GPU augmentation). */
float eff_model_forward_resident(EffModel *m, int with_labels, int train, uint64_t drop_key);
/* Place a host batch (x [N][R][R][3], labels [N]) in m->x / m->labels. */
void eff_model_set_input(EffModel *m, const float *x, const int32_t *labels);
/* Hooks of eff_model_train_step (all optional). tail runs at the end of the
 * step's device work and is recorded into the graph with it (e.g. the
 * all-reduce's join); wait replaces the plain stream synchronisation after a
 * graph replay (e.g. the NCCL watchdog's polling wait, so a dead peer cannot
 * hang the host). */
typedef struct EffStepHooks {
    void (*tail)(void *arg);
    void (*wait)(void *arg);
    /* the capture of a step failed and its recording was dropped: undo what
     * the recorded calls of tail (and of m->grad_ready) began, because the
     * step now runs eagerly (NULL-able) */
    void (*discard)(void *arg);
    void *arg;
} EffStepHooks;
/* One training micro-step on the resident input: zero the gradients, train
 * forward (dropout keyed by drop_key), backward with loss_scale, then the
 * tail hook. Returns the mean loss. With m->use_graph and a backend that
 * captures (CUDA), the first call runs eagerly (it sizes every scratch
 * buffer, picks the cuDNN algorithms and connects NCCL), the second captures
 * the whole sequence, including the tail, into a CUDA graph, and that and
 * every later call replays it with this step's drop_key and loss_scale: one
 * launch per step. A recording invalidated by the backend (scratch grew) is
 * recorded again. When the capture itself fails (the backend warns), the
 * step runs eagerly and m->use_graph becomes 0: every later step is eager
 * too, which `effnet bench` and training then report. hooks may be NULL. */
float eff_model_train_step(EffModel *m, uint64_t drop_key, float loss_scale, const EffStepHooks *hooks);
/* Backward pass of the last train forward; ACCUMULATES into m->grad.
 * loss_scale multiplies d(loss)/d(logits) (e.g. 1/accumulation steps). */
void eff_model_backward(EffModel *m, float loss_scale);
void eff_model_zero_grad(EffModel *m);
void eff_model_adam_step(EffModel *m, float lr, float beta1, float beta2, float eps, float weight_decay,
                         int decoupled);
/* torch.optim.SGD; the momentum buffer is m->adam_m, m->adam_t counts steps. */
void eff_model_sgd_step(EffModel *m, float lr, float momentum, float weight_decay, int nesterov);

/* The optimizer of a training step, by name (config optim.name): adam, adamw
 * (decoupled weight decay) or sgd. One call for `effnet train` and `effnet
 * bench`, so both time the same update. Returns the sum of squares of the
 * gradients it read (the ranges opt_seg), from the same pass on the CPU. */
typedef struct EffOptimizer {
    const char *name;
    float lr, beta1, beta2, eps, weight_decay, momentum;
    int nesterov;
} EffOptimizer;
double eff_model_optimizer_step(EffModel *m, const EffOptimizer *o);
/* Keep the optimizer state only for the parameter ranges seg[0 .. nseg)
 * (ascending, disjoint, inside the trainable [train_lo, total)): the
 * trainable suffix (freezing), or one rank's pieces of it (ZeRO-1). The
 * state of those ranges is carried over from the current ranges (zeros
 * where they had none), the old buffers are freed; steps then update only
 * those parameters. */
void eff_model_set_optimizer_ranges(EffModel *m, const EffSeg *seg, int nseg);
/* The sum of squares of the gradients in the optimizer's ranges. */
double eff_model_grad_sumsq(const EffModel *m);
/* Copy the optimizer state between the packed ranges (m->adam_m/v layout)
 * and a full parameter-sized buffer: to_full = 1 scatters packed into full. */
void eff_seg_copy(const EffSeg *seg, int nseg, float *full, float *packed, int to_full);

#endif
