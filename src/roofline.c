/* roofline.c: FLOPs and compulsory bytes per op family, machine peaks (roofline.h).
 *
 * Per family, for M output pixels (N*H*W); forward then backward, walking
 * the network as model.c does. Activations and their gradients (the EffAct
 * tensors) count the backend's act_size bytes (4, or 2 in bf16/fp16 on
 * CUDA); the input image, weights, gradients, BN statistics, SE vectors,
 * logits and optimizer state count 4:
 *   stem conv 3x3/2   2*M*27*C fwd, 2*M*27*C bwd (dW only: the input needs no gradient)
 *   1x1 conv          2*M*Ci*Co fwd, 4*M*Ci*Co bwd (dX, dW)
 *   depthwise kxk     2*Mo*C*k^2 fwd, 4*Mo*C*k^2 bwd
 *   BN (+swish)       7 (+5) per element fwd, 10 (+5) bwd; read x, write y;
 *                     bwd read dy and x, write dx
 *   SE                pool + scale 2 per element, two FCs per image; fwd
 *                     read x write y, bwd read dy and x write dx
 *   add, dropout      1 per element; add reads 2 writes 1, dropout reads 1 writes 1
 *   Adam              12 per parameter; reads p, g, m, v, writes p, m, v
 *   SGD (momentum)    4 per parameter; reads p, g, buf, writes p, buf
 * Weights are read once per op and their gradients written once. The
 * compulsory traffic is what a one-pass, fused implementation would move:
 * below it an op cannot go, and extra passes show as a lower fraction. */
#include "roofline.h"

#include "common.h"

#include "ops/gemm.h"
#include <string.h>


/* acts: activation elements (act_bytes each); f32: fp32 elements */
static void add(EffStepCost *c, int slot, double flops, double acts, double f32) {
    c->flops[slot] += flops;
    c->bytes[slot] += c->act_bytes * acts + 4.0 * f32;
}

static void pw(EffStepCost *c, double M, double ci, double co) {
    add(c, EFF_PROF_PWCONV, 2 * M * ci * co, M * ci + M * co, ci * co);                       /* fwd */
    c->matmul_fwd += 2 * M * ci * co;
    add(c, EFF_PROF_PWCONV, 4 * M * ci * co, M * co + M * ci + M * ci, 2 * ci * co);          /* bwd */
}

static void bn(EffStepCost *c, double M, double C, int swish) {
    add(c, EFF_PROF_BN, (7.0 + 5 * swish) * M * C, 2 * M * C, 2 * C);
    add(c, EFF_PROF_BN, (10.0 + 5 * swish) * M * C, 3 * M * C, 4 * C);
}

/* the SE's two FC layers, C -> Cse -> C, per batch, forward */
static double fc_fwd(double N, double C, double cse) { return 2 * N * C * cse * 2; }

static void block_cost(const EffModel *m, const EffBlock *b, EffStepCost *c) {
    const double N = m->N, Mi = N * b->Hi * b->Wi, Mo = N * b->Ho * b->Wo, k2 = (double)b->k * b->k;
    if (b->expand) {
        pw(c, Mi, b->cin, b->ce);
        bn(c, Mi, b->ce, 1);
    }
    add(c, EFF_PROF_DWCONV, 2 * Mo * b->ce * k2, Mi * b->ce + Mo * b->ce, b->ce * k2);
    c->matmul_fwd += 2 * Mo * b->ce * k2 + fc_fwd(N, b->ce, b->cse);
    add(c, EFF_PROF_DWCONV, 4 * Mo * b->ce * k2, Mo * b->ce + 2 * Mi * b->ce, 2 * b->ce * k2);
    bn(c, Mo, b->ce, 1);
    const double fc = fc_fwd(N, b->ce, b->cse), fcw = 2.0 * b->ce * b->cse;
    add(c, EFF_PROF_SE, 2 * Mo * b->ce + fc, 2 * Mo * b->ce, fcw);
    add(c, EFF_PROF_SE, 3 * Mo * b->ce + 2 * fc, 3 * Mo * b->ce, 2 * fcw);
    pw(c, Mo, b->ce, b->cout);
    bn(c, Mo, b->cout, 0);
    if (b->drop > 0.0f) {
        add(c, EFF_PROF_ELEMWISE, Mo * b->cout, 2 * Mo * b->cout, 0);
        add(c, EFF_PROF_ELEMWISE, Mo * b->cout, 2 * Mo * b->cout, 0);
    }
    if (b->residual) {
        add(c, EFF_PROF_ELEMWISE, Mo * b->cout, 3 * Mo * b->cout, 0);
        add(c, EFF_PROF_ELEMWISE, Mi * b->cin, 3 * Mi * b->cin, 0);
    }
}

