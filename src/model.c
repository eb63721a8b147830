/* model.c: EfficientNet forward and backward, written out by hand in the
 * order of the seed's module (stem, MBConv blocks, head), through the backend
 * op table. Conventions are those of src/ops/ops.h. */
#include "model.h"
#include "common.h"
#include "ops/ops.h"
#include "mix64.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *const eff_prof_names[EFF_PROF_COUNT] = {"stem conv", "1x1 conv", "depthwise", "batchnorm+swish",
                                                    "squeeze-excite", "dropout/add", "head/loss", "optimizer"};

/* The seed's base configuration: expand_ratio, channels, repeats, stride, kernel. */
static const int base_stages[7][5] = {
    {1, 16, 1, 1, 3}, {6, 24, 2, 2, 3}, {6, 40, 2, 2, 5}, {6, 80, 3, 2, 3},
    {6, 112, 3, 1, 5}, {6, 192, 4, 2, 5}, {6, 320, 1, 1, 3},
};

/* (the variant's fields: EFF_VARIANT_SEED, no stochastic depth; the stem's stride 2) */
static const EffModelSpec specs[8] = {
    {"efficientnet-b0", 1.0, 1.0, 224, 0.2, EFF_VARIANT_SEED, 0.0, 2}, {"efficientnet-b1", 1.0, 1.1, 240, 0.2, EFF_VARIANT_SEED, 0.0, 2},
    {"efficientnet-b2", 1.1, 1.2, 260, 0.3, EFF_VARIANT_SEED, 0.0, 2}, {"efficientnet-b3", 1.2, 1.4, 300, 0.3, EFF_VARIANT_SEED, 0.0, 2},
    {"efficientnet-b4", 1.4, 1.8, 380, 0.4, EFF_VARIANT_SEED, 0.0, 2}, {"efficientnet-b5", 1.6, 2.2, 456, 0.4, EFF_VARIANT_SEED, 0.0, 2},
    {"efficientnet-b6", 1.8, 2.6, 528, 0.5, EFF_VARIANT_SEED, 0.0, 2}, {"efficientnet-b7", 2.0, 3.1, 600, 0.5, EFF_VARIANT_SEED, 0.0, 2},
};

int eff_model_spec(const char *name, EffModelSpec *out) {
    for (int i = 0; i < 8; i++) {
        if (strcmp(name, specs[i].name) == 0 || strcmp(name, specs[i].name + 13) == 0) {
            *out = specs[i]; /* variant EFF_VARIANT_SEED, stochastic depth 0 */
            return 1;
        }
    }
    return 0;
}

const char *eff_variant_name(int variant) { return variant == EFF_VARIANT_TORCHVISION ? "torchvision" : "seed"; }

int eff_variant_parse(const char *s) {
    if (!strcmp(s, "seed")) return EFF_VARIANT_SEED;
    if (!strcmp(s, "torchvision")) return EFF_VARIANT_TORCHVISION;
    return -1;
}

int eff_model_spec_set_variant(EffModelSpec *spec, const char *variant) {
    const int v = eff_variant_parse(variant);
    if (v < 0) return 0;
    spec->variant = v;
    /* torchvision's EfficientNet(stochastic_depth_prob=0.2), the default of every efficientnet_bN */
    spec->stochastic_depth = v == EFF_VARIANT_TORCHVISION ? 0.2 : 0.0;
    return 1;
}

void eff_model_spec_config(const char *name, const char *variant, double stochastic_depth, EffModelSpec *out) {
    EFF_CHECK(eff_model_spec(name, out), "model.name '%s' unknown\nHINT: use efficientnet-b0 .. efficientnet-b7", name);
    EFF_CHECK(eff_model_spec_set_variant(out, variant), "model.variant '%s' unknown\nHINT: use seed or torchvision",
              variant);
    if (stochastic_depth < 0) return; /* the variant's own */
    EFF_CHECK(out->variant == EFF_VARIANT_TORCHVISION || stochastic_depth == 0, "model.stochastic_depth = %g, but "
              "model.variant is %s, which has no stochastic depth\nHINT: set model.variant = torchvision, or leave "
              "model.stochastic_depth at -1", stochastic_depth, variant);
    out->stochastic_depth = stochastic_depth;
}

void eff_model_spec_set_stem_stride(EffModelSpec *spec, long stride) {
    EFF_CHECK(stride == 1 || stride == 2, "model.stem_stride = %ld\nHINT: use 2 (the model's own stem) or 1 (keeps "
              "the input's resolution through the stem: the CIFAR adaptation)", stride);
    spec->stem_stride = (int)stride;
}

int eff_round_filters(int filters, double width) {
    double f = filters * width;
    int nf = (int)(f + 4) / 8 * 8;
    if (nf < 8) nf = 8;
    if (nf < 0.9 * f) nf += 8;
    return nf;
}

int eff_round_repeats(int repeats, double depth) { return (int)ceil(depth * repeats); }

/* ---- construction ------------------------------------------------------- */

static size_t add_conv(EffModel *m, const char *name, int cout, int cin_per_group, int k, EffLayout layout) {
    int64_t shape[4] = {cout, cin_per_group, k, k};
    m->nconvs++;
    return eff_table_add(&m->ptab, name, EFF_KIND_CONV, layout, 4, shape);
}

/* BN: weight and bias are parameters; running mean/var are buffers. */
static void add_bn(EffModel *m, const char *prefix, int c, size_t *g, size_t *b, size_t *rm, size_t *rv) {
    char name[80];
    int64_t shape[1] = {c};
    snprintf(name, sizeof name, "%s.weight", prefix);
    *g = eff_table_add(&m->ptab, name, EFF_KIND_BN, EFF_LAYOUT_SAME, 1, shape);
    snprintf(name, sizeof name, "%s.bias", prefix);
    *b = eff_table_add(&m->ptab, name, EFF_KIND_BN, EFF_LAYOUT_SAME, 1, shape);
    snprintf(name, sizeof name, "%s.running_mean", prefix);
    *rm = eff_table_add(&m->btab, name, EFF_KIND_BUFFER, EFF_LAYOUT_SAME, 1, shape);
    snprintf(name, sizeof name, "%s.running_var", prefix);
    *rv = eff_table_add(&m->btab, name, EFF_KIND_BUFFER, EFF_LAYOUT_SAME, 1, shape);
}

void eff_model_set_dropout(EffModel *m, double dropout) {
    m->head_drop = (float)dropout;
    if (m->spec.variant == EFF_VARIANT_TORCHVISION) return; /* blocks: stochastic depth instead */
    /* Seed defect fixed: the seed divides by 16 (the base block count), which
     * drives the rate past 1 for B6/B7. We divide by this model's block count. */
    for (int i = 0; i < m->nblocks; i++) m->blk[i].drop = (float)(dropout * i / m->nblocks);
}

void eff_model_set_stochastic_depth(EffModel *m, double p) {
    EFF_CHECK(p >= 0 && p <= 1, "stochastic depth rate %g out of range [0, 1]", p);
    EFF_CHECK(p == 0 || m->spec.variant == EFF_VARIANT_TORCHVISION, "stochastic depth %g on the seed variant, which "
              "has none\nHINT: set model.variant = torchvision", p);
    /* torchvision: sd_prob = stochastic_depth_prob * float(stage_block_id) / total_stage_blocks, every
     * block; MBConv applies it only when use_res_connect */
    for (int i = 0; i < m->nblocks; i++) m->blk[i].sd = m->blk[i].residual ? (float)(p * i / m->nblocks) : 0.0f;
}

