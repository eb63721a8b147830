/* cmd_eval.c: `effnet eval` -- accuracy and loss of a checkpoint on the test split. */
#include "checkpoint.h"
#include "cmd/cli.h"
#include "common.h"
#include "context.h"
#include "data/loader.h"
#include "data/shard.h"
#include "evaluate.h"
#include "jsonout.h"
#include "train/data_pipeline.h"

#include <stdio.h>
#include <string.h>

/* The data settings the checkpoint was trained with (its "config"
 * attribute), or the defaults for a file without one (an import). */
static void training_config(const char *ckpt, const char *text, EffConfig *cfg) {
    char err[1024];
    int unknown = 0;
    eff_config_defaults(cfg);
    if (!text || !text[0]) return;
    if (!eff_config_from_ini_text(cfg, text, &unknown, err, sizeof err)) {
        fprintf(stderr, "effnet eval: warning: %s: %s; evaluating with the default data settings\n", ckpt, err);
        eff_config_defaults(cfg);
    }
}

/* The test split as the training run saw it: data.classes, the pipeline and
 * normalisation of its config, at resolution R. */
static eff_loader *open_test(const EffConfig *cfg, const char *data, int classes, int R, long batch, long subset,
                             eff_dataset *test) {
    char index[1100], err[1024], what[512];
    snprintf(index, sizeof index, "%s/%s", data, EFF_SHARD_INDEX_NAME);
    EFF_CHECK(eff_dataset_load(index, "test", 0, test, err, sizeof err) == 0, "data: %s", err);
    eff_data_select(cfg, test, what, sizeof what);
    EFF_CHECK(test->num_classes == classes, "data has %d classes%s, the checkpoint's model %d", test->num_classes,
              cfg->class_subset[0] ? " (after the checkpoint's data.classes)" : "", classes);
    if (subset > 0 && subset < test->n) test->n = subset;
    eff_loader_config lc = {.rank = 0, .world = 1, .batch = (int)batch, .train = 0, .threads = 1};
    eff_data_aug_config(cfg, test, R, &lc.aug, what, sizeof what);
    return eff_loader_open(test, &lc);
}

int cmd_eval(int argc, char **argv) {
    const char *ckpt = NULL, *data = NULL;
    long batch = 100, threads = 0, subset = 0;
    int json = 0;
    CliOpt opts[] = {
        {"--checkpoint", CLI_STR, &ckpt, 0, 0, "checkpoint file (.h5) written by effnet train"},
        {"--data", CLI_STR, &data, 0, 0, "directory with index.txt and the shards"},
        {"--batch", CLI_INT, &batch, 1, 65536, "images per forward pass"},
        {"--threads", CLI_INT, &threads, 0, 4096, "OpenMP/BLAS threads (0: default)"},
        {"--subset", CLI_INT, &subset, 0, 1000000000L, "evaluate only the first N test images (0: all)"},
        {"--json", CLI_BOOL, &json, 0, 0, "print one JSON object"},
    };
    if (cli_parse("eval", "--checkpoint FILE --data DIR [--json]", opts, (int)(sizeof opts / sizeof opts[0]), argc, argv, 2))
        return 0;
    EFF_CHECK(ckpt && data, "effnet eval: --checkpoint and --data are required (see --help)");
    eff_set_threads((int)threads);
    char model[64], err[1024];
    int classes = 0, R = 0;
    EFF_CHECK(eff_checkpoint_peek(ckpt, model, sizeof model, &classes, &R, err, sizeof err), "%s", err);
    EffModelSpec spec;
    EFF_CHECK(eff_model_spec(model, &spec), "checkpoint '%s' names unknown model '%s'", ckpt, model);
    EFF_CHECK(eff_checkpoint_peek_variant(ckpt, &spec, err, sizeof err), "%s", err); /* model.variant */
    EffContext ctx = {.be = eff_backend_cpu(), .threads = (int)threads};
    EffModel *m = &ctx.model;
    eff_model_create(m, ctx.be, &spec, classes);
    char *config_text = NULL;
    eff_checkpoint_load(ckpt, m, 0, NULL, &config_text);
    EffConfig cfg;
    training_config(ckpt, config_text, &cfg);
    eff_free(config_text);
    eff_dataset test;
    eff_loader *L = open_test(&cfg, data, classes, R, batch, subset, &test);
    eff_model_alloc_acts(m, (int)batch, R);
    EffEvalSums s = {0, 0, 0};
    double t0 = eff_time();
    eff_evaluate(m, L, eff_loader_steps_per_epoch(L), &s);
    double dt = eff_time() - t0, loss = s.loss_sum / s.total, acc = 100.0 * s.correct / s.total;
    if (json) {
        cJSON *o = eff_json_object();
        eff_json_str(o, "checkpoint", ckpt);
        eff_json_str(o, "model", spec.name);
        eff_json_str(o, "variant", eff_variant_name(spec.variant));
        eff_json_int(o, "resolution", R);
        eff_json_num(o, "accuracy", acc, "%.4f");
        eff_json_num(o, "loss", loss, "%.6f");
        eff_json_num(o, "correct", s.correct, "%.0f");
        eff_json_num(o, "total", s.total, "%.0f");
        eff_json_num(o, "seconds", dt, "%.3f");
        eff_json_write(o, stdout, "standard output");
    } else
        printf("Test set: Average loss: %.4f, Accuracy: %.0f/%.0f (%.2f%%)  [%s, %.1f s]\n", loss, s.correct, s.total, acc, ckpt, dt);
    eff_loader_close(L);
    eff_dataset_free(&test);
    eff_model_destroy(m);
    return 0;
}
