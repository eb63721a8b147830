/* test_reference.c: the C model against PyTorch, held to PyTorch's own noise.
 *
 * Reads a fixture written by tests/reference/make_fixture.py (PyTorch 1.13,
 * our own module of the seed's architecture): random weights, an input batch,
 * labels; PyTorch fp32's logits, loss, every gradient, BN running stats and
 * eval logits; the same module run in float64 from the same weights; and the
 * weights after 3 Adam steps.
 *
 * Fidelity is measured against float64, per tensor:
 *   err(x)  = ||x - f64|| / ||f64||
 *   floor   = err(PyTorch fp32): the rounding noise of an fp32 implementation
 *             of this model on this input, with this machine's BLAS kernels
 *   pass if   err(effnet) <= K_FLOOR * floor + ABS_TERM
 * Every tensor's ratio err(effnet)/floor is printed, so a regression shows
 * where it is. A fixed tolerance does not work: at batch 4 the fp32 noise of
 * the gradients is ~1e-3 and moves with the BLAS kernel (issue 14).
 *
 * Two deviations, both measured and explained in docs/model.md:
 *  - blocks.*.project_bn.bias has a gradient that is exactly zero in exact
 *    arithmetic (every consumer of a block output is a 1x1 conv followed by a
 *    train-mode BN, which removes a per-channel shift). Both PyTorch and we
 *    return rounding noise there (~1e-6 of the weight's gradient), so we
 *    check that both are below 1e-4 of the matching project_bn.weight
 *    gradient instead of comparing noise with noise.
 *  - The weights after 3 Adam steps are checked with Adam fed PyTorch's own
 *    per-step gradients. The free-running 3-step trajectory at batch 4 is
 *    chaotic: PyTorch fp32 and PyTorch fp64 differ by ~6e-2 on weights after
 *    3 steps, because step 1 of Adam moves every weight by ~lr*sign(grad).
 *    We print our free-running trajectory and check that it descends. */
#include "common.h"
#include "h5io.h"
#include "model.h"
#include "rng.h"
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

/* K_FLOOR: over B0 fixtures of seeds 1-8, each run with OpenBLAS's default,
 * Haswell, SandyBridge and SkylakeX kernels (and fixtures made under Haswell),
 * the median ratio per run was 0.26-2.15 and the worst tensor's 4.27
 * (docs/model.md): effnet is as close to float64 as PyTorch fp32 is, and one
 * PyTorch run is one draw of the noise. 6 is 1.4x the worst draw measured; a
 * real bug gives ratios of 100 and more. */
#define K_FLOOR 6.0
/* ABS_TERM: 2^-24, fp32's unit roundoff: rounding the float64 result itself
 * to fp32 is already this far off, so no fp32 answer can be held closer. */
#define ABS_TERM 5.96e-8
/* Adam on PyTorch's own fp32 gradients is elementwise arithmetic on identical
 * inputs: measured 4.8e-8 (a few ulps from sqrt/division order); 1e-6 is 20x that. */
#define ADAM_TOL 1e-6

typedef struct Fid {
    TestState *ts;
    int n;
    double worst_ratio;
    char worst[96];
} Fid;

static double rel64(const float *a, const double *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) { double d = (double)a[i] - b[i]; num += d * d; den += b[i] * b[i]; }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* One tensor: effnet and PyTorch fp32 against float64. */
/* floor_min: a lower bound on the floor from related tensors (related_floor), or 0. */
static void fid_check(Fid *fd, const char *name, const float *ours, const float *pt32, const double *f64, size_t n,
                      double floor_min) {
    const double own = rel64(pt32, f64, n);
    double e = rel64(ours, f64, n), fl = fmax(own, floor_min), bound = K_FLOOR * fl + ABS_TERM;
    double ratio = fl > 0 ? e / fl : (e > 0 ? INFINITY : 0);
    int ok = e <= bound;
    printf("  %-46s effnet %.2e  fp32 floor %.2e  ratio %6.2f%s%s\n", name, e, fl, ratio,
           fl > own ? " (floor: a related tensor's)" : "", ok ? "" : "  <-- FAIL");
    T_CHECK(fd->ts, ok, "%s: error vs float64 %.3e > %.0f x PyTorch fp32's %.3e + %.1e", name, e, K_FLOOR, fl, ABS_TERM);
    fd->n++;
    if (ratio > fd->worst_ratio || fd->worst[0] == '\0') {
        fd->worst_ratio = ratio;
        snprintf(fd->worst, sizeof fd->worst, "%s", name);
    }
}