void eff_model_set_freeze(EffModel *m, int stages, int bn_eval) {
    EFF_CHECK(stages >= -1 && stages <= 7, "train.freeze: %d stages, but the stage table has 7\nHINT: use none, stem "
              "or 1..7", stages);
    m->freeze_stages = stages;
    m->freeze_blocks = 0;
    while (stages > 0 && m->freeze_blocks < m->nblocks && m->blk[m->freeze_blocks].stage < stages) m->freeze_blocks++;
    const EffBlock *b = m->freeze_blocks < m->nblocks ? &m->blk[m->freeze_blocks] : NULL;
    /* both tables are in forward order (stem, blocks, head): the frozen layers are prefixes of each */
    m->train_lo = stages < 0 ? 0 : eff_model_block_first_param(m, m->freeze_blocks);
    m->freeze_bn_eval = stages >= 0 && bn_eval;
    m->bn_lo = !m->freeze_bn_eval ? 0 : !b ? m->head_rm : b->expand ? b->rm0 : b->rm1;
}

/* Is the BN whose weight is at offset g frozen in eval mode (train.freeze_bn = eval)? */
static int bn_frozen_eval(const EffModel *m, size_t g) { return m->freeze_bn_eval && g < m->train_lo; }

/* A block's layer: its conv weight's name and its BN's prefix (the SE: its prefix, no BN). */
enum { L_EXPAND, L_DW, L_SE, L_PROJECT };
static void layer_names(const EffModel *m, const EffBlock *b, int bi, int r, int layer, char *conv, char *bn) {
    static const char *const seed[4][2] = {{"expand_conv.weight", "expand_bn"}, {"depthwise_conv.weight", "depthwise_bn"},
                                           {"se", ""}, {"project_conv.weight", "project_bn"}};
    if (m->spec.variant == EFF_VARIANT_SEED) {
        snprintf(conv, 80, "blocks.block_%d.%s", bi, seed[layer][0]);
        snprintf(bn, 80, "blocks.block_%d.%s", bi, seed[layer][1]);
        return;
    }
    /* torchvision: features.<stage + 1>.<repeat>.block.<j>.{0: conv, 1: BN}, j counting the block's
     * layers (expand, depthwise, SE, project; no expand layer when the ratio is 1) */
    const int j = layer - (b->expand ? 0 : 1);
    snprintf(conv, 80, "features.%d.%d.block.%d%s", b->stage + 1, r, j, layer == L_SE ? "" : ".0.weight");
    snprintf(bn, 80, "features.%d.%d.block.%d.1", b->stage + 1, r, j);
}

static size_t add_vector(EffModel *m, const char *name, EffParamKind kind, int n) {
    int64_t shape[1] = {n};
    return eff_table_add(&m->ptab, name, kind, EFF_LAYOUT_SAME, 1, shape);
}

/* Block bi (repeat r of its stage): its parameters, in the state_dict's order. */
static void add_block(EffModel *m, int bi, int r) {
    EffBlock *b = &m->blk[bi];
    char conv[80], bn[80], name[96];
    if (b->expand) {
        layer_names(m, b, bi, r, L_EXPAND, conv, bn);
        b->w_expand = add_conv(m, conv, b->ce, b->cin, 1, EFF_LAYOUT_SAME);
        add_bn(m, bn, b->ce, &b->g0, &b->b0, &b->rm0, &b->rv0);
    }
    layer_names(m, b, bi, r, L_DW, conv, bn);
    b->w_dw = add_conv(m, conv, b->ce, 1, b->k, EFF_LAYOUT_C1HW_AS_HWC);
    add_bn(m, bn, b->ce, &b->g1, &b->b1, &b->rm1, &b->rv1);
    layer_names(m, b, bi, r, L_SE, conv, bn);
    snprintf(name, sizeof name, "%s.fc1.weight", conv);
    b->w_se1 = add_conv(m, name, b->cse, b->ce, 1, EFF_LAYOUT_SAME);
    snprintf(name, sizeof name, "%s.fc1.bias", conv);
    if (m->se_bias) b->b_se1 = add_vector(m, name, EFF_KIND_CONV, b->cse);
    snprintf(name, sizeof name, "%s.fc2.weight", conv);
    b->w_se2 = add_conv(m, name, b->ce, b->cse, 1, EFF_LAYOUT_SAME);
    snprintf(name, sizeof name, "%s.fc2.bias", conv);
    if (m->se_bias) b->b_se2 = add_vector(m, name, EFF_KIND_CONV, b->ce);
    layer_names(m, b, bi, r, L_PROJECT, conv, bn);
    b->w_proj = add_conv(m, conv, b->cout, b->ce, 1, EFF_LAYOUT_SAME);
    add_bn(m, bn, b->cout, &b->g2, &b->b2, &b->rm2, &b->rv2);
}

/* The blocks' shapes. Seed: SE squeeze int(0.25 x expanded channels).
 * torchvision (MBConv): expanded = _make_divisible(cin x ratio, 8) (the
 * same rounding as round_filters), squeeze = max(1, cin // 4). */
static void block_shapes(EffModel *m) {
    const int tv = m->spec.variant == EFF_VARIANT_TORCHVISION;
    int cin = m->stem_c, bi = 0;
    for (int s = 0; s < 7; s++) {
        const int er = base_stages[s][0], cout = eff_round_filters(base_stages[s][1], m->spec.width);
        const int reps = eff_round_repeats(base_stages[s][2], m->spec.depth);
        for (int r = 0; r < reps; r++, bi++) {
            EffBlock *b = &m->blk[bi];
            b->stage = s;
            b->cin = cin;
            b->cout = cout;
            b->ce = tv ? eff_round_filters(cin, er) : cin * er;
            b->cse = tv ? (cin / 4 > 1 ? cin / 4 : 1) : (int)(b->ce * 0.25);
            b->k = base_stages[s][4];
            b->stride = r == 0 ? base_stages[s][3] : 1;
            b->expand = er > 1;
            b->residual = cin == cout && b->stride == 1;
            cin = cout;
        }
    }
}

/* The per-variant constants: BN eps/momentum (torchvision's B5-B7 use
 * partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)), the SE's activation
 * and biases, the head width (torchvision: 4 x the last stage's channels). */
static void variant_constants(EffModel *m) {
    const int tv = m->spec.variant == EFF_VARIANT_TORCHVISION;
    const char *n = m->spec.name;
    const int b567 = !strcmp(n, "efficientnet-b5") || !strcmp(n, "efficientnet-b6") || !strcmp(n, "efficientnet-b7");
    m->bn_momentum = tv && b567 ? 0.01f : 0.1f;
    m->bn_eps = tv && b567 ? 1e-3f : 1e-5f;
    m->se_act = tv ? EFF_SE_SILU : EFF_SE_RELU;
    m->se_bias = tv;
    m->stem_c = eff_round_filters(32, m->spec.width);
    m->head_c = tv ? 4 * eff_round_filters(base_stages[6][1], m->spec.width) : eff_round_filters(1280, m->spec.width);
}

