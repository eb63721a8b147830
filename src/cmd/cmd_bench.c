/* cmd_bench.c: `effnet bench` -- full training steps (forward, backward, Adam)
 * on synthetic data, on the CPU or CUDA backend; prints images/s, peak RSS
 * (and peak GPU memory) and, with --profile, where the time goes per op family. */
#include "cmd/cli.h"
#include "common.h"
#include "config.h"
#include "context.h"
#include "jsonout.h"
#include "roofline.h"
#include "ops/ops.h"
#include "rng.h"

#include <stdio.h>
#include <string.h>

/* The roofline of a profiled run: per op family, the achieved GFLOP/s and GB/s
 * from its FLOPs and compulsory bytes (src/roofline.h) and the fraction of
 * each peak and of its bound. Peaks: measured on the CPU (sgemm, copy), the
 * device's datasheet figures on CUDA (eff_gpu_peaks), or --peak-gflops /
 * --peak-gbs. */
typedef struct {
    double gflops, gbs;
    const char *what; /* where the peaks come from */
} BenchPeaks;

static void roofline_rows(const EffModel *m, int adam, long steps, const BenchPeaks *pk, EffRoofRow *rows) {
    EffStepCost c;
    eff_step_cost(m, adam, &c);
    for (int i = 0; i < EFF_PROF_COUNT; i++)
        eff_roofline_row(c.flops[i], c.bytes[i], m->prof[i] / steps, pk->gflops, pk->gbs, &rows[i]);
}

static void print_roofline(const EffModel *m, int adam, long steps, const BenchPeaks *pk) {
    EffRoofRow r[EFF_PROF_COUNT];
    roofline_rows(m, adam, steps, pk, r);
    printf("roofline (per step; bytes: each tensor read or written once, activations %zu bytes; roofs: %.1f GFLOP/s, "
           "%.1f GB/s: %s):\n", m->be->act_size, pk->gflops, pk->gbs, pk->what);
    printf("  %-16s %9s %9s %9s %9s %8s %7s %7s %7s  %s\n", "op family", "ms", "GFLOP", "MB", "GFLOP/s", "GB/s",
           "flop/B", "%FLOP", "%GB/s", "of its bound");
    for (int i = 0; i < EFF_PROF_COUNT; i++)
        printf("  %-16s %9.2f %9.3f %9.1f %9.1f %8.1f %7.1f %6.1f%% %6.1f%%  %5.1f%% (%s)\n", eff_prof_names[i], r[i].ms,
               r[i].gflop, r[i].mb, r[i].gflops, r[i].gbs, r[i].intensity, 100 * r[i].frac_flops, 100 * r[i].frac_gbs,
               100 * r[i].frac_bound, r[i].memory_bound ? "memory" : "compute");
}

static void json_roofline(cJSON *o, const EffModel *m, int adam, long steps, const BenchPeaks *pk) {
    EffRoofRow r[EFF_PROF_COUNT];
    roofline_rows(m, adam, steps, pk, r);
    cJSON *pp = eff_json_add_object(o, "peaks");
    eff_json_num(pp, "gflops", pk->gflops, "%.1f");
    eff_json_num(pp, "gbs", pk->gbs, "%.1f");
    eff_json_str(pp, "source", pk->what);
    eff_json_int(pp, "act_bytes", (long long)m->be->act_size);
    cJSON *a = eff_json_add_array(o, "roofline");
    for (int i = 0; i < EFF_PROF_COUNT; i++) {
        cJSON *e = eff_json_add_object(a, NULL);
        eff_json_str(e, "family", eff_prof_names[i]);
        eff_json_num(e, "ms", r[i].ms, "%.4f");
        eff_json_num(e, "gflop", r[i].gflop, "%.6f");
        eff_json_num(e, "mb", r[i].mb, "%.4f");
        eff_json_num(e, "gflops", r[i].gflops, "%.3f");
        eff_json_num(e, "gbs", r[i].gbs, "%.3f");
        eff_json_num(e, "frac_flops", r[i].frac_flops, "%.5f");
        eff_json_num(e, "frac_gbs", r[i].frac_gbs, "%.5f");
        eff_json_num(e, "frac_bound", r[i].frac_bound, "%.5f");
        eff_json_str(e, "bound", r[i].memory_bound ? "memory" : "compute");
    }
}

/* The peaks of a --profile run: the overrides, else measured (CPU) or the
 * device's datasheet figures (CUDA). */