/* Block I's project BN bias (blocks.block_I.project_bn.bias; torchvision:
 * features.S.R.block.J.1.bias) is exactly zero-gradient when everything
 * that reads block I's output goes through a 1x1 conv and a train-mode BN:
 * the next block expands (or I is the last block, read by the head). A
 * following block without expansion feeds the depthwise conv, whose zero
 * padding breaks the shift invariance; so does stochastic depth on block I
 * when it drops some images of the batch and keeps others (the shift is then
 * scaled per image: 0 or 1/(1-p)). Found by offset, so both variants' names work. */
static int structurally_zero(const EffModel *m, const EffView *v) {
    for (int i = 0; i < m->nblocks; i++) {
        const EffBlock *b = &m->blk[i];
        if (v->offset != b->b2) continue;
        int dropped = 0; /* this step's mask: the op's own draw (src/rng.h) */
        for (int n = 0; b->sd > 0.0f && n < m->N; n++)
            dropped += eff_uniform_at(eff_sd_key(m->drop_key, (uint64_t)i), (uint64_t)n) < b->sd;
        const int uniform = dropped == 0 || dropped == m->N;
        return uniform && (i + 1 >= m->nblocks || m->blk[i + 1].expand);
    }
    return 0;
}

/* Mean cross-entropy of fp32 logits [n,k], computed in float64. */
static double xent64(const float *z, const int32_t *y, int n, int k) {
    double sum = 0;
    for (int i = 0; i < n; i++) {
        double mx = z[i * k];
        for (int j = 1; j < k; j++) mx = fmax(mx, z[i * k + j]);
        double se = 0;
        for (int j = 0; j < k; j++) se += exp((double)z[i * k + j] - mx);
        sum += mx + log(se) - z[i * k + y[i]];
    }
    return sum / n;
}

static double norm32(const float *x, size_t n) {
    double s = 0;
    for (size_t k = 0; k < n; k++) s += (double)x[k] * x[k];
    return sqrt(s);
}

/* PyTorch fp32's error of one tensor read from the fixture (grp: /train/grad, ...). */
static double floor_of(hid_t f, const char *path, const EffView *w, const char *grp) {
    float *pt = eff_malloc(w->numel * sizeof(float), "PyTorch fp32 tensor");
    double *f64 = eff_malloc(w->numel * sizeof(double), "float64 tensor");
    char name[160];
    snprintf(name, sizeof name, "%s/%s", grp, w->name);
    eff_h5_read_f32(f, path, name, pt, w->numel);
    snprintf(name, sizeof name, "/f64%s/%s", grp, w->name);
    eff_h5_read_f64(f, path, name, f64, w->numel);
    const double fl = rel64(pt, f64, w->numel);
    eff_free(pt);
    eff_free(f64);
    return fl;
}

/* Torchvision variant: a lower bound on a gradient's floor from the tensors
 * its gradient shares its noise with. One PyTorch run is one draw of the
 * fp32 noise, and some of this variant's gradients are contractions of an
 * upstream gradient onto very few numbers, where a draw can land far below
 * the level of everything around it:
 *  - a bias (BN, SE conv, classifier) is its layer's upstream gradient
 *    summed over images and positions (classifier.1.bias: 10 numbers from 4
 *    images), the weight the same gradient against the input: the bias's
 *    floor is at least its weight's;
 *  - the SE's fc1 gradients (weight and bias) are d(gate) projected onto
 *    Cse = cin / 4 directions (4-8 in B0's first stages): their floor is at
 *    least that of the same SE's fc2 tensors, through which all of it flows.
 * Measured (B0 32x32 batch 4, torchvision variant, seeds 1-12, docs/model.md):
 * per run the median ratio of all tensors was 0.3-1.9, like the seed's, but
 * with each tensor's own floor seed 3 gave features.2.1.block.2.fc1.bias a
 * PyTorch error of 4.7e-5 against 4.4e-4 for fc2.bias of the same SE (ours:
 * 6.8e-4, the block's level; ratio 14.5), and seed 6 classifier.1.bias
 * 2.2e-5 against 1.1e-4 for classifier.1.weight and 9.0e-5 for the logits
 * (ours 1.5e-4; ratio 6.5). The seed variant (no SE biases, Cse = 0.25 x
 * expanded, logits of std ~0.5 at init instead of ~4) keeps each tensor's
 * own floor, as measured and documented before. */