void eff_model_build_tables(EffModel *m, const EffModelSpec *spec, int classes) {
    EFF_CHECK(classes >= 1 && classes <= 100000, "bad number of classes %d (want 1..100000)", classes);
    EFF_CHECK(spec->variant == EFF_VARIANT_SEED || spec->variant == EFF_VARIANT_TORCHVISION, "bad model variant %d",
              spec->variant);
    EFF_CHECK(spec->stem_stride == 1 || spec->stem_stride == 2, "bad stem stride %d (want 1 or 2)", spec->stem_stride);
    memset(m, 0, sizeof *m);
    m->spec = *spec;
    m->classes = classes;
    m->freeze_stages = -1; /* nothing frozen */
    m->backbone_lr_mult = 1.0f;
    eff_table_init(&m->ptab);
    eff_table_init(&m->btab);
    variant_constants(m);
    const int tv = spec->variant == EFF_VARIANT_TORCHVISION;
    int total = 0;
    for (int s = 0; s < 7; s++) total += eff_round_repeats(base_stages[s][2], spec->depth);
    m->nblocks = total;
    m->blk = eff_calloc((size_t)total, sizeof(EffBlock), "block table");
    block_shapes(m);

    m->stem_w = add_conv(m, tv ? "features.0.0.weight" : "stem.0.weight", m->stem_c, 3, 3, EFF_LAYOUT_OIHW_AS_HWIO);
    add_bn(m, tv ? "features.0.1" : "stem.1", m->stem_c, &m->stem_g, &m->stem_b, &m->stem_rm, &m->stem_rv);
    for (int bi = 0, r = 0; bi < total; bi++) {
        r = bi > 0 && m->blk[bi].stage == m->blk[bi - 1].stage ? r + 1 : 0;
        add_block(m, bi, r);
    }
    const int cl = m->blk[total - 1].cout;
    m->head_w = add_conv(m, tv ? "features.8.0.weight" : "head.0.weight", m->head_c, cl, 1, EFF_LAYOUT_SAME);
    add_bn(m, tv ? "features.8.1" : "head.1", m->head_c, &m->head_g, &m->head_b, &m->head_rm, &m->head_rv);
    int64_t fw[2] = {classes, m->head_c};
    m->fc_w = eff_table_add(&m->ptab, "classifier.1.weight", EFF_KIND_LINEAR, EFF_LAYOUT_SAME, 2, fw);
    m->fc_b = add_vector(m, "classifier.1.bias", EFF_KIND_LINEAR, classes);

    eff_model_set_dropout(m, spec->dropout);
    eff_model_set_stochastic_depth(m, spec->stochastic_depth);
}

void eff_model_create(EffModel *m, const EffBackend *be, const EffModelSpec *spec, int classes) {
    eff_model_build_tables(m, spec, classes);
    m->be = be;
    const size_t pb = m->ptab.total * sizeof(float);
    m->param = be->alloc(be, pb, "parameters");
    m->grad = be->alloc(be, pb, "gradients");
    m->adam_m = be->alloc(be, pb, "Adam first moments");
    m->adam_v = be->alloc(be, pb, "Adam second moments");
    m->bufs = be->alloc(be, m->btab.total * sizeof(float), "BN running statistics");
    m->opt_seg = eff_malloc(sizeof(EffSeg), "optimizer ranges");
    m->opt_seg[0] = (EffSeg){0, m->ptab.total};
    m->opt_nseg = 1;
    m->opt_n = m->ptab.total;
}

/* One parameter tensor in PyTorch's element order (tmp), by the variant's rule. */
static void init_view(const EffModel *m, const EffView *v, EffRng *rng, float *tmp) {
    if (v->kind == EFF_KIND_BN) { /* ones_ / zeros_ (both variants) */
        const float val = strstr(v->name, ".weight") ? 1.0f : 0.0f;
        for (size_t j = 0; j < v->numel; j++) tmp[j] = val;
        return;
    }
    if (m->spec.variant == EFF_VARIANT_TORCHVISION) {
        if (v->ndim == 1) { /* conv and Linear biases: zeros_ */
            for (size_t j = 0; j < v->numel; j++) tmp[j] = 0.0f;
        } else if (v->kind == EFF_KIND_LINEAR) { /* uniform_(-1/sqrt(out_features), +) */
            const double r = 1.0 / sqrt((double)v->shape[0]);
            for (size_t j = 0; j < v->numel; j++) tmp[j] = (float)((2.0 * eff_rng_uniform(rng) - 1.0) * r);
        } else { /* kaiming_normal_(mode="fan_out"): std = sqrt(2 / (out_channels x kh x kw)) */
            const double sd = sqrt(2.0 / (double)(v->shape[0] * v->shape[2] * v->shape[3]));
            for (size_t j = 0; j < v->numel; j++) tmp[j] = (float)(eff_rng_normal(rng) * sd);
        }
        return;
    }
    /* seed: kaiming_uniform_(a=sqrt(5)) gives bound 1/sqrt(fan_in); Linear's bias
     * uses the same bound with the weight's fan_in. */
    int64_t fan_in = 1;
    if (v->ndim == 1) fan_in = m->head_c;
    else
        for (int d = 1; d < v->ndim; d++) fan_in *= v->shape[d];
    const double bound = 1.0 / sqrt((double)fan_in);
    for (size_t j = 0; j < v->numel; j++) tmp[j] = (float)((2.0 * eff_rng_uniform(rng) - 1.0) * bound);
}

void eff_model_init_weights(EffModel *m, uint64_t seed) {
    EffRng rng;
    eff_rng_seed(&rng, seed);
    float *hp = eff_calloc(m->ptab.total, sizeof(float), "initial weights");
    float *hb = eff_calloc(m->btab.total, sizeof(float), "initial BN buffers");
    size_t tmp_n = 1;
    for (int i = 0; i < m->ptab.count; i++) tmp_n = m->ptab.views[i].numel > tmp_n ? m->ptab.views[i].numel : tmp_n;
    float *tmp = eff_malloc(tmp_n * sizeof(float), "init scratch");
    for (int i = 0; i < m->ptab.count; i++) {
        const EffView *v = &m->ptab.views[i];
        init_view(m, v, &rng, tmp);
        eff_view_from_torch(v, tmp, hp + v->offset); /* drawn in PyTorch's element order */
    }
    for (int i = 0; i < m->btab.count; i++) {
        const EffView *v = &m->btab.views[i];
        float val = strstr(v->name, "running_var") ? 1.0f : 0.0f;
        for (size_t j = 0; j < v->numel; j++) hb[v->offset + j] = val;
    }
    m->be->upload(m->be, m->param, hp, m->ptab.total * sizeof(float));
    m->be->upload(m->be, m->bufs, hb, m->btab.total * sizeof(float));
    m->be->zero(m->be, m->adam_m, m->opt_n * sizeof(float));
    m->be->zero(m->be, m->adam_v, m->opt_n * sizeof(float));
    m->bn_batches = 0;
    m->adam_t = 0;
    eff_free(tmp);
    eff_free(hp);
    eff_free(hb);
}

void eff_model_reinit_head_linear(EffModel *m, uint64_t seed) {
    EffRng rng;
    eff_rng_seed(&rng, eff_mix64(seed ^ 0x68656164ull)); /* "head": not the stream the initial weights came from */
    const double bound = 1.0 / sqrt((double)m->head_c); /* nn.Linear: kaiming_uniform_(a=sqrt(5)), fan_in = in_features */
    float *tmp = eff_malloc((size_t)m->head_c * (size_t)m->classes * sizeof(float), "classifier re-initialisation");
    float *ours = eff_malloc((size_t)m->head_c * (size_t)m->classes * sizeof(float), "classifier re-initialisation");
    for (int i = 0; i < m->ptab.count; i++) {
        const EffView *v = &m->ptab.views[i];
        if (strncmp(v->name, "classifier.", 11)) continue;
        for (size_t j = 0; j < v->numel; j++) tmp[j] = (float)((2.0 * eff_rng_uniform(&rng) - 1.0) * bound);
        eff_view_from_torch(v, tmp, ours);
        m->be->upload(m->be, m->param + v->offset, ours, v->numel * sizeof(float));
    }
    eff_free(ours);
    eff_free(tmp);
}

