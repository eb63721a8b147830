/* gemm_compare.c: the 1x1 convolutions' GEMMs (issue 16, part 3) timed with
 * OpenBLAS, BLIS and oneDNN side by side, on the exact shapes of one
 * EfficientNet training step (forward out = in w^T, backward dW += dout^T in
 * and dX = dout w; M = N*H*W rows, K and N the channel counts).
 *
 *   gemm_compare [--model efficientnet-b0] [--resolution 224] [--batch 8] [--reps 3]
 *                [--openblas LIB] [--blis LIB] [--dnnl LIB]
 *
 * Each library is dlopen'ed with RTLD_LOCAL, so their identically named
 * BLAS symbols never meet; a library that cannot be opened is reported and
 * skipped. Threads: OMP_NUM_THREADS (and BLIS_NUM_THREADS for BLIS) from
 * the environment. Per provider: the summed time of every 1x1-conv GEMM of
 * one step (best of --reps), its GFLOP/s, and the ratio to OpenBLAS; then
 * the ten most expensive shapes. Results are checked against OpenBLAS
 * (max relative difference printed). */
#define _GNU_SOURCE /* RTLD_DEEPBIND */
#include "backend/backend.h"
#include "common.h"
#include "model.h"

#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 }; /* the CBLAS enum values */
typedef void (*cblas_sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float,
                               float *, int);
typedef int (*dnnl_sgemm_fn)(char, char, int64_t, int64_t, int64_t, float, const float *, int64_t, const float *,
                             int64_t, float, float *, int64_t);

typedef struct { const char *name, *path; cblas_sgemm_fn cblas; dnnl_sgemm_fn dnnl; } Provider;
typedef struct { int M, N, K, ta, tb; float beta; int count; } Shape; /* row-major C[M][N] = op(A) op(B) */

static void gemm(const Provider *p, const Shape *s, const float *A, const float *B, float *C) {
    const int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
    if (p->cblas)
        p->cblas(ROW_MAJOR, s->ta ? TRANS : NO_TRANS, s->tb ? TRANS : NO_TRANS, s->M, s->N, s->K, 1.0f, A, lda, B, ldb,
                 s->beta, C, s->N);
    else
        EFF_CHECK(p->dnnl(s->ta ? 'T' : 'N', s->tb ? 'T' : 'N', s->M, s->N, s->K, 1.0f, A, lda, B, ldb, s->beta, C,
                          s->N) == 0, "dnnl_sgemm failed on %dx%dx%d", s->M, s->N, s->K);
}

static int open_provider(Provider *p) {
    void *h = dlopen(p->path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND); /* its own symbols first: BLIS's cblas layer must not call the sgemm_ of the OpenBLAS this program links */
    if (!h) { printf("%-9s skipped: %s\n", p->name, dlerror()); return 0; }
    if (!strcmp(p->name, "oneDNN")) p->dnnl = (dnnl_sgemm_fn)(uintptr_t)dlsym(h, "dnnl_sgemm");
    else p->cblas = (cblas_sgemm_fn)(uintptr_t)dlsym(h, "cblas_sgemm");
    if (!p->dnnl && !p->cblas) { printf("%-9s skipped: no sgemm symbol in %s\n", p->name, p->path); return 0; }
    return 1;
}

/* The three GEMMs of every 1x1 conv (expand, project, head) of one step; equal shapes merged. */
static int collect_shapes(const char *model, int R, int batch, Shape *out, int cap) {
    EffModelSpec spec;
    EFF_CHECK(eff_model_spec(model, &spec), "unknown model '%s'", model);
    EffModel m;
    memset(&m, 0, sizeof m);
    eff_model_create(&m, eff_backend_cpu(), &spec, 10);
    eff_model_alloc_acts(&m, batch, R);
    int n = 0;
    for (int i = 0; i <= m.nblocks; i++) {
        const EffBlock *b = i < m.nblocks ? &m.blk[i] : NULL;
        const int convs = b ? 1 + b->expand : 1;
        for (int c = 0; c < convs; c++) {
            int M, K, N;
            if (!b) { M = batch * m.Hh * m.Hh; K = m.blk[m.nblocks - 1].cout; N = m.head_c; }
            else if (b->expand && c == 0) { M = batch * b->Hi * b->Wi; K = b->cin; N = b->ce; }
            else { M = batch * b->Ho * b->Wo; K = b->ce; N = b->cout; }
            const Shape three[3] = {{M, N, K, 0, 1, 0.0f, 1}, {N, K, M, 1, 0, 1.0f, 1}, {M, K, N, 0, 0, 0.0f, 1}};
            for (int t = 0; t < 3; t++) {
                int j = 0;
                while (j < n && memcmp(&out[j], &three[t], offsetof(Shape, count))) j++;
                if (j < n) { out[j].count++; continue; }
                EFF_CHECK(n < cap, "too many shapes");
                out[n++] = three[t];
            }
        }
    }
    eff_model_destroy(&m);
    return n;
}

static void fill(float *x, size_t n, uint32_t seed) {
    for (size_t i = 0; i < n; i++) { seed = seed * 1664525u + 1013904223u; x[i] = (float)(seed >> 8) / 16777216.0f - 0.5f; }
}

