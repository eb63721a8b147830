/* cmd_info.c: `effnet info` -- model summary (counts, FLOPs, per-stage
 * table); `effnet info --devices` -- the CUDA devices this build can use. */
#include "cmd/cli.h"
#include "common.h"
#include "context.h"
#include "jsonout.h"

#include <stdio.h>
#include <string.h>

int cmd_info(int argc, char **argv) {
    const char *model = "efficientnet-b0", *variant = "seed";
    long classes = 10, resolution = 0, stem_stride = 2;
    int json = 0, devices = 0;
    CliOpt opts[] = {
        {"--devices", CLI_BOOL, &devices, 0, 0, "list the usable CUDA devices and exit"},
        {"--model", CLI_STR, &model, 0, 0, "efficientnet-b0 .. efficientnet-b7"},
        {"--variant", CLI_STR, &variant, 0, 0, "seed (default) or torchvision (docs/model.md)"},
        {"--classes", CLI_INT, &classes, 1, 100000, "number of classes"},
        {"--resolution", CLI_INT, &resolution, 0, 2048, "input resolution (0: the model's own)"},
        {"--stem-stride", CLI_INT, &stem_stride, 1, 2, "model.stem_stride: 2 (the model's own) or 1"},
        {"--json", CLI_BOOL, &json, 0, 0, "print one JSON object"},
    };
    if (cli_parse("info", "[--model NAME] [--variant seed|torchvision] [--classes N] [--resolution R] [--json] [--devices]",
                  opts, (int)(sizeof opts / sizeof opts[0]), argc, argv, 2))
        return 0;
    if (devices) {
        char why[512];
        const int n = eff_cuda_device_count_why(why, sizeof why); /* exits naming the versions if CUDA is broken */
        printf("cuda backend %s\ncuda devices %d\n", eff_cuda_available() ? "built" : "not built", n);
        if (n == 0) printf("cuda why %s\n", why);
        for (int d = 0; d < n; d++) {
            char desc[300];
            eff_cuda_describe(d, desc, sizeof desc);
            printf("device %d: %s\n", d, desc);
        }
        return 0;
    }
    EffModelSpec spec;
    EFF_CHECK(eff_model_spec(model, &spec), "unknown model '%s'\nHINT: use efficientnet-b0 .. efficientnet-b7", model);
    EFF_CHECK(eff_model_spec_set_variant(&spec, variant), "unknown --variant '%s'\nHINT: use seed or torchvision", variant);
    eff_model_spec_set_stem_stride(&spec, stem_stride);
    const int R = resolution ? (int)resolution : spec.resolution;
    EFF_CHECK(R >= 8, "--resolution %d too small (want >= 8)", R);
    EffModel m;
    eff_model_create(&m, eff_backend_cpu(), &spec, (int)classes);
    size_t params = 0;
    for (int i = 0; i < m.ptab.count; i++) params += m.ptab.views[i].numel;
    const double flops = 2.0 * eff_model_macs(&m, R);
    if (json) {
        cJSON *o = eff_json_object();
        eff_json_str(o, "model", spec.name);
        eff_json_str(o, "variant", eff_variant_name(spec.variant));
        eff_json_int(o, "classes", classes);
        eff_json_int(o, "resolution", R);
        eff_json_int(o, "stem_stride", spec.stem_stride);
        eff_json_uint(o, "params", params);
        eff_json_int(o, "convs", m.nconvs);
        eff_json_int(o, "blocks", m.nblocks);
        eff_json_int(o, "stem_channels", m.stem_c);
        eff_json_int(o, "head_channels", m.head_c);
        eff_json_num(o, "flops_per_image", flops, "%.0f");
        eff_json_num(o, "width", spec.width, "%.2f");
        eff_json_num(o, "depth", spec.depth, "%.2f");
        eff_json_num(o, "dropout", spec.dropout, "%.2f");
        eff_json_write(o, stdout, "standard output");
    } else {
        printf("model          %s, %s variant (width %.1f, depth %.1f, dropout %.1f)\n", spec.name,
               eff_variant_name(spec.variant), spec.width, spec.depth, spec.dropout);
        printf("classes        %ld\n", classes);
        printf("resolution     %d%s\n", R, R == spec.resolution ? " (the model's own)" : "");
        printf("parameters     %zu\n", params);
        printf("conv layers    %d\n", m.nconvs);
        printf("blocks         %d\n", m.nblocks);
        printf("FLOPs/image    %.3f GFLOP forward (2 x multiply-adds)\n\n", flops * 1e-9);
        printf("stage  blocks  in->out   expand  kernel  stride  out res  params   (train.freeze = N: the stem and stages 1..N)\n");
        int H = (R + 2 - 3) / spec.stem_stride + 1, bi = 0;
        printf("stem   %6s  %3d->%-4d  %6s  %6d  %6d  %7d  %zu\n", "-", 3, m.stem_c, "-", 3, spec.stem_stride, H,
               (size_t)27 * m.stem_c + 2 * m.stem_c);
        for (int s = 0; bi < m.nblocks; s++) {
            int first = bi, cin = m.blk[bi].cin, cout = m.blk[bi].cout;
            size_t sp = 0;
            for (; bi < m.nblocks && m.blk[bi].stage == s; bi++) {
                const EffBlock *b = &m.blk[bi];
                H = (H + 2 * (b->k / 2) - b->k) / b->stride + 1;
                sp += (b->expand ? (size_t)b->cin * b->ce + 2 * b->ce : 0) + (size_t)b->k * b->k * b->ce + 2 * b->ce +
                      2 * (size_t)b->ce * b->cse + (m.se_bias ? (size_t)b->ce + b->cse : 0) +
                      (size_t)b->ce * b->cout + 2 * b->cout;
            }
            printf("%-5d  %6d  %3d->%-4d  %6d  %6d  %6d  %7d  %zu\n", s + 1, bi - first, cin, cout,
                   m.blk[first].expand ? m.blk[first].ce / m.blk[first].cin : 1, m.blk[first].k, m.blk[first].stride, H, sp);
        }
        printf("head   %6s  %3d->%-4d  %6s  %6d  %6d  %7d  %zu\n", "-", m.blk[m.nblocks - 1].cout, m.head_c, "-", 1, 1, H,
               (size_t)m.blk[m.nblocks - 1].cout * m.head_c + 2 * m.head_c + (size_t)m.head_c * classes + classes);
    }
    eff_model_destroy(&m);
    return 0;
}