static void bench_peaks(int cuda, const char *gpu_name, int precision, long over_gflops, long over_gbs, BenchPeaks *pk) {
    static char what[160];
    int known = 1; /* an unknown device's roofs say so in pk->what */
    if (cuda) {
        eff_gpu_peaks(gpu_name, precision, &pk->gflops, &pk->gbs, &pk->what, &known);
    } else {
        pk->gflops = over_gflops > 0 ? 0 : eff_peak_sgemm_gflops(0.3);
        pk->gbs = over_gbs > 0 ? 0 : eff_peak_copy_gbs(0.3);
        pk->what = "measured here: sgemm, copy";
    }
    if (over_gflops > 0) pk->gflops = (double)over_gflops;
    if (over_gbs > 0) pk->gbs = (double)over_gbs;
    if (over_gflops > 0 && over_gbs > 0) snprintf(what, sizeof what, "--peak-gflops, --peak-gbs");
    else if (over_gflops > 0) snprintf(what, sizeof what, "--peak-gflops; GB/s: %s", pk->what);
    else if (over_gbs > 0) snprintf(what, sizeof what, "--peak-gbs; GFLOP/s: %s", pk->what);
    if (over_gflops > 0 || over_gbs > 0) pk->what = what;
}

/* What a run measured, for the report. */
typedef struct {
    const EffModelSpec *spec;
    const char *backend, *gpu;
    long resolution, batch, threads, steps;
    double dt, rss, gpu_peak, gpu_used;
    float loss;
    int cuda, profile, adam;
    BenchPeaks peaks;
} BenchResult;

static void report_json(const EffModel *m, const BenchResult *r) {
    cJSON *o = eff_json_object();
    eff_json_str(o, "framework", "effnet");
    eff_json_str(o, "backend", m->be->name);
    eff_json_str(o, "model", r->spec->name);
    eff_json_int(o, "resolution", r->resolution);
    eff_json_int(o, "batch", r->batch);
    eff_json_int(o, "threads", r->threads);
    eff_json_int(o, "steps", r->steps);
    eff_json_int(o, "stem_stride", m->spec.stem_stride);
    eff_json_int(o, "freeze_stages", m->freeze_stages); /* -1: nothing frozen, 0: the stem, N: stem + stages 1..N */
    eff_json_num(o, "img_per_s", (double)r->batch * r->steps / r->dt, "%.3f");
    eff_json_num(o, "step_ms", 1e3 * r->dt / r->steps, "%.3f");
    eff_json_num(o, "peak_rss_mb", r->rss, "%.1f");
    eff_json_num(o, "final_loss", r->loss, "%.6f");
    eff_json_str(o, "precision", eff_precision_name(m->be->precision));
    eff_json_bool(o, "cuda_graph", m->use_graph);
    if (r->cuda) {
        eff_json_str(o, "device", r->gpu);
        eff_json_num(o, "peak_gpu_mem_mb", r->gpu_peak, "%.1f");
        eff_json_num(o, "gpu_mem_used_mb", r->gpu_used, "%.1f");
    }
    if (r->profile) {
        cJSON *p = eff_json_add_object(o, "profile_ms_per_step");
        for (int i = 0; i < EFF_PROF_COUNT; i++) eff_json_num(p, eff_prof_names[i], 1e3 * m->prof[i] / r->steps, "%.3f");
        json_roofline(o, m, r->adam, r->steps, &r->peaks);
    }
    eff_json_write(o, stdout, "standard output");
}

static void report_text(const EffModel *m, const BenchResult *r) {
    printf("bench: %.2f img/s, %.1f ms/step, peak RSS %.1f MiB, activations %.1f MiB, final loss %.4f\n",
           (double)r->batch * r->steps / r->dt, 1e3 * r->dt / r->steps, r->rss, eff_model_act_bytes(m) / 1048576.0,
           r->loss);
    if (r->cuda)
        printf("bench: peak GPU memory %.1f MiB allocated by effnet, %.1f MiB in use on the device\n", r->gpu_peak,
               r->gpu_used);
    if (!r->profile) return;
    double tot = 0;
    for (int i = 0; i < EFF_PROF_COUNT; i++) tot += m->prof[i];
    printf("per-op breakdown (ms/step, %% of step%s):\n", r->cuda ? "; CUDA: eager, the stream synchronised around each op" : "");
    for (int i = 0; i < EFF_PROF_COUNT; i++)
        printf("  %-16s %9.2f  %5.1f%%\n", eff_prof_names[i], 1e3 * m->prof[i] / r->steps, 100.0 * m->prof[i] / r->dt);
    printf("  %-16s %9.2f  %5.1f%%\n", "(other)", 1e3 * (r->dt - tot) / r->steps, 100.0 * (r->dt - tot) / r->dt);
    print_roofline(m, r->adam, r->steps, &r->peaks);
}

