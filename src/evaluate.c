/* evaluate.c: per-sample loss and accuracy from the logits, on the host. */
#include "evaluate.h"
#include "common.h"

#include <math.h>

void eff_evaluate(EffModel *m, eff_loader *L, int64_t steps, EffEvalSums *s) {
    const int N = m->N, K = m->classes;
    float *logits = eff_malloc((size_t)N * K * sizeof(float), "eval logits");
    for (int64_t t = 0; t < steps; t++) {
        const eff_batch *b = eff_loader_next(L);
        EFF_CHECK(b->n == N, "eval batch %d != model batch %d", b->n, N);
        eff_model_forward(m, b->x, NULL, 0, 0);
        m->be->download(m->be, logits, m->logits, (size_t)N * K * sizeof(float));
        for (int i = 0; i < b->n_valid; i++) {
            const float *z = logits + (size_t)i * K;
            int arg = 0;
            for (int k = 1; k < K; k++) if (z[k] > z[arg]) arg = k;
            double mx = z[arg], sum = 0;
            for (int k = 0; k < K; k++) sum += exp((double)z[k] - mx);
            s->loss_sum += mx + log(sum) - z[b->y[i]];
            s->correct += arg == b->y[i];
            s->total += 1;
        }
    }
    eff_free(logits);
}