/* ---- activations --------------------------------------------------------- */

#define RELEASE(p) do { be->release(be, (p)); (p) = NULL; } while (0)
static void free_acts(EffModel *m) {
    const EffBackend *be = m->be;
    if (!m->N) return;
    if (be->graph_reset) be->graph_reset(be); /* a recorded step points into these buffers */
    m->train_steps = 0;
    RELEASE(m->x); RELEASE(m->stem_col); RELEASE(m->stem_conv); RELEASE(m->stem_act); RELEASE(m->stem_mean);
    RELEASE(m->stem_rstd); RELEASE(m->head_conv); RELEASE(m->head_act); RELEASE(m->head_mean); RELEASE(m->head_rstd);
    RELEASE(m->pooled); RELEASE(m->pooled_drop); RELEASE(m->logits); RELEASE(m->probs); RELEASE(m->dlogits);
    RELEASE(m->dpool); RELEASE(m->gbuf[0]); RELEASE(m->gbuf[1]); RELEASE(m->gbuf[2]); RELEASE(m->se_work);
    RELEASE(m->labels); RELEASE(m->bn_work); RELEASE(m->rc_e); RELEASE(m->rc_d);
    for (int i = 0; i < m->nblocks; i++) {
        EffBlock *b = &m->blk[i];
        if (b->expand) { RELEASE(b->e_conv); if (!m->recompute) RELEASE(b->e_act); RELEASE(b->e_mean); RELEASE(b->e_rstd); }
        b->e_act = NULL; /* without expansion it aliased the block input; with recompute, rc_e */
        if (!m->recompute) RELEASE(b->d_act);
        b->d_act = NULL;
        RELEASE(b->d_conv); RELEASE(b->d_mean); RELEASE(b->d_rstd); RELEASE(b->se_pooled);
        RELEASE(b->se_hidden); RELEASE(b->se_gate); RELEASE(b->se_out); RELEASE(b->p_conv); RELEASE(b->p_mean);
        RELEASE(b->p_rstd); RELEASE(b->out);
    }
    m->N = 0;
}
#undef RELEASE

/* An activation tensor (the backend's act type) and an fp32 tensor. */
static EffAct *act(const EffModel *m, size_t n, const char *what) { return m->be->alloc(m->be, n * m->be->act_size, what); }
static float *f32(const EffModel *m, size_t n, const char *what) { return m->be->alloc(m->be, n * sizeof(float), what); }

/* train.recompute: one buffer for every block's expand activation and one for
 * every depthwise activation, each the size of the largest. */
static void alloc_recompute_buffers(EffModel *m, int N) {
    size_t ne = 1, nd = 1;
    int H = m->H1;
    for (int i = 0; i < m->nblocks; i++) {
        const EffBlock *b = &m->blk[i];
        const int Ho = conv_out_size(H, b->k, b->stride, b->k / 2);
        const size_t e = b->expand ? (size_t)N * H * H * b->ce : 0, d = (size_t)N * Ho * Ho * b->ce;
        ne = e > ne ? e : ne;
        nd = d > nd ? d : nd;
        H = Ho;
    }
    m->rc_e = act(m, ne, "expand activation (recomputed, shared by the blocks)");
    m->rc_d = act(m, nd, "depthwise activation (recomputed, shared by the blocks)");
}

void eff_model_alloc_acts(EffModel *m, int N, int R) {
    EFF_CHECK(N >= 1 && N <= 65536, "bad batch size %d (want 1..65536)", N);
    EFF_CHECK(R >= 8 && R <= 2048, "bad resolution %d (want 8..2048)", R);
    free_acts(m);
    m->N = N;
    m->R = R;
    m->H1 = conv_out_size(R, 3, m->spec.stem_stride, 1);
    const size_t M1 = (size_t)N * m->H1 * m->H1;
    size_t gmax = M1 * (size_t)m->stem_c, work = 0;
    m->x = f32(m, (size_t)N * R * R * 3, "input batch");
    m->labels = m->be->alloc(m->be, (size_t)N * sizeof(int32_t), "labels");
    m->stem_col = m->be->needs_im2col ? f32(m, M1 * 27, "stem im2col") : NULL;
    m->stem_conv = act(m, M1 * m->stem_c, "stem conv output");
    m->stem_act = act(m, M1 * m->stem_c, "stem activation");
    m->stem_mean = f32(m, m->stem_c, "stem BN mean");
    m->stem_rstd = f32(m, m->stem_c, "stem BN rstd");
    if (m->recompute) alloc_recompute_buffers(m, N);
    int H = m->H1;
    for (int i = 0; i < m->nblocks; i++) {
        EffBlock *b = &m->blk[i];
        b->Hi = b->Wi = H;
        b->Ho = b->Wo = conv_out_size(H, b->k, b->stride, b->k / 2);
        const size_t Mi = (size_t)N * b->Hi * b->Wi, Mo = (size_t)N * b->Ho * b->Wo;
        if (b->expand) {
            b->e_conv = act(m, Mi * b->ce, "expand conv output");
            b->e_act = m->recompute ? m->rc_e : act(m, Mi * b->ce, "expand activation");
            b->e_mean = f32(m, b->ce, "BN mean");
            b->e_rstd = f32(m, b->ce, "BN rstd");
        }
        b->d_conv = act(m, Mo * b->ce, "depthwise output");
        b->d_act = m->recompute ? m->rc_d : act(m, Mo * b->ce, "depthwise activation");
        b->d_mean = f32(m, b->ce, "BN mean");
        b->d_rstd = f32(m, b->ce, "BN rstd");
        b->se_pooled = f32(m, (size_t)N * b->ce, "SE pooled");
        b->se_hidden = f32(m, (size_t)N * b->cse * (m->se_act == EFF_SE_SILU ? 2 : 1), "SE hidden");
        b->se_gate = f32(m, (size_t)N * b->ce, "SE gate");
        b->se_out = act(m, Mo * b->ce, "SE output");
        b->p_conv = act(m, Mo * b->cout, "project conv output");
        b->p_mean = f32(m, b->cout, "BN mean");
        b->p_rstd = f32(m, b->cout, "BN rstd");
        b->out = act(m, Mo * b->cout, "block output");
        size_t sizes[] = {Mi * b->ce, Mo * b->ce, Mi * b->cin, Mo * b->cout};
        for (int j = 0; j < 4; j++) gmax = sizes[j] > gmax ? sizes[j] : gmax;
        size_t w = (size_t)N * (2 * b->ce + b->cse);
        work = w > work ? w : work;
        H = b->Ho;
    }
    m->Hh = H;
    const size_t Mh = (size_t)N * H * H;
    gmax = Mh * m->head_c > gmax ? Mh * m->head_c : gmax;
    m->head_conv = act(m, Mh * m->head_c, "head conv output");
    m->head_act = act(m, Mh * m->head_c, "head activation");
    m->head_mean = f32(m, m->head_c, "head BN mean");
    m->head_rstd = f32(m, m->head_c, "head BN rstd");
    m->pooled = act(m, (size_t)N * m->head_c, "pooled features");
    m->pooled_drop = act(m, (size_t)N * m->head_c, "pooled features after dropout");
    m->dpool = act(m, (size_t)N * m->head_c, "pooled-feature gradient");
    m->logits = f32(m, (size_t)N * m->classes, "logits");
    m->probs = f32(m, (size_t)N * m->classes, "probabilities");
    m->dlogits = f32(m, (size_t)N * m->classes, "logit gradient");
    for (int j = 0; j < 3; j++) m->gbuf[j] = act(m, gmax, "activation-gradient buffer");
    m->se_work = f32(m, work, "SE backward scratch");
    int cmax = m->head_c;
    for (int i = 0; i < m->nblocks; i++) cmax = m->blk[i].ce > cmax ? m->blk[i].ce : cmax;
    m->bn_work = m->be->alloc(m->be, sizeof(double) * 2 * EFF_BN_CHUNKS * (size_t)cmax, "BN reduction scratch");
}

