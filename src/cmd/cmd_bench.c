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

/* Per op family: the achieved GFLOP/s and GB/s (compulsory bytes) and the
 * fraction of the roofline bound, compute or memory (src/roofline.h). */
static void print_roofline(const EffModel *m, int adam, long steps, double peak_gflops, double peak_gbs) {
    EffStepCost c;
    eff_step_cost(m, adam, &c);
    printf("roofline (per step; bytes: each tensor read or written once; roofs: sgemm %.1f GFLOP/s, copy %.1f GB/s):\n",
           peak_gflops, peak_gbs);
    printf("  %-16s %9s %9s %9s %9s %8s %7s  %s\n", "op family", "ms", "GFLOP", "MB", "GFLOP/s", "GB/s", "flop/B",
           "of its bound");
    for (int i = 0; i < EFF_PROF_COUNT; i++) {
        const double t = m->prof[i] / steps, ai = c.flops[i] / c.bytes[i];
        const double bound = ai * peak_gbs < peak_gflops ? ai * peak_gbs : peak_gflops; /* GFLOP/s */
        const double achieved = t > 0 ? c.flops[i] / t / 1e9 : 0;
        printf("  %-16s %9.2f %9.3f %9.1f %9.1f %8.1f %7.1f  %5.1f%% (%s)\n", eff_prof_names[i], 1e3 * t, c.flops[i] / 1e9,
               c.bytes[i] / 1e6, achieved, t > 0 ? c.bytes[i] / t / 1e9 : 0, ai, 100 * achieved / bound,
               ai * peak_gbs < peak_gflops ? "memory" : "compute");
    }
}

