/* test_reference.c: the C model against PyTorch, exactly.
 *
 * Reads a fixture written by tests/reference/make_fixture.py (PyTorch 1.13,
 * our own module of the seed's architecture): random weights, an input batch,
 * labels, and PyTorch's logits, loss, every gradient, BN running stats, eval
 * logits, and the weights after 3 Adam steps. Loads the same weights through
 * the parameter table's layout conversion and checks, per the issue:
 *   logits, loss        rel err <= 1e-4      eval logits  <= 1e-4
 *   each gradient       ||a-b||/||b|| <= 1e-3
 *   BN running stats    <= 1e-5              Adam x3 weights <= 1e-4
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

typedef struct Worst { double err; char name[80]; } Worst;

static void note(Worst *w, double err, const char *name) {
    if (err > w->err || w->name[0] == '\0') { w->err = err; snprintf(w->name, sizeof w->name, "%s", name); }
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

/* Compare every view of `tab` in buffer `ours` against group `grp` of the fixture. */
static void compare_table(TestState *ts, hid_t f, const char *path, const EffTable *tab, const float *ours,
                          const char *grp, double tol, Worst *w, const EffModel *grad_of) {
    /* grad_of: the model whose gradients these are (enables the structural-zero rule), or NULL */
    size_t maxn = 0;
    for (int i = 0; i < tab->count; i++) maxn = tab->views[i].numel > maxn ? tab->views[i].numel : maxn;
    float *ref = eff_malloc(maxn * sizeof(float), "reference tensor"), *mine = eff_malloc(maxn * sizeof(float), "tensor");
    char name[160];
    double prev_norm = 0; /* norm of the previous tensor's gradient: project_bn.weight precedes .bias */
    for (int i = 0; i < tab->count; i++) {
        const EffView *v = &tab->views[i];
        snprintf(name, sizeof name, "%s/%s", grp, v->name);
        eff_h5_read_f32(f, path, name, ref, v->numel);
        eff_view_to_torch(v, ours + v->offset, mine);
        if (grad_of && structurally_zero(grad_of, v->name)) {
            double na = 0, nb = 0;
            for (size_t k = 0; k < v->numel; k++) { na += (double)mine[k] * mine[k]; nb += (double)ref[k] * ref[k]; }
            na = sqrt(na); nb = sqrt(nb);
            T_CHECK(ts, na <= 1e-4 * prev_norm && nb <= 1e-4 * prev_norm,
                    "%s should be ~0: ours %.3e, PyTorch %.3e, vs %.3e for the BN weight", name, na, nb, prev_norm);
            continue;
        }
        double err = t_rel_err(mine, ref, v->numel);
        note(w, err, v->name);
        T_CHECK(ts, err <= tol, "%s: rel err %.3e > %.0e", name, err, tol);
        prev_norm = 0;
        for (size_t k = 0; k < v->numel; k++) prev_norm += (double)ref[k] * ref[k];
        prev_norm = sqrt(prev_norm);
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
    eff_h5_read_f32(f, path, "/input", x, (size_t)N * R * R * 3);
    eff_h5_read_i32(f, path, "/labels", y, (size_t)N);

    /* train-mode forward + backward */
    eff_model_zero_grad(&m);
    float loss = eff_model_forward(&m, x, y, 1, 0);
    eff_model_backward(&m, 1.0f);
    float ref_loss;
    eff_h5_read_f32(f, path, "/train/loss", &ref_loss, 1);
    eff_h5_read_f32(f, path, "/train/logits", ref, (size_t)N * K);
    double e_logits = t_rel_err(m.logits, ref, (size_t)N * K), e_loss = fabs(loss - ref_loss) / fabs(ref_loss);
    T_CHECK(&ts, e_logits <= 1e-4, "train logits rel err %.3e > 1e-4", e_logits);
    T_CHECK(&ts, e_loss <= 1e-4, "loss %.7f vs PyTorch %.7f: rel err %.3e > 1e-4", loss, ref_loss, e_loss);
    Worst wg = {0}, wb = {0}, wa = {0}, wab = {0};
    compare_table(&ts, f, path, &m.ptab, m.grad, "/train/grad", 1e-3, &wg, &m);
    compare_table(&ts, f, path, &m.btab, m.bufs, "/train/buffers", 1e-5, &wb, NULL);
    int32_t nbt = -1;
    eff_h5_read_i32(f, path, "/train/buffers/stem.1.num_batches_tracked", &nbt, 1);
    T_CHECK(&ts, m.bn_batches == nbt, "num_batches_tracked %lld vs PyTorch %d", (long long)m.bn_batches, nbt);

    /* eval-mode forward (running statistics) */
    eff_model_forward(&m, x, NULL, 0, 0);
    eff_h5_read_f32(f, path, "/eval/logits", ref, (size_t)N * K);
    double e_eval = t_rel_err(m.logits, ref, (size_t)N * K);
    T_CHECK(&ts, e_eval <= 1e-4, "eval logits rel err %.3e > 1e-4", e_eval);

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
    Worst wfree = {0};
    {
        TestState quiet = {0}; /* informative only: see the header comment */
        FILE *saved = stdout;
        stdout = fopen("/dev/null", "w");
        compare_table(&quiet, f, path, &m.ptab, m.param, "/adam3", 1e-4, &wfree, NULL);
        fclose(stdout);
        stdout = saved;
    }

    /* Adam arithmetic on PyTorch's per-step gradients: must match to 1e-4. */
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
    compare_table(&ts, f, path, &m.ptab, m.param, "/adam3", 1e-4, &wa, NULL);
    double e_losses = 0;
    for (int s = 0; s < 3; s++) e_losses = fmax(e_losses, fabs(losses[s] - ref_losses[s]) / fabs(ref_losses[s]));

    printf("  %-30s %.3e\n", "train logits", e_logits);
    printf("  %-30s %.3e  (%.7f vs %.7f)\n", "loss", e_loss, loss, ref_loss);
    printf("  %-30s %.3e  (worst: %s)\n", "gradients, worst tensor", wg.err, wg.name);
    printf("  %-30s %.3e  (worst: %s)\n", "BN running stats after step", wb.err, wb.name);
    printf("  %-30s %.3e\n", "eval logits", e_eval);
    printf("  %-30s %.3e  (worst: %s)\n", "weights, Adam x3 on PyTorch grads", wa.err, wa.name);
    printf("  %-30s losses %.5f %.5f %.5f vs PyTorch %.5f %.5f %.5f; weights rel err up to %.2e (informative)\n",
           "free-running 3 Adam steps", losses[0], losses[1], losses[2], ref_losses[0], ref_losses[1], ref_losses[2], wfree.err);
    (void)e_losses;
    (void)wab;
    eff_h5_close(f, path);
    eff_free(x);
    eff_free(y);
    eff_free(ref);
    eff_model_destroy(&m);
    return t_finish(&ts, "test_reference");
}