void eff_step_cost(const EffModel *m, int adam, EffStepCost *c) {
    memset(c, 0, sizeof *c);
    c->act_bytes = m->be ? (double)m->be->act_size : 4.0;
    const double N = m->N, M1 = N * m->H1 * m->H1, Mh = N * m->Hh * m->Hh, sc = m->stem_c;
    const double img = N * m->R * m->R * 3; /* the input batch: fp32 in every precision */
    add(c, EFF_PROF_CONV, 2 * M1 * 27 * sc, M1 * sc, img + 27 * sc);
    c->matmul_fwd += 2 * M1 * 27 * sc;
    add(c, EFF_PROF_CONV, 2 * M1 * 27 * sc, M1 * sc, img + 27 * sc);
    bn(c, M1, sc, 1);
    for (int i = 0; i < m->nblocks; i++) block_cost(m, &m->blk[i], c);
    const double cl = m->blk[m->nblocks - 1].cout, hc = m->head_c, K = m->classes;
    pw(c, Mh, cl, hc);
    bn(c, Mh, hc, 1);
    add(c, EFF_PROF_HEAD, 2 * Mh * hc + 6 * N * hc * K, 2 * Mh * hc, 2 * hc * K + 4 * N * K); /* pool, FC, loss; fwd + bwd */
    c->matmul_fwd += 2 * N * hc * K;
    const double P = (double)m->opt_n;
    if (adam) add(c, EFF_PROF_OPTIM, 12 * P, 0, 7 * P);
    else add(c, EFF_PROF_OPTIM, 4 * P, 0, 5 * P);
}

void eff_roofline_row(double flops, double bytes, double seconds, double peak_gflops, double peak_gbs, EffRoofRow *r) {
    memset(r, 0, sizeof *r);
    r->ms = 1e3 * seconds;
    r->gflop = flops / 1e9;
    r->mb = bytes / 1e6;
    r->intensity = bytes > 0 ? flops / bytes : 0;
    if (seconds > 0) {
        r->gflops = flops / seconds / 1e9;
        r->gbs = bytes / seconds / 1e9;
    }
    const double mem_roof = r->intensity * peak_gbs; /* GFLOP/s the memory roof allows */
    r->memory_bound = mem_roof < peak_gflops;
    const double bound = r->memory_bound ? mem_roof : peak_gflops;
    r->frac_flops = peak_gflops > 0 ? r->gflops / peak_gflops : 0;
    r->frac_gbs = peak_gbs > 0 ? r->gbs / peak_gbs : 0;
    r->frac_bound = bound > 0 ? r->gflops / bound : 0;
}

/* Datasheet figures: NVIDIA H100 (SXM5: 3.35 TB/s HBM3, 989.4 TFLOP/s dense
 * bf16/fp16 tensor, 66.9 fp32; PCIe: 2.0 TB/s, 756.5, 51.2; NVL: 3.9 TB/s,
 * 835.5, 60), H200 (4.8 TB/s, 989.4, 66.9), A100 SXM 80 GB (2.039 TB/s, 312,
 * 19.5). First match of the name wins: the specific names come first. */
void eff_gpu_peaks(const char *device_name, int precision, double *gflops, double *gbs, const char **what,
                   int *known) {
    static const struct { const char *key, *what; double tensor_tflops, fp32_tflops, tbs; } T[] = {
        {"H100 PCIe", "H100 PCIe datasheet", 756.5, 51.2, 2.0},
        {"H100 NVL", "H100 NVL datasheet", 835.5, 60.0, 3.9},
        {"H100", "H100 SXM datasheet", 989.4, 66.9, 3.35},
        {"H200", "H200 datasheet", 989.4, 66.9, 4.8},
        {"A100", "A100 SXM 80GB datasheet", 312.0, 19.5, 2.039},
    };
    int i = 0;
    const int n = (int)(sizeof T / sizeof T[0]);
    while (i < n && !(device_name && strstr(device_name, T[i].key))) i++;
    *known = i < n;
    if (i == n) i = 2; /* unknown: the H100 SXM figures */
    *gflops = 1e3 * (precision == EFF_PREC_FP32 ? T[i].fp32_tflops : T[i].tensor_tflops);
    *gbs = 1e3 * T[i].tbs;
    *what = *known ? T[i].what : "unknown device: H100 SXM datasheet assumed";
}

double eff_peak_sgemm_gflops(double seconds) {
    const int n = 1024;
    float *a = eff_alloc_aligned(sizeof(float) * n * n, "sgemm peak A"), *b = eff_alloc_aligned(sizeof(float) * n * n, "B");
    float *cm = eff_alloc_aligned(sizeof(float) * n * n, "sgemm peak C");
    for (int i = 0; i < n * n; i++) a[i] = b[i] = 1.0f / (float)(1 + i % 97);
    eff_sgemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, cm, n); /* warm-up */
    int reps = 0;
    const double t0 = eff_time();
    double dt;
    do {
        eff_sgemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, cm, n);
        reps++;
    } while ((dt = eff_time() - t0) < seconds);
    eff_free(a);
    eff_free(b);
    eff_free(cm);
    return 2.0 * n * n * (double)n * reps / dt / 1e9;
}

double eff_peak_copy_gbs(double seconds) {
    const size_t n = (size_t)64 << 20 >> 2; /* 64 MiB per buffer: far beyond the caches */
    float *src = eff_alloc_aligned(n * sizeof(float), "copy peak source"), *dst = eff_alloc_aligned(n * sizeof(float), "dst");
    for (size_t i = 0; i < n; i++) src[i] = (float)i;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dst[i] = src[i]; /* warm-up: first touch of dst */
    int reps = 0;
    const double t0 = eff_time();
    double dt;
    do {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) dst[i] = src[i];
        reps++;
    } while ((dt = eff_time() - t0) < seconds);
    eff_free(src);
    eff_free(dst);
    return 2.0 * n * sizeof(float) * reps / dt / 1e9;
}