/* The saved activations of one step (what memory scales with), in bytes. */
size_t eff_model_act_bytes(const EffModel *m) {
    const size_t M1 = (size_t)m->N * m->H1 * m->H1;
    size_t n = M1 * 2 * (size_t)m->stem_c, col = m->be->needs_im2col ? M1 * 27 * sizeof(float) : 0;
    for (int i = 0; i < m->nblocks; i++) {
        const EffBlock *b = &m->blk[i];
        const size_t Mi = (size_t)m->N * b->Hi * b->Wi, Mo = (size_t)m->N * b->Ho * b->Wo;
        n += (b->expand ? (m->recompute ? 1 : 2) * Mi * b->ce : 0) + (m->recompute ? 2 : 3) * Mo * b->ce + 2 * Mo * b->cout;
    }
    return n * m->be->act_size + col; /* (recompute's two shared buffers are scratch, like the gradient buffers) */
}

double eff_model_macs(const EffModel *m, int R) {
    int H = conv_out_size(R, 3, m->spec.stem_stride, 1);
    double macs = (double)H * H * 27 * m->stem_c;
    for (int i = 0; i < m->nblocks; i++) {
        const EffBlock *b = &m->blk[i];
        int Ho = conv_out_size(H, b->k, b->stride, b->k / 2);
        if (b->expand) macs += (double)H * H * b->cin * b->ce;
        macs += (double)Ho * Ho * b->ce * b->k * b->k;
        macs += 2.0 * b->ce * b->cse;
        macs += (double)Ho * Ho * b->ce * b->cout;
        H = Ho;
    }
    macs += (double)H * H * m->blk[m->nblocks - 1].cout * m->head_c;
    macs += (double)m->head_c * m->classes;
    return macs;
}

void eff_model_destroy(EffModel *m) {
    free_acts(m);
    const EffBackend *be = m->be;
    if (be) { /* NULL: built by eff_model_build_tables alone, no backend memory */
        be->release(be, m->param);
        be->release(be, m->grad);
        be->release(be, m->adam_m);
        be->release(be, m->adam_v);
        be->release(be, m->bufs);
    }
    eff_free(m->blk);
    eff_free(m->opt_seg);
    eff_table_free(&m->ptab);
    eff_table_free(&m->btab);
    memset(m, 0, sizeof *m);
}

/* ---- forward --------------------------------------------------------------- */

#define PROF_BEGIN(m) double prof_t0_ = (m)->profile ? ((m)->be->synchronize((m)->be), eff_time()) : 0.0
#define PROF_END(m, slot) do { if ((m)->profile) { (m)->be->synchronize((m)->be); (m)->prof[slot] += eff_time() - prof_t0_; } } while (0)
#define TIMED(m, slot, call) do { PROF_BEGIN(m); call; PROF_END(m, slot); \
    if ((m)->progress) (m)->progress((m)->grad_ready_arg); } while (0)

static void bn_fwd(EffModel *m, int train, float *out, float *mean, float *rstd, size_t rm, size_t rv,
                   const float *in, size_t g, size_t b, size_t M, int C, int swish) {
    const EffBackend *be = m->be;
    if (train && !bn_frozen_eval(m, g))
        TIMED(m, EFF_PROF_BN, be->batchnorm_forward_train(be, out, mean, rstd, m->bufs + rm, m->bufs + rv, m->bn_work, in,
                                                           m->param + g, m->param + b, (int)M, C, m->bn_momentum,
                                                           m->bn_eps, swish));
    else
        TIMED(m, EFF_PROF_BN, be->batchnorm_forward_eval(be, out, in, m->param + g, m->param + b, m->bufs + rm,
                                                          m->bufs + rv, (int)M, C, m->bn_eps, swish));
}


/* The SE biases (torchvision), or NULL (the seed). */
static const float *se_b(const EffModel *m, const float *base, size_t off) { return m->se_bias ? base + off : NULL; }
static float *se_db(const EffModel *m, float *base, size_t off) { return m->se_bias ? base + off : NULL; }

/* Depthwise conv -> BN+swish -> SE, train mode, through the backend's fused
 * ops (bit-identical to the unfused calls): the conv's output pass leaves
 * the BN statistics, and the BN output pass is also the SE squeeze. */
static void dw_bn_se_forward_fused(EffModel *m, EffBlock *b) {
    const EffBackend *be = m->be;
    const float *P = m->param;
    const int N = m->N, HWo = b->Ho * b->Wo;
    TIMED(m, EFF_PROF_DWCONV, be->dwconv_forward_bnstats(be, b->d_conv, m->bn_work, b->e_act, P + b->w_dw, N, b->Hi,
                                                         b->Wi, b->ce, b->k, b->stride));
    TIMED(m, EFF_PROF_BN, be->batchnorm_forward_train_sums(be, b->d_act, b->se_pooled, b->d_mean, b->d_rstd,
                                                           m->bufs + b->rm1, m->bufs + b->rv1, m->bn_work, b->d_conv,
                                                           P + b->g1, P + b->b1, N, N * HWo, b->ce, m->bn_momentum,
                                                           m->bn_eps, 1));
    TIMED(m, EFF_PROF_SE, be->se_forward_pooled(be, b->se_out, b->se_pooled, b->se_hidden, b->se_gate, b->d_act,
                                                P + b->w_se1, se_b(m, P, b->b_se1), P + b->w_se2,
                                                se_b(m, P, b->b_se2), N, HWo, b->ce, b->cse, m->se_act));
}