/* Warm-up and timed steps with the default optimizer; the seconds of the timed ones. */
static double run_steps(EffModel *m, const EffContext *ctx, long warmup, long steps, int profile, float *loss) {
    EffConfig defaults; /* the optimizer `effnet train` runs by default (the seed's Adam, lr 1e-3, weight decay 1e-4) */
    eff_config_defaults(&defaults);
    const EffOptimizer opt = {.name = defaults.optimizer, .lr = (float)defaults.lr, .beta1 = (float)defaults.beta1,
                              .beta2 = (float)defaults.beta2, .eps = (float)defaults.eps,
                              .weight_decay = (float)defaults.weight_decay, .momentum = (float)defaults.momentum,
                              .nesterov = (int)defaults.nesterov};
    double t0 = 0.0;
    for (long s = 0; s < warmup + steps; s++) {
        if (s == warmup) {
            ctx->be->synchronize(ctx->be);
            memset(m->prof, 0, sizeof m->prof);
            m->profile = profile;
            t0 = eff_time();
        }
        *loss = eff_model_train_step(m, eff_key3(ctx->seed, (uint64_t)s, 0), 1.0f, NULL);
        eff_model_optimizer_step(m, &opt);
    }
    ctx->be->synchronize(ctx->be);
    return eff_time() - t0;
}

static void set_synthetic_input(EffModel *m, long batch, long resolution, long classes, uint64_t seed) {
    const size_t nx = (size_t)batch * resolution * resolution * 3;
    float *x = eff_malloc(nx * sizeof(float), "synthetic images");
    int32_t *y = eff_malloc((size_t)batch * sizeof(int32_t), "synthetic labels");
    EffRng rng;
    eff_rng_seed(&rng, seed + 1);
    for (size_t i = 0; i < nx; i++) x[i] = (float)eff_rng_normal(&rng);
    for (long i = 0; i < batch; i++) y[i] = (int32_t)(eff_rng_next(&rng) % (uint64_t)classes);
    eff_model_set_input(m, x, y); /* resident, as with GPU augmentation or a loader's filled batch */
    eff_free(x);
    eff_free(y);
}