static double related_floor(hid_t f, const char *path, const EffModel *m, const EffView *v, const char *grp) {
    if (!m || !m->se_bias) return 0;
    double fl = 0;
    const size_t n = strlen(v->name);
    if (n > 5 && !strcmp(v->name + n - 5, ".bias")) {
        char w[96];
        snprintf(w, sizeof w, "%.*s.weight", (int)(n - 5), v->name);
        const EffView *wv = eff_table_find(&m->ptab, w);
        if (wv) fl = floor_of(f, path, wv, grp);
    }
    const EffBlock *b = NULL;
    for (int i = 0; i < m->nblocks && !b; i++)
        if (v->offset == m->blk[i].w_se1 || v->offset == m->blk[i].b_se1) b = &m->blk[i];
    for (int j = 0; b && j < m->ptab.count; j++) {
        const EffView *w = &m->ptab.views[j];
        if (w->offset == b->w_se2 || w->offset == b->b_se2) fl = fmax(fl, floor_of(f, path, w, grp));
    }
    return fl;
}

/* Every view of `tab` in buffer `ours` against fixture groups grp (PyTorch
 * fp32) and /f64<grp>. grad_of: the model whose gradients these are (enables
 * the structural-zero rule and related_floor), or NULL. */
static void fid_table(Fid *fd, hid_t f, const char *path, const EffTable *tab, const float *ours, const char *grp,
                      const EffModel *grad_of) {
    size_t maxn = 0;
    for (int i = 0; i < tab->count; i++) maxn = tab->views[i].numel > maxn ? tab->views[i].numel : maxn;
    float *pt = eff_malloc(maxn * sizeof(float), "PyTorch fp32 tensor"), *mine = eff_malloc(maxn * sizeof(float), "tensor");
    double *f64 = eff_malloc(maxn * sizeof(double), "float64 tensor");
    char name[160];
    double prev_norm = 0; /* norm of the previous tensor's gradient: project_bn.weight precedes .bias */
    for (int i = 0; i < tab->count; i++) {
        const EffView *v = &tab->views[i];
        snprintf(name, sizeof name, "%s/%s", grp, v->name);
        eff_h5_read_f32(f, path, name, pt, v->numel);
        eff_view_to_torch(v, ours + v->offset, mine);
        if (grad_of && structurally_zero(grad_of, v)) {
            double na = norm32(mine, v->numel), nb = norm32(pt, v->numel);
            /* 1e-4: both are rounding noise ~1e-6 of the BN weight's gradient (measured), a real shift is O(1) */
            T_CHECK(fd->ts, na <= 1e-4 * prev_norm && nb <= 1e-4 * prev_norm,
                    "%s should be ~0: ours %.3e, PyTorch %.3e, vs %.3e for the BN weight", name, na, nb, prev_norm);
            continue;
        }
        snprintf(name, sizeof name, "/f64%s/%s", grp, v->name);
        eff_h5_read_f64(f, path, name, f64, v->numel);
        fid_check(fd, v->name, mine, pt, f64, v->numel, related_floor(f, path, grad_of, v, grp));
        prev_norm = norm32(pt, v->numel);
    }
    eff_free(pt);
    eff_free(mine);
    eff_free(f64);
}