static void block_forward(EffModel *m, int i, const EffAct *x, int train) {
    const EffBackend *be = m->be;
    EffBlock *b = &m->blk[i];
    const int N = m->N;
    const size_t Mi = (size_t)N * b->Hi * b->Wi, Mo = (size_t)N * b->Ho * b->Wo;
    const float *P = m->param;
    if (b->expand) {
        TIMED(m, EFF_PROF_PWCONV, be->pwconv_forward(be, b->e_conv, x, P + b->w_expand, (int)Mi, b->cin, b->ce));
        bn_fwd(m, train, b->e_act, b->e_mean, b->e_rstd, b->rm0, b->rv0, b->e_conv, b->g0, b->b0, Mi, b->ce, 1);
    } else {
        b->e_act = (EffAct *)x; /* no expansion: the depthwise conv reads the block input */
    }
    if (train && be->dwconv_forward_bnstats && !bn_frozen_eval(m, b->g1))
        dw_bn_se_forward_fused(m, b);
    else {
        TIMED(m, EFF_PROF_DWCONV, be->dwconv_forward(be, b->d_conv, b->e_act, P + b->w_dw, N, b->Hi, b->Wi, b->ce, b->k,
                                                     b->stride));
        bn_fwd(m, train, b->d_act, b->d_mean, b->d_rstd, b->rm1, b->rv1, b->d_conv, b->g1, b->b1, Mo, b->ce, 1);
        TIMED(m, EFF_PROF_SE, be->se_forward(be, b->se_out, b->se_pooled, b->se_hidden, b->se_gate, b->d_act,
                                             P + b->w_se1, se_b(m, P, b->b_se1), P + b->w_se2, se_b(m, P, b->b_se2), N,
                                             b->Ho * b->Wo, b->ce, b->cse, m->se_act));
    }
    TIMED(m, EFF_PROF_PWCONV, be->pwconv_forward(be, b->p_conv, b->se_out, P + b->w_proj, (int)Mo, b->ce, b->cout));
    bn_fwd(m, train, b->out, b->p_mean, b->p_rstd, b->rm2, b->rv2, b->p_conv, b->g2, b->b2, Mo, b->cout, 0);
    if (train && b->drop > 0.0f)
        TIMED(m, EFF_PROF_ELEMWISE, be->dropout_forward(be, b->out, b->out, Mo * b->cout, b->drop, m->drop_key, (uint64_t)i));
    if (train && b->sd > 0.0f) /* torchvision: result = stochastic_depth(result); result += input */
        TIMED(m, EFF_PROF_ELEMWISE, be->stochastic_depth_forward(be, b->out, b->out, N, (size_t)b->Ho * b->Wo * b->cout,
                                                                 b->sd, m->drop_key, (uint64_t)i));
    if (b->residual) TIMED(m, EFF_PROF_ELEMWISE, be->add_inplace(be, b->out, x, Mo * b->cout));
}

void eff_model_set_input(EffModel *m, const float *x, const int32_t *labels) {
    EFF_CHECK(m->N > 0, "eff_model_set_input before eff_model_alloc_acts");
    m->be->upload(m->be, m->x, x, (size_t)m->N * m->R * m->R * 3 * sizeof(float));
    if (labels) m->be->upload(m->be, m->labels, labels, (size_t)m->N * sizeof(int32_t));
}

float eff_model_forward(EffModel *m, const float *x, const int32_t *labels, int train, uint64_t drop_key) {
    eff_model_set_input(m, x, labels);
    return eff_model_forward_resident(m, labels != NULL, train, drop_key);
}

size_t eff_model_block_first_param(const EffModel *m, int i) {
    return i == m->nblocks ? m->head_w : m->blk[i].expand ? m->blk[i].w_expand : m->blk[i].w_dw;
}

static void need_params(EffModel *m, size_t end) {
    if (m->params_needed) m->params_needed(m->params_needed_arg, end);
}

float eff_model_forward_resident(EffModel *m, int with_labels, int train, uint64_t drop_key) {
    const EffBackend *be = m->be;
    EFF_CHECK(m->N > 0, "eff_model_forward before eff_model_alloc_acts");
    const int N = m->N;
    const float *P = m->param;
    m->drop_key = drop_key;
    m->last_train = train;
    be->set_step_scalar(be, EFF_STEP_DROP_KEY, drop_key);

    const size_t M1 = (size_t)N * m->H1 * m->H1;
    need_params(m, eff_model_block_first_param(m, 0));
    TIMED(m, EFF_PROF_CONV, be->conv2d_forward(be, m->stem_conv, m->stem_col, m->x, P + m->stem_w, N, m->R, m->R, 3,
                                               m->stem_c, 3, m->spec.stem_stride, 1));
    bn_fwd(m, train, m->stem_act, m->stem_mean, m->stem_rstd, m->stem_rm, m->stem_rv, m->stem_conv, m->stem_g,
           m->stem_b, M1, m->stem_c, 1);
    const EffAct *h = m->stem_act;
    for (int i = 0; i < m->nblocks; i++) {
        need_params(m, eff_model_block_first_param(m, i + 1));
        block_forward(m, i, h, train);
        h = m->blk[i].out;
    }
    need_params(m, m->ptab.total);
    const int cl = m->blk[m->nblocks - 1].cout, HWh = m->Hh * m->Hh;
    const size_t Mh = (size_t)N * HWh;
    TIMED(m, EFF_PROF_PWCONV, be->pwconv_forward(be, m->head_conv, h, P + m->head_w, (int)Mh, cl, m->head_c));
    bn_fwd(m, train, m->head_act, m->head_mean, m->head_rstd, m->head_rm, m->head_rv, m->head_conv, m->head_g,
           m->head_b, Mh, m->head_c, 1);
    float loss = 0.0f;
    PROF_BEGIN(m);
    be->gap_forward(be, m->pooled, m->head_act, N, HWh, m->head_c);
    const EffAct *feat = m->pooled;
    if (train && m->head_drop > 0.0f) {
        be->dropout_forward(be, m->pooled_drop, m->pooled, (size_t)N * m->head_c, m->head_drop, m->drop_key,
                            (uint64_t)m->nblocks);
        feat = m->pooled_drop;
    }
    be->linear_forward(be, m->logits, feat, P + m->fc_w, P + m->fc_b, N, m->head_c, m->classes);
    if (with_labels) loss = be->softmax_xent_forward(be, m->probs, m->logits, m->labels, N, m->classes, m->label_smoothing);
    PROF_END(m, EFF_PROF_HEAD);
    if (train) m->bn_batches++;
    return loss;
}

/* ---- backward -------------------------------------------------------------- */

/* Backward through block i. dout holds d(block output); t1, t2 are scratch.
 * Returns the buffer holding d(block input): always t1 (with need_dx 0,
 * nothing below the block takes a gradient: d(block input) is not formed
 * where that saves work, the expand conv's input gradient and the residual). */
