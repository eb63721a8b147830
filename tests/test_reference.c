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
static void fid_check(Fid *fd, const char *name, const float *ours, const float *pt32, const double *f64, size_t n) {
    double e = rel64(ours, f64, n), fl = rel64(pt32, f64, n), bound = K_FLOOR * fl + ABS_TERM;
    double ratio = fl > 0 ? e / fl : (e > 0 ? INFINITY : 0);
    int ok = e <= bound;
    printf("  %-46s effnet %.2e  fp32 floor %.2e  ratio %6.2f%s\n", name, e, fl, ratio, ok ? "" : "  <-- FAIL");
    T_CHECK(fd->ts, ok, "%s: error vs float64 %.3e > %.0f x PyTorch fp32's %.3e + %.1e", name, e, K_FLOOR, fl, ABS_TERM);
    fd->n++;
    if (ratio > fd->worst_ratio || fd->worst[0] == '\0') {
        fd->worst_ratio = ratio;
        snprintf(fd->worst, sizeof fd->worst, "%s", name);
    }
}

/* blocks.block_I.project_bn.bias is exactly zero-gradient when everything
 * that reads block I's output goes through a 1x1 conv and a train-mode BN:
 * the next block expands (or I is the last block, read by the head). A
 * following block without expansion feeds the depthwise conv, whose zero
 * padding breaks the shift invariance. */
static int structurally_zero(const EffModel *m, const char *name) {
    int i;
    char rest[64];
    if (sscanf(name, "blocks.block_%d.%63s", &i, rest) != 2 || strcmp(rest, "project_bn.bias") != 0) return 0;
    return i + 1 >= m->nblocks || m->blk[i + 1].expand;
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

/* Every view of `tab` in buffer `ours` against fixture groups grp (PyTorch
 * fp32) and /f64<grp>. grad_of: the model whose gradients these are (enables
 * the structural-zero rule), or NULL. */
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
        if (grad_of && structurally_zero(grad_of, v->name)) {
            double na = norm32(mine, v->numel), nb = norm32(pt, v->numel);
            /* 1e-4: both are rounding noise ~1e-6 of the BN weight's gradient (measured), a real shift is O(1) */
            T_CHECK(fd->ts, na <= 1e-4 * prev_norm && nb <= 1e-4 * prev_norm,
                    "%s should be ~0: ours %.3e, PyTorch %.3e, vs %.3e for the BN weight", name, na, nb, prev_norm);
            continue;
        }
        snprintf(name, sizeof name, "/f64%s/%s", grp, v->name);
        eff_h5_read_f64(f, path, name, f64, v->numel);
        fid_check(fd, v->name, mine, pt, f64, v->numel);
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
    EffModelSpec spec;
    EFF_CHECK(eff_model_spec(model_name, &spec), "fixture names unknown model '%s'", model_name);
    printf("reference: %s at %dx%d, batch %d, vs PyTorch fixture %s\n", model_name, R, R, N, path);

    EffModel m;
    eff_model_create(&m, eff_backend_cpu(), &spec, K);
    eff_model_set_dropout(&m, 0.0);
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
    float loss = eff_model_forward(&m, x, y, 1, 0);
    eff_model_backward(&m, 1.0f);
    printf("per tensor, error against PyTorch float64 (pass: effnet <= %.0f x fp32 floor + %.1e):\n", K_FLOOR, ABS_TERM);
    eff_h5_read_f32(f, path, "/train/logits", ref, (size_t)N * K);
    eff_h5_read_f64(f, path, "/f64/train/logits", ref64, (size_t)N * K);
    fid_check(&fd, "train logits", m.logits, ref, ref64, (size_t)N * K);
    /* The loss is a function of the logits, which are held to the floor above
     * (a single scalar is one sample of noise, too few for a floor of its own):
     * check it against cross-entropy in float64 of our own logits. */
    double e_loss = fabs(loss - xent64(m.logits, y, N, K)) / fabs(xent64(m.logits, y, N, K));
    /* 1e-6: fp32 log-sum-exp over 10 classes and a mean over 4 rows is a few ulps (measured 1.7e-8 to 3.1e-8 across OpenBLAS kernels) */
    T_CHECK(&ts, e_loss <= 1e-6, "loss %.7f vs float64 cross-entropy of the same logits: rel err %.3e > 1e-6", loss, e_loss);
    fid_table(&fd, f, path, &m.ptab, m.grad, "/train/grad", &m);
    fid_table(&fd, f, path, &m.btab, m.bufs, "/train/buffers", NULL);
    int32_t nbt = -1;
    eff_h5_read_i32(f, path, "/train/buffers/stem.1.num_batches_tracked", &nbt, 1);
    T_CHECK(&ts, m.bn_batches == nbt, "num_batches_tracked %lld vs PyTorch %d", (long long)m.bn_batches, nbt);
    eff_model_forward(&m, x, NULL, 0, 0);
    eff_h5_read_f32(f, path, "/eval/logits", ref, (size_t)N * K);
    eff_h5_read_f64(f, path, "/f64/eval/logits", ref64, (size_t)N * K);
    fid_check(&fd, "eval logits", m.logits, ref, ref64, (size_t)N * K);

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
    T_CHECK(&ts, losses[1] < losses[0] && losses[2] < losses[1], "free-running loss does not descend: %.5f %.5f %.5f",
            losses[0], losses[1], losses[2]);
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