/* Weights after Adam against PyTorch's fp32 weights (same fp32 inputs). */
static void compare_table(TestState *ts, hid_t f, const char *path, const EffTable *tab, const float *ours,
                          const char *grp, double tol, double *worst, char *worst_name, size_t wcap) {
    size_t maxn = 0;
    for (int i = 0; i < tab->count; i++) maxn = tab->views[i].numel > maxn ? tab->views[i].numel : maxn;
    float *ref = eff_malloc(maxn * sizeof(float), "reference tensor"), *mine = eff_malloc(maxn * sizeof(float), "tensor");
    char name[160];
    for (int i = 0; i < tab->count; i++) {
        const EffView *v = &tab->views[i];
        snprintf(name, sizeof name, "%s/%s", grp, v->name);
        eff_h5_read_f32(f, path, name, ref, v->numel);
        eff_view_to_torch(v, ours + v->offset, mine);
        double err = t_rel_err(mine, ref, v->numel);
        if (err > *worst || worst_name[0] == '\0') { *worst = err; snprintf(worst_name, wcap, "%s", v->name); }
        if (ts) T_CHECK(ts, err <= tol, "%s: rel err %.3e > %.0e", name, err, tol);
    }
    eff_free(ref);
    eff_free(mine);
}

static void load_table(hid_t f, const char *path, const EffTable *tab, float *ours, const char *grp) {
    size_t maxn = 0;
    for (int i = 0; i < tab->count; i++) maxn = tab->views[i].numel > maxn ? tab->views[i].numel : maxn;
    float *tmp = eff_malloc(maxn * sizeof(float), "tensor");
    char name[160];
    for (int i = 0; i < tab->count; i++) {
        const EffView *v = &tab->views[i];
        snprintf(name, sizeof name, "%s/%s", grp, v->name);
        eff_h5_read_f32(f, path, name, tmp, v->numel);
        eff_view_from_torch(v, tmp, ours + v->offset);
    }
    eff_free(tmp);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_reference FIXTURE.h5 (made by tests/reference/make_fixture.py)\n");
        return 2;
    }
    const char *path = argv[1];
    TestState ts = {0};
    hid_t f = eff_h5_open_read(path);
    char model_name[64];
    eff_h5_attr_string(f, path, "model", model_name, sizeof model_name);
    const int R = (int)eff_h5_attr_double(f, path, "resolution"), N = (int)eff_h5_attr_double(f, path, "batch");
    const int K = (int)eff_h5_attr_double(f, path, "classes");
    const float lr = (float)eff_h5_attr_double(f, path, "lr"), wd = (float)eff_h5_attr_double(f, path, "weight_decay");
    /* optional: the variant (fixtures before it: the seed), stochastic depth and its drop key */
    char variant[32] = "seed";
    if (H5Aexists(f, "variant") > 0) eff_h5_attr_string(f, path, "variant", variant, sizeof variant);
    const double sd = H5Aexists(f, "stochastic_depth") > 0 ? eff_h5_attr_double(f, path, "stochastic_depth") : 0.0;
    const uint64_t drop_key = H5Aexists(f, "drop_key") > 0 ? (uint64_t)eff_h5_attr_double(f, path, "drop_key") : 0;
    /* model.stem_stride (fixtures before it: the stock stride 2) */
    const long stem_stride = H5Aexists(f, "stem_stride") > 0 ? (long)eff_h5_attr_double(f, path, "stem_stride") : 2;
    EffModelSpec spec;
    EFF_CHECK(eff_model_spec(model_name, &spec), "fixture names unknown model '%s'", model_name);
    EFF_CHECK(eff_model_spec_set_variant(&spec, variant), "fixture names unknown variant '%s'", variant);
    eff_model_spec_set_stem_stride(&spec, stem_stride);
    printf("reference: %s (%s variant, stem stride %ld) at %dx%d, batch %d, vs PyTorch fixture %s\n", model_name,
           variant, stem_stride, R, R, N, path);
    if (sd > 0)
        printf("stochastic depth %.2f, drop key %llu: %.0f of %.0f (block, image) pairs dropped in PyTorch's step\n", sd,
               (unsigned long long)drop_key, eff_h5_attr_double(f, path, "sd_dropped"), eff_h5_attr_double(f, path, "sd_draws"));

    EffModel m;
    eff_model_create(&m, eff_backend_cpu(), &spec, K);
    eff_model_set_dropout(&m, 0.0);
    eff_model_set_stochastic_depth(&m, sd);
    eff_model_alloc_acts(&m, N, R);
    load_table(f, path, &m.ptab, m.param, "/init");
    load_table(f, path, &m.btab, m.bufs, "/init");

    float *x = eff_malloc((size_t)N * R * R * 3 * sizeof(float), "input");
    int32_t *y = eff_malloc((size_t)N * sizeof(int32_t), "labels");
    float *ref = eff_malloc((size_t)N * K * sizeof(float), "reference logits");
    double *ref64 = eff_malloc((size_t)N * K * sizeof(double), "float64 reference logits");
    eff_h5_read_f32(f, path, "/input", x, (size_t)N * R * R * 3);
    eff_h5_read_i32(f, path, "/labels", y, (size_t)N);

    /* train-mode forward + backward, then eval mode with the updated running statistics */
    Fid fd = {.ts = &ts};
    eff_model_zero_grad(&m);
    float loss = eff_model_forward(&m, x, y, 1, drop_key);
    eff_model_backward(&m, 1.0f);
    printf("per tensor, error against PyTorch float64 (pass: effnet <= %.0f x fp32 floor + %.1e):\n", K_FLOOR, ABS_TERM);
    eff_h5_read_f32(f, path, "/train/logits", ref, (size_t)N * K);
    eff_h5_read_f64(f, path, "/f64/train/logits", ref64, (size_t)N * K);
    fid_check(&fd, "train logits", m.logits, ref, ref64, (size_t)N * K, 0);
    /* The loss is a function of the logits, which are held to the floor above
     * (a single scalar is one sample of noise, too few for a floor of its own):
     * check it against cross-entropy in float64 of our own logits. */
    double e_loss = fabs(loss - xent64(m.logits, y, N, K)) / fabs(xent64(m.logits, y, N, K));
    /* 1e-6: fp32 log-sum-exp over 10 classes and a mean over 4 rows is a few ulps (measured 1.7e-8 to 3.1e-8 across OpenBLAS kernels) */
    T_CHECK(&ts, e_loss <= 1e-6, "loss %.7f vs float64 cross-entropy of the same logits: rel err %.3e > 1e-6", loss, e_loss);
    fid_table(&fd, f, path, &m.ptab, m.grad, "/train/grad", &m);
    fid_table(&fd, f, path, &m.btab, m.bufs, "/train/buffers", NULL);
    int32_t nbt = -1;
    char nbt_name[160]; /* the first BN's: stem.1 / features.0.1 */
    snprintf(nbt_name, sizeof nbt_name, "/train/buffers/%.*s.num_batches_tracked",
             (int)(strlen(m.btab.views[0].name) - strlen(".running_mean")), m.btab.views[0].name);
    eff_h5_read_i32(f, path, nbt_name, &nbt, 1);
    T_CHECK(&ts, m.bn_batches == nbt, "num_batches_tracked %lld vs PyTorch %d", (long long)m.bn_batches, nbt);
    eff_model_forward(&m, x, NULL, 0, 0);
    eff_h5_read_f32(f, path, "/eval/logits", ref, (size_t)N * K);
    eff_h5_read_f64(f, path, "/f64/eval/logits", ref64, (size_t)N * K);
    fid_check(&fd, "eval logits", m.logits, ref, ref64, (size_t)N * K, 0);

    if (!eff_h5_exists(f, "/adam3")) { /* make_fixture.py --no-adam (B5-B7, stochastic depth) */
        printf("summary:\n  %-34s %d tensors, worst ratio %.2f (%s)\n", "effnet / PyTorch fp32 vs float64", fd.n,
               fd.worst_ratio, fd.worst);
        printf("  %-34s %.3e  (%.7f; tolerance 1e-6)\n  (no Adam steps in this fixture)\n",
               "loss vs float64 xent of our logits", e_loss, loss);
        eff_h5_close(f, path);
        eff_free(x); eff_free(y); eff_free(ref); eff_free(ref64);
        eff_model_destroy(&m);
        return t_finish(&ts, "test_reference");
    }
    /* Free-running: three Adam steps with our own gradients (reported). */
    float losses[3] = {loss, 0, 0}, ref_losses[3];
    eff_model_adam_step(&m, lr, 0.9f, 0.999f, 1e-8f, wd, 0);
    for (int s = 1; s < 3; s++) {
        eff_model_zero_grad(&m);
        losses[s] = eff_model_forward(&m, x, y, 1, 0);
        eff_model_backward(&m, 1.0f);
        eff_model_adam_step(&m, lr, 0.9f, 0.999f, 1e-8f, wd, 0);
    }
    eff_h5_read_f32(f, path, "/adam3_losses", ref_losses, 3);
    /* Seed variant: our free-running loss descends. Torchvision variant: it moves the way PyTorch's does, up
     * or down at each step. From torchvision's initialisation PyTorch's own B0 loss at 64x64 batch 4 rises at
     * step 3 for seeds 10 and 16 of 9-16 (3.90 -> 0.17 -> 0.67) and ours with it (0.66545 vs 0.66693: the
     * trajectories agree to ~1e-2 in the weights there); at 32x32 they are chaotic (docs/model.md). */
    if (spec.variant == EFF_VARIANT_SEED)
        T_CHECK(&ts, losses[1] < losses[0] && losses[2] < losses[1], "free-running loss does not descend: %.5f %.5f %.5f",
                losses[0], losses[1], losses[2]);
    for (int k = 0; spec.variant != EFF_VARIANT_SEED && k < 2; k++)
        T_CHECK(&ts, (losses[k + 1] < losses[k]) == (ref_losses[k + 1] < ref_losses[k]), "free-running loss step %d: "
                "%.5f -> %.5f, but PyTorch's %.5f -> %.5f", k + 2, losses[k], losses[k + 1], ref_losses[k], ref_losses[k + 1]);
    double wfree = 0, wa = 0;
    char wfree_name[80] = "", wa_name[80] = "";
    compare_table(NULL, f, path, &m.ptab, m.param, "/adam3", 0, &wfree, wfree_name, sizeof wfree_name); /* informative only */

    /* Adam arithmetic on PyTorch's per-step gradients. */
    load_table(f, path, &m.ptab, m.param, "/init");
    m.be->zero(m.be, m.adam_m, m.ptab.total * sizeof(float));
    m.be->zero(m.be, m.adam_v, m.ptab.total * sizeof(float));
    m.adam_t = 0;
    for (int s = 1; s <= 3; s++) {
        char grp[32];
        snprintf(grp, sizeof grp, "/adam_grads/step%d", s);
        load_table(f, path, &m.ptab, m.grad, grp);
        eff_model_adam_step(&m, lr, 0.9f, 0.999f, 1e-8f, wd, 0);
    }
    compare_table(&ts, f, path, &m.ptab, m.param, "/adam3", ADAM_TOL, &wa, wa_name, sizeof wa_name);

    printf("summary:\n  %-34s %d tensors, worst ratio %.2f (%s)\n", "effnet / PyTorch fp32 vs float64", fd.n,
           fd.worst_ratio, fd.worst);
    printf("  %-34s %.3e  (%.7f; tolerance 1e-6)\n", "loss vs float64 xent of our logits", e_loss, loss);
    printf("  %-34s %.3e  (worst: %s; tolerance %.0e)\n", "weights, Adam x3 on PyTorch grads", wa, wa_name, ADAM_TOL);
    printf("  %-34s losses %.5f %.5f %.5f vs PyTorch %.5f %.5f %.5f; weights rel err up to %.2e (informative)\n",
           "free-running 3 Adam steps", losses[0], losses[1], losses[2], ref_losses[0], ref_losses[1], ref_losses[2], wfree);
    eff_h5_close(f, path);
    eff_free(x);
    eff_free(y);
    eff_free(ref);
    eff_free(ref64);
    eff_model_destroy(&m);
    return t_finish(&ts, "test_reference");
}