static EffAct *block_backward(EffModel *m, int i, const EffAct *x, EffAct *dout, EffAct *t1, EffAct *t2, int need_dx) {
    const EffBackend *be = m->be;
    EffBlock *b = &m->blk[i];
    const int N = m->N, HWo = b->Ho * b->Wo;
    const size_t Mi = (size_t)N * b->Hi * b->Wi, Mo = (size_t)N * HWo;
    const float *P = m->param;
    float *G = m->grad;
    const EffAct *dp = dout;
    if (m->recompute) { /* rebuild this block's BN+swish outputs in the shared buffers */
        if (b->expand)
            TIMED(m, EFF_PROF_BN, be->batchnorm_apply(be, b->e_act, b->e_conv, b->e_mean, b->e_rstd, P + b->g0, P + b->b0,
                                                      (int)Mi, b->ce, 1));
        TIMED(m, EFF_PROF_BN, be->batchnorm_apply(be, b->d_act, b->d_conv, b->d_mean, b->d_rstd, P + b->g1, P + b->b1,
                                                  (int)Mo, b->ce, 1));
    }
    if (b->drop > 0.0f) {
        TIMED(m, EFF_PROF_ELEMWISE, be->dropout_backward(be, t1, dout, Mo * b->cout, b->drop, m->drop_key, (uint64_t)i));
        dp = t1;
    }
    if (b->sd > 0.0f) {
        TIMED(m, EFF_PROF_ELEMWISE, be->stochastic_depth_backward(be, t1, dout, N, (size_t)HWo * b->cout, b->sd,
                                                                  m->drop_key, (uint64_t)i));
        dp = t1;
    }
    TIMED(m, EFF_PROF_BN, be->batchnorm_backward(be, t2, G + b->g2, G + b->b2, m->bn_work, dp, b->p_conv, NULL, b->p_mean, b->p_rstd,
                                                 P + b->g2, P + b->b2, (int)Mo, b->cout, 0));
    TIMED(m, EFF_PROF_PWCONV, be->pwconv_backward(be, t1, G + b->w_proj, t2, b->se_out, P + b->w_proj, (int)Mo, b->ce, b->cout));
    TIMED(m, EFF_PROF_SE, be->se_backward(be, t1, G + b->w_se1, se_db(m, G, b->b_se1), G + b->w_se2,
                                          se_db(m, G, b->b_se2), m->se_work, t1, b->d_act, b->se_pooled, b->se_hidden,
                                          b->se_gate, P + b->w_se1, P + b->w_se2, N, HWo, b->ce, b->cse, m->se_act));
    TIMED(m, EFF_PROF_BN, be->batchnorm_backward(be, t2, G + b->g1, G + b->b1, m->bn_work, t1, b->d_conv, b->d_act, b->d_mean, b->d_rstd,
                                                 P + b->g1, P + b->b1, (int)Mo, b->ce, 1));
    TIMED(m, EFF_PROF_DWCONV, be->dwconv_backward(be, t1, G + b->w_dw, t2, b->e_act, P + b->w_dw, N, b->Hi, b->Wi,
                                                  b->ce, b->k, b->stride));
    if (b->expand) {
        TIMED(m, EFF_PROF_BN, be->batchnorm_backward(be, t2, G + b->g0, G + b->b0, m->bn_work, t1, b->e_conv, b->e_act, b->e_mean, b->e_rstd,
                                                     P + b->g0, P + b->b0, (int)Mi, b->ce, 1));
        TIMED(m, EFF_PROF_PWCONV, be->pwconv_backward(be, need_dx ? t1 : NULL, G + b->w_expand, t2, x, P + b->w_expand,
                                                      (int)Mi, b->cin, b->ce));
    }
    if (b->residual && need_dx) TIMED(m, EFF_PROF_ELEMWISE, be->add_inplace(be, t1, dout, Mi * b->cin));
    return t1;
}

void eff_model_backward(EffModel *m, float loss_scale) {
    const EffBackend *be = m->be;
    EFF_CHECK(m->last_train, "eff_model_backward needs a train-mode forward first");
    const int N = m->N, HWh = m->Hh * m->Hh;
    const size_t Mh = (size_t)N * HWh;
    const float *P = m->param;
    float *G = m->grad;
    EffAct *g0 = m->gbuf[0], *g1 = m->gbuf[1], *g2 = m->gbuf[2];

    PROF_BEGIN(m);
    uint64_t scale_bits = 0;
    memcpy(&scale_bits, &loss_scale, sizeof loss_scale);
    be->set_step_scalar(be, EFF_STEP_GRAD_SCALE, scale_bits);
    be->softmax_xent_backward(be, m->dlogits, m->probs, m->labels, N, m->classes, m->label_smoothing, loss_scale);
    const int dropped = m->head_drop > 0.0f;
    be->linear_backward(be, m->dpool, G + m->fc_w, G + m->fc_b, m->dlogits, dropped ? m->pooled_drop : m->pooled,
                        P + m->fc_w, N, m->head_c, m->classes);
    if (dropped)
        be->dropout_backward(be, m->dpool, m->dpool, (size_t)N * m->head_c, m->head_drop, m->drop_key,
                             (uint64_t)m->nblocks);
    be->gap_backward(be, g0, m->dpool, N, HWh, m->head_c);
    PROF_END(m, EFF_PROF_HEAD);
    TIMED(m, EFF_PROF_BN, be->batchnorm_backward(be, g1, G + m->head_g, G + m->head_b, m->bn_work, g0, m->head_conv, m->head_act, m->head_mean,
                                                 m->head_rstd, P + m->head_g, P + m->head_b, (int)Mh, m->head_c, 1));
    const EffBlock *last = &m->blk[m->nblocks - 1];
    const int first = m->freeze_blocks, stem = m->train_lo == 0; /* train.freeze: backward stops at the boundary */
    TIMED(m, EFF_PROF_PWCONV, be->pwconv_backward(be, first < m->nblocks ? g0 : NULL, G + m->head_w, g1, last->out,
                                                  P + m->head_w, (int)Mh, last->cout, m->head_c));
    if (m->grad_ready) m->grad_ready(m->grad_ready_arg, m->head_w);
    EffAct *dout = g0, *t1 = g1, *t2 = g2;
    for (int i = m->nblocks - 1; i >= first; i--) {
        const EffAct *x = i > 0 ? m->blk[i - 1].out : m->stem_act;
        EffAct *dx = block_backward(m, i, x, dout, t1, t2, i > first || stem);
        t1 = dout; /* rotate: the old output gradient is free now */
        dout = dx;
        if (m->grad_ready) m->grad_ready(m->grad_ready_arg, eff_model_block_first_param(m, i));
    }
    if (!stem) return; /* the stem (and the blocks below `first`) are frozen: no gradient below */
    const size_t M1 = (size_t)N * m->H1 * m->H1;
    TIMED(m, EFF_PROF_BN, be->batchnorm_backward(be, t1, G + m->stem_g, G + m->stem_b, m->bn_work, dout, m->stem_conv, m->stem_act, m->stem_mean,
                                                 m->stem_rstd, P + m->stem_g, P + m->stem_b, (int)M1, m->stem_c, 1));
    TIMED(m, EFF_PROF_CONV, be->conv2d_backward(be, NULL, G + m->stem_w, m->stem_col, t1, m->x, P + m->stem_w, N, m->R, m->R, 3,
                                                m->stem_c, 3, m->spec.stem_stride, 1));
    if (m->grad_ready) m->grad_ready(m->grad_ready_arg, 0);
}

static float eager_step(EffModel *m, uint64_t drop_key, float loss_scale, const EffStepHooks *h) {
    eff_model_zero_grad(m);
    const float loss = eff_model_forward_resident(m, 1, 1, drop_key);
    eff_model_backward(m, loss_scale);
    if (h && h->tail) h->tail(h->arg);
    return loss;
}

/* Record the step into the backend's graph. 0 when the capture failed (the
 * backend has warned): nothing was recorded or run, and this model runs its
 * steps eagerly from now on; hooks->discard undoes what the recording's
 * hooks began (e.g. the all-reduce buckets it would have launched). */
static int record_step(EffModel *m, uint64_t drop_key, float loss_scale, const EffStepHooks *hooks) {
    const EffBackend *be = m->be;
    if (be->graph_begin(be, m)) {
        (void)eager_step(m, drop_key, loss_scale, hooks); /* recorded, not run */
        m->bn_batches--; /* the recording's forward counted a batch; the replay (or the eager rerun) counts it */
        if (be->graph_end(be)) return 1;
    }
    m->use_graph = 0;
    if (hooks && hooks->discard) hooks->discard(hooks->arg);
    return 0;
}

float eff_model_train_step(EffModel *m, uint64_t drop_key, float loss_scale, const EffStepHooks *hooks) {
    const EffBackend *be = m->be;
    const long k = m->train_steps++;
    if (!m->use_graph || !be->graph_begin || m->profile || k == 0) return eager_step(m, drop_key, loss_scale, hooks);
    if (!be->graph_ready(be, m) && !record_step(m, drop_key, loss_scale, hooks))
        return eager_step(m, drop_key, loss_scale, hooks);
    uint64_t sc[EFF_STEP_NSCALARS] = {0};
    sc[EFF_STEP_DROP_KEY] = drop_key;
    memcpy(&sc[EFF_STEP_GRAD_SCALE], &loss_scale, sizeof loss_scale);
    be->graph_launch(be, sc);
    m->drop_key = drop_key;
    m->last_train = 1;
    m->bn_batches++;
    if (hooks && hooks->wait) hooks->wait(hooks->arg); /* e.g. the NCCL watchdog; then graph_loss does not block */
    return be->graph_loss(be);
}