int cmd_bench(int argc, char **argv) {
    const char *model = "efficientnet-b0", *backend = "cpu", *precision = "bf16", *variant = "seed", *freeze = "none";
    long resolution = 32, batch = 64, threads = 2, steps = 10, warmup = 2, classes = 10, seed = 1, stem_stride = 2;
    long device = 0, peak_gflops = 0, peak_gbs = 0;
    int json = 0, profile = 0, deterministic = 0, eager = 0, recompute = 0;
    CliOpt opts[] = {
        {"--model", CLI_STR, &model, 0, 0, "efficientnet-b0 .. efficientnet-b7"},
        {"--variant", CLI_STR, &variant, 0, 0, "seed (default) or torchvision"},
        {"--resolution", CLI_INT, &resolution, 8, 2048, "input resolution"},
        {"--batch", CLI_INT, &batch, 1, 65536, "images per step"},
        {"--threads", CLI_INT, &threads, 1, 4096, "OpenMP and BLAS threads"},
        {"--steps", CLI_INT, &steps, 1, 1000000, "timed steps"},
        {"--warmup", CLI_INT, &warmup, 0, 1000000, "untimed steps first"},
        {"--classes", CLI_INT, &classes, 1, 100000, "number of classes"},
        {"--seed", CLI_INT, &seed, 0, 2147483647L, "weights and data seed"},
        {"--profile", CLI_BOOL, &profile, 0, 0, "per op family: ms, GFLOP/s, GB/s against the roofs (CUDA: eager)"},
        {"--peak-gflops", CLI_INT, &peak_gflops, 1, 1000000000L, "--profile's compute roof, GFLOP/s (default: measured / datasheet)"},
        {"--peak-gbs", CLI_INT, &peak_gbs, 1, 100000000L, "--profile's memory roof, GB/s (default: measured / datasheet)"},
        {"--recompute", CLI_BOOL, &recompute, 0, 0, "rebuild the blocks' BN+swish outputs in backward (train.recompute = bnswish)"},
        {"--freeze", CLI_STR, &freeze, 0, 0, "train.freeze: none | stem | 1..7 (the stem and stages 1..N take no gradient)"},
        {"--stem-stride", CLI_INT, &stem_stride, 1, 2, "model.stem_stride: 2 (the model's own) or 1"},
        {"--backend", CLI_STR, &backend, 0, 0, "cpu | cuda | auto"},
        {"--precision", CLI_STR, &precision, 0, 0, "CUDA math: fp32 | bf16 | fp16"},
        {"--device", CLI_INT, &device, 0, 1024, "CUDA device"},
        {"--deterministic", CLI_BOOL, &deterministic, 0, 0, "CUDA: deterministic cuDNN algorithms only"},
        {"--eager", CLI_BOOL, &eager, 0, 0, "CUDA: launch every op each step instead of replaying a CUDA graph"},
        {"--json", CLI_BOOL, &json, 0, 0, "print one JSON object"},
    };
    if (cli_parse("bench", "[--model NAME] [--resolution R] [--batch B] [--threads T] [--steps N] [--json]", opts,
                  (int)(sizeof opts / sizeof opts[0]), argc, argv, 2))
        return 0;
    EffModelSpec spec;
    EFF_CHECK(eff_model_spec(model, &spec), "unknown model '%s'\nHINT: use efficientnet-b0 .. efficientnet-b7", model);
    EFF_CHECK(eff_model_spec_set_variant(&spec, variant), "unknown --variant '%s'\nHINT: use seed or torchvision", variant);
    eff_model_spec_set_stem_stride(&spec, stem_stride);
    EffConfig fc; /* --freeze checked and parsed as the config key */
    char assign[64], err[512];
    eff_config_defaults(&fc);
    snprintf(assign, sizeof assign, "train.freeze=%.40s", freeze);
    EFF_CHECK(eff_config_set(&fc, assign, err, sizeof err), "bench --freeze: %s", err);
    const int prec = eff_precision_parse(precision);
    EFF_CHECK(prec >= 0, "--precision '%s' unknown\nHINT: use fp32, bf16 or fp16", precision);
    EFF_CHECK(!strcmp(backend, "cpu") || !strcmp(backend, "cuda") || !strcmp(backend, "auto"),
              "--backend '%s' unknown\nHINT: use cpu, cuda or auto", backend);
    const int cuda = !strcmp(backend, "cuda") || (!strcmp(backend, "auto") && eff_cuda_device_count() > 0);
    EffBackend *cuda_be = cuda ? eff_backend_cuda_create((int)device, (EffPrecision)prec, deterministic) : NULL;
    EffContext ctx = {.be = cuda ? cuda_be : eff_backend_cpu(), .threads = (int)threads, .seed = (uint64_t)seed};
    eff_set_threads(ctx.threads);
    EffModel *m = &ctx.model;
    eff_model_create(m, ctx.be, &spec, (int)classes);
    eff_model_init_weights(m, ctx.seed);
    eff_model_set_freeze(m, eff_config_freeze_stages(&fc), 0);
    const EffSeg trainable = {m->train_lo, m->ptab.total - m->train_lo};
    if (m->train_lo) eff_model_set_optimizer_ranges(m, &trainable, 1); /* as effnet train: state for these only */
    m->recompute = recompute;
    eff_model_alloc_acts(m, (int)batch, (int)resolution);
    m->use_graph = cuda && !eager && !profile; /* --profile times each op: eager */
    if (m->use_graph && warmup < 2) { /* step 0 runs eagerly, step 1 records the graph: neither is a replay */
        printf("bench: --warmup %ld raised to 2 so that the timed steps are CUDA-graph replays (use --eager to time "
               "eager launches)\n", warmup);
        warmup = 2;
    }
    set_synthetic_input(m, batch, resolution, classes, ctx.seed);
    if (!json)
        printf("bench: %s %ldx%ld batch %ld threads %ld, %ld warm-up + %ld timed steps (backend %s, %s%s%s%s%s)\n",
               spec.name, resolution, resolution, batch, threads, warmup, steps, ctx.be->name,
               eff_precision_name(ctx.be->precision), m->use_graph ? ", CUDA graph" : "",
               stem_stride == 1 ? ", stem stride 1" : "", m->train_lo ? ", frozen: " : "", m->train_lo ? freeze : "");
    char gpu[300] = "";
    if (cuda) {
        eff_cuda_describe((int)device, gpu, sizeof gpu);
        if (!json) printf("bench: device %ld: %s\n", device, gpu);
    }
    BenchResult r = {.spec = &spec, .gpu = gpu, .resolution = resolution, .batch = batch, .threads = threads,
                     .steps = steps, .cuda = cuda, .profile = profile};
    if (profile) {
        bench_peaks(cuda, gpu, ctx.be->precision, peak_gflops, peak_gbs, &r.peaks);
        if (!json) printf("bench: roofs for --profile: %.1f GFLOP/s, %.1f GB/s (%s; depthwise on the CPU: %s)\n",
                          r.peaks.gflops, r.peaks.gbs, r.peaks.what, dwconv_isa_name(dwconv_isa_best()));
    }
    EffConfig defaults;
    eff_config_defaults(&defaults);
    r.adam = !strcmp(defaults.optimizer, "adam") || !strcmp(defaults.optimizer, "adamw");
    r.dt = run_steps(m, &ctx, warmup, steps, profile, &r.loss);
    r.rss = eff_peak_rss_mb();
    if (cuda) eff_cuda_memory(ctx.be, &r.gpu_peak, &r.gpu_used);
    EFF_CHECK(r.loss == r.loss, "bench: loss is NaN after %ld steps", warmup + steps);
    if (json) report_json(m, &r);
    else report_text(m, &r);
    eff_model_destroy(m);
    eff_backend_cuda_destroy(cuda_be);
    return 0;
}