int main(int argc, char **argv) {
    const char *model = "efficientnet-b0";
    int R = 224, batch = 8, reps = 3;
    Provider prov[3] = {{"OpenBLAS", "libopenblas.so.0", NULL, NULL},
                        {"BLIS", "/usr/lib/x86_64-linux-gnu/blis-openmp/libblis.so.4", NULL, NULL},
                        {"oneDNN", "libdnnl.so.2", NULL, NULL}};
    for (int a = 1; a + 1 < argc; a += 2) {
        if (!strcmp(argv[a], "--model")) model = argv[a + 1];
        else if (!strcmp(argv[a], "--resolution")) R = atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--batch")) batch = atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--reps")) reps = atoi(argv[a + 1]);
        else if (!strcmp(argv[a], "--openblas")) prov[0].path = argv[a + 1];
        else if (!strcmp(argv[a], "--blis")) prov[1].path = argv[a + 1];
        else if (!strcmp(argv[a], "--dnnl")) prov[2].path = argv[a + 1];
        else EFF_FATAL("unknown option '%s'\nHINT: see the comment at the top of tests/bench/gemm_compare.c", argv[a]);
    }
    Shape shapes[256];
    const int ns = collect_shapes(model, R, batch, shapes, 256);
    size_t maxa = 0, maxb = 0, maxc = 0;
    for (int i = 0; i < ns; i++) {
        const Shape *s = &shapes[i];
        maxa = (size_t)s->M * s->K > maxa ? (size_t)s->M * s->K : maxa;
        maxb = (size_t)s->K * s->N > maxb ? (size_t)s->K * s->N : maxb;
        maxc = (size_t)s->M * s->N > maxc ? (size_t)s->M * s->N : maxc;
    }
    float *A = eff_alloc_aligned(maxa * 4, "A"), *B = eff_alloc_aligned(maxb * 4, "B");
    float *C = eff_alloc_aligned(maxc * 4, "C"), *ref = eff_alloc_aligned(maxc * 4, "reference C");
    fill(A, maxa, 1);
    fill(B, maxb, 2);
    double total[3] = {0}, per[3][256] = {{0}}, flops = 0, worst[3] = {0};
    int ok[3];
    for (int p = 0; p < 3; p++) ok[p] = open_provider(&prov[p]);
    EFF_CHECK(ok[0], "OpenBLAS is the reference and could not be opened\nHINT: pass --openblas PATH");
    for (int i = 0; i < ns; i++) {
        const Shape *s = &shapes[i];
        flops += 2.0 * s->M * s->N * s->K * s->count;
        for (int p = 0; p < 3; p++) {
            if (!ok[p]) continue;
            double best = 1e30;
            for (int r = 0; r < reps + 1; r++) { /* the first call warms the library up */
                memset(C, 0, (size_t)s->M * s->N * 4);
                const double t0 = eff_time();
                gemm(&prov[p], s, A, B, C);
                const double dt = eff_time() - t0;
                if (r && dt < best) best = dt;
            }
            if (p == 0) memcpy(ref, C, (size_t)s->M * s->N * 4);
            double num = 0, den = 0;
            for (size_t j = 0; j < (size_t)s->M * s->N; j++) { num += fabs((double)C[j] - ref[j]); den += fabs((double)ref[j]); }
            worst[p] = fmax(worst[p], den > 0 ? num / den : num);
            per[p][i] = best * s->count;
            total[p] += per[p][i];
        }
    }
    printf("%s at %dx%d, batch %d: %d distinct 1x1-conv GEMM shapes, %.2f GFLOP per step; OMP_NUM_THREADS=%s\n", model, R, R,
           batch, ns, flops / 1e9, getenv("OMP_NUM_THREADS") ? getenv("OMP_NUM_THREADS") : "(unset)");
    printf("| provider | 1x1-conv GEMM ms per step | GFLOP/s | vs OpenBLAS | max rel. diff to OpenBLAS |\n|---|---|---|---|---|\n");
    for (int p = 0; p < 3; p++)
        if (ok[p])
            printf("| %s | %.1f | %.1f | %.2fx | %.1e |\n", prov[p].name, 1e3 * total[p], flops / total[p] / 1e9,
                   total[0] / total[p], worst[p]);
    printf("\nmost expensive shapes (OpenBLAS ms per step: OpenBLAS / BLIS / oneDNN):\n");
    for (int k = 0; k < 10 && k < ns; k++) {
        int j = -1;
        for (int i = 0; i < ns; i++) if (per[0][i] >= 0 && (j < 0 || per[0][i] > per[0][j])) j = i;
        const Shape *s = &shapes[j];
        printf("  M %6d N %5d K %6d %c%c x%d: %.2f / %.2f / %.2f ms\n", s->M, s->N, s->K, s->ta ? 'T' : 'N', s->tb ? 'T' : 'N',
               s->count, 1e3 * per[0][j], ok[1] ? 1e3 * per[1][j] : NAN, ok[2] ? 1e3 * per[2][j] : NAN);
        per[0][j] = -1;
    }
    eff_free(A); eff_free(B); eff_free(C); eff_free(ref);
    return 0;
}