void eff_model_zero_grad(EffModel *m) { m->be->zero(m->be, m->grad, m->ptab.total * sizeof(float)); }

/* An optimizer range cut where its learning rate changes: below fc_w (the
 * backbone) lr x backbone_lr_mult, from fc_w on (the classifier) lr. With
 * one learning rate (mult 1) the range stays whole. Returns the parts (1-2). */
static int lr_parts(const EffModel *m, EffSeg g, float lr, EffSeg part[2], float part_lr[2]) {
    const size_t cut = m->fc_w, hi = g.lo + g.n;
    if (m->backbone_lr_mult == 1.0f || hi <= cut || g.lo >= cut) {
        part[0] = g;
        part_lr[0] = m->backbone_lr_mult == 1.0f || g.lo >= cut ? lr : lr * m->backbone_lr_mult;
        return 1;
    }
    part[0] = (EffSeg){g.lo, cut - g.lo};
    part[1] = (EffSeg){cut, hi - cut};
    part_lr[0] = lr * m->backbone_lr_mult;
    part_lr[1] = lr;
    return 2;
}

/* Each optimizer range (each part of it: lr_parts) in turn; its state is packed at `at` in adam_m/v. */
static void adam(EffModel *m, float lr, float beta1, float beta2, float eps, float weight_decay, int decoupled,
                 double *g_sumsq) {
    m->adam_t++;
    double sum = 0, s = 0;
    size_t at = 0;
    for (int i = 0; i < m->opt_nseg; i++) {
        EffSeg part[2];
        float plr[2];
        for (int j = 0, np = lr_parts(m, m->opt_seg[i], lr, part, plr); j < np; at += part[j++].n) {
            const EffSeg g = part[j];
            TIMED(m, EFF_PROF_OPTIM, m->be->adam_step(m->be, m->param + g.lo, m->grad + g.lo, m->adam_m + at,
                                                      m->adam_v + at, g.n, plr[j], beta1, beta2, eps, weight_decay,
                                                      decoupled, m->adam_t, g_sumsq ? &s : NULL));
            sum += s;
        }
    }
    if (g_sumsq) *g_sumsq = sum;
}

static void sgd(EffModel *m, float lr, float momentum, float weight_decay, int nesterov, double *g_sumsq) {
    m->adam_t++;
    double sum = 0, s = 0;
    size_t at = 0;
    for (int i = 0; i < m->opt_nseg; i++) {
        EffSeg part[2];
        float plr[2];
        for (int j = 0, np = lr_parts(m, m->opt_seg[i], lr, part, plr); j < np; at += part[j++].n) {
            const EffSeg g = part[j];
            TIMED(m, EFF_PROF_OPTIM, m->be->sgd_step(m->be, m->param + g.lo, m->grad + g.lo, m->adam_m + at, g.n,
                                                     plr[j], momentum, weight_decay, nesterov, m->adam_t == 1,
                                                     g_sumsq ? &s : NULL));
            sum += s;
        }
    }
    if (g_sumsq) *g_sumsq = sum;
}

double eff_model_grad_sumsq(const EffModel *m) {
    double sum = 0;
    for (int i = 0; i < m->opt_nseg; i++) sum += m->be->sumsq(m->be, m->grad + m->opt_seg[i].lo, m->opt_seg[i].n);
    return sum;
}

void eff_seg_copy(const EffSeg *seg, int nseg, float *full, float *packed, int to_full) {
    for (int i = 0; i < nseg; packed += seg[i++].n) {
        if (to_full) memcpy(full + seg[i].lo, packed, seg[i].n * sizeof(float));
        else memcpy(packed, full + seg[i].lo, seg[i].n * sizeof(float));
    }
}

void eff_model_adam_step(EffModel *m, float lr, float beta1, float beta2, float eps, float weight_decay,
                         int decoupled) {
    adam(m, lr, beta1, beta2, eps, weight_decay, decoupled, NULL);
}

void eff_model_sgd_step(EffModel *m, float lr, float momentum, float weight_decay, int nesterov) {
    sgd(m, lr, momentum, weight_decay, nesterov, NULL);
}

void eff_model_set_optimizer_ranges(EffModel *m, const EffSeg *seg, int nseg) {
    size_t n = 0;
    for (int i = 0; i < nseg; i++) {
        EFF_CHECK(seg[i].lo >= m->train_lo && seg[i].lo + seg[i].n <= m->ptab.total &&
                  (i == 0 || seg[i].lo >= seg[i - 1].lo + seg[i - 1].n), "optimizer range %d [%zu, %zu) is out of "
                  "order or outside the trainable parameters [%zu, %zu) (internal error)", i, seg[i].lo,
                  seg[i].lo + seg[i].n, m->train_lo, (size_t)m->ptab.total);
        n += seg[i].n;
    }
    const EffBackend *be = m->be;
    const size_t bytes = (n ? n : 1) * sizeof(float), old = m->opt_n ? m->opt_n : 1;
    float *full = eff_calloc(m->ptab.total, sizeof(float), "optimizer state staging"); /* zeros: no state yet */
    const int whole = m->opt_nseg == 1 && m->opt_seg[0].lo == 0 && m->opt_n == m->ptab.total;
    float *from = whole ? NULL : eff_malloc(old * sizeof(float), "optimizer state staging");
    float *packed = eff_malloc(bytes, "optimizer state staging");
    float **state[2] = {&m->adam_m, &m->adam_v};
    for (int k = 0; k < 2; k++) {
        float *mine = be->alloc(be, bytes, k ? "Adam second moments (the optimizer's ranges)" : "Adam first moments "
                                "(the optimizer's ranges)");
        if (whole) { /* the common case, a fresh state: straight in (no second staging copy touched) */
            be->download(be, full, *state[k], m->opt_n * sizeof(float));
        } else {
            be->download(be, from, *state[k], m->opt_n * sizeof(float));
            eff_seg_copy(m->opt_seg, m->opt_nseg, full, from, 1);
        }
        eff_seg_copy(seg, nseg, full, packed, 0);
        if (n) be->upload(be, mine, packed, n * sizeof(float));
        be->release(be, *state[k]);
        *state[k] = mine;
    }
    eff_free(full);
    eff_free(from);
    eff_free(packed);
    eff_free(m->opt_seg);
    m->opt_seg = eff_malloc(sizeof(EffSeg) * (size_t)(nseg ? nseg : 1), "optimizer ranges");
    memcpy(m->opt_seg, seg, sizeof(EffSeg) * (size_t)nseg);
    m->opt_nseg = nseg;
    m->opt_n = n;
}

double eff_model_optimizer_step(EffModel *m, const EffOptimizer *o) {
    double s = 0.0;
    if (!strcmp(o->name, "sgd")) sgd(m, o->lr, o->momentum, o->weight_decay, o->nesterov, &s);
    else if (!strcmp(o->name, "adam") || !strcmp(o->name, "adamw"))
        adam(m, o->lr, o->beta1, o->beta2, o->eps, o->weight_decay, !strcmp(o->name, "adamw"), &s);
    else EFF_FATAL("optimizer '%s' unknown\nHINT: optim.name is one of adam|adamw|sgd", o->name);
    return s;
}