int cmd_bench(int argc, char **argv) {
    const char *model = "efficientnet-b0", *backend = "cpu", *precision = "bf16";
    long resolution = 32, batch = 64, threads = 2, steps = 10, warmup = 2, classes = 10, seed = 1;
    long device = 0;
    int json = 0, profile = 0, deterministic = 0, eager = 0, recompute = 0;
    CliOpt opts[] = {
        {"--model", CLI_STR, &model, 0, 0, "efficientnet-b0 .. efficientnet-b7"},
        {"--resolution", CLI_INT, &resolution, 8, 2048, "input resolution"},
        {"--batch", CLI_INT, &batch, 1, 65536, "images per step"},
        {"--threads", CLI_INT, &threads, 1, 4096, "OpenMP and BLAS threads"},
        {"--steps", CLI_INT, &steps, 1, 1000000, "timed steps"},
        {"--warmup", CLI_INT, &warmup, 0, 1000000, "untimed steps first"},
        {"--classes", CLI_INT, &classes, 1, 100000, "number of classes"},
        {"--seed", CLI_INT, &seed, 0, 2147483647L, "weights and data seed"},
        {"--profile", CLI_BOOL, &profile, 0, 0, "print a per-op time breakdown"},
        {"--recompute", CLI_BOOL, &recompute, 0, 0, "rebuild the blocks' BN+swish outputs in backward (train.recompute = bnswish)"},
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
    m->recompute = recompute;
    eff_model_alloc_acts(m, (int)batch, (int)resolution);
    m->use_graph = cuda && !eager && !profile; /* --profile times each op: eager */
    if (m->use_graph && warmup < 2) { /* step 0 runs eagerly, step 1 records the graph: neither is a replay */
        printf("bench: --warmup %ld raised to 2 so that the timed steps are CUDA-graph replays (use --eager to time "
               "eager launches)\n", warmup);
        warmup = 2;
    }

    const size_t nx = (size_t)batch * resolution * resolution * 3;
    float *x = eff_malloc(nx * sizeof(float), "synthetic images");
    int32_t *y = eff_malloc((size_t)batch * sizeof(int32_t), "synthetic labels");
    EffRng rng;
    eff_rng_seed(&rng, ctx.seed + 1);
    for (size_t i = 0; i < nx; i++) x[i] = (float)eff_rng_normal(&rng);
    for (long i = 0; i < batch; i++) y[i] = (int32_t)(eff_rng_next(&rng) % (uint64_t)classes);
    eff_model_set_input(m, x, y); /* resident, as with GPU augmentation or a loader's filled batch */

    if (!json)
        printf("bench: %s %ldx%ld batch %ld threads %ld, %ld warm-up + %ld timed steps (backend %s, %s%s)\n", spec.name,
               resolution, resolution, batch, threads, warmup, steps, ctx.be->name, eff_precision_name(ctx.be->precision),
               m->use_graph ? ", CUDA graph" : "");
    double peak_gflops = 0, peak_gbs = 0; /* the roofline's roofs, this machine, these threads */
    if (profile && !cuda) {
        peak_gflops = eff_peak_sgemm_gflops(0.3);
        peak_gbs = eff_peak_copy_gbs(0.3);
        if (!json) printf("bench: machine peaks with %ld threads: sgemm %.1f GFLOP/s, copy %.1f GB/s (depthwise: %s)\n",
                          threads, peak_gflops, peak_gbs, dwconv_isa_name(dwconv_isa_best()));
    }
    char gpu[300] = "";
    if (cuda) {
        eff_cuda_describe((int)device, gpu, sizeof gpu);
        if (!json) printf("bench: device %ld: %s\n", device, gpu);
    }
    /* the optimizer `effnet train` runs by default (the seed's Adam, lr 1e-3, weight decay 1e-4) */
    EffConfig defaults;
    eff_config_defaults(&defaults);
    const EffOptimizer opt = {.name = defaults.optimizer, .lr = (float)defaults.lr, .beta1 = (float)defaults.beta1,
                              .beta2 = (float)defaults.beta2, .eps = (float)defaults.eps,
                              .weight_decay = (float)defaults.weight_decay, .momentum = (float)defaults.momentum,
                              .nesterov = (int)defaults.nesterov};
    float loss = 0.0f;
    double t0 = 0.0;
    for (long s = 0; s < warmup + steps; s++) {
        if (s == warmup) {
            ctx.be->synchronize(ctx.be);
            memset(m->prof, 0, sizeof m->prof);
            m->profile = profile;
            t0 = eff_time();
        }
        loss = eff_model_train_step(m, eff_key3(ctx.seed, (uint64_t)s, 0), 1.0f, NULL);
        eff_model_optimizer_step(m, &opt);
    }
    ctx.be->synchronize(ctx.be);
    const double dt = eff_time() - t0;
    const double ips = (double)batch * steps / dt, rss = eff_peak_rss_mb();
    double gpu_peak = 0, gpu_used = 0;
    if (cuda) eff_cuda_memory(ctx.be, &gpu_peak, &gpu_used);
    EFF_CHECK(loss == loss, "bench: loss is NaN after %ld steps", warmup + steps);
    if (json) {
        cJSON *o = eff_json_object();
        eff_json_str(o, "framework", "effnet");
        eff_json_str(o, "backend", ctx.be->name);
        eff_json_str(o, "model", spec.name);
        eff_json_int(o, "resolution", resolution);
        eff_json_int(o, "batch", batch);
        eff_json_int(o, "threads", threads);
        eff_json_int(o, "steps", steps);
        eff_json_num(o, "img_per_s", ips, "%.3f");
        eff_json_num(o, "step_ms", 1e3 * dt / steps, "%.3f");
        eff_json_num(o, "peak_rss_mb", rss, "%.1f");
        eff_json_num(o, "final_loss", loss, "%.6f");
        eff_json_str(o, "precision", eff_precision_name(ctx.be->precision));
        eff_json_bool(o, "cuda_graph", m->use_graph);
        if (cuda) {
            eff_json_str(o, "device", gpu);
            eff_json_num(o, "peak_gpu_mem_mb", gpu_peak, "%.1f");
            eff_json_num(o, "gpu_mem_used_mb", gpu_used, "%.1f");
        }
        if (profile) {
            cJSON *p = eff_json_add_object(o, "profile_ms_per_step");
            for (int i = 0; i < EFF_PROF_COUNT; i++) eff_json_num(p, eff_prof_names[i], 1e3 * m->prof[i] / steps, "%.3f");
        }
        eff_json_write(o, stdout, "standard output");
    } else {
        printf("bench: %.2f img/s, %.1f ms/step, peak RSS %.1f MiB, activations %.1f MiB, final loss %.4f\n", ips,
               1e3 * dt / steps, rss, eff_model_act_bytes(m) / 1048576.0, loss);
        if (cuda) printf("bench: peak GPU memory %.1f MiB allocated by effnet, %.1f MiB in use on the device\n", gpu_peak, gpu_used);
        if (profile) {
            double tot = 0;
            for (int i = 0; i < EFF_PROF_COUNT; i++) tot += m->prof[i];
            printf("per-op breakdown (ms/step, %% of step):\n");
            for (int i = 0; i < EFF_PROF_COUNT; i++)
                printf("  %-16s %9.2f  %5.1f%%\n", eff_prof_names[i], 1e3 * m->prof[i] / steps, 100.0 * m->prof[i] / dt);
            printf("  %-16s %9.2f  %5.1f%%\n", "(other)", 1e3 * (dt - tot) / steps, 100.0 * (dt - tot) / dt);
            if (!cuda) print_roofline(m, !strcmp(opt.name, "adam") || !strcmp(opt.name, "adamw"), steps, peak_gflops, peak_gbs);
        }
    }
    eff_free(x);
    eff_free(y);
    eff_model_destroy(m);
    eff_backend_cuda_destroy(cuda_be);
    return 0;
}
