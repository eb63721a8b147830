/* data_pipeline.c: see data_pipeline.h. */
#include "train/data_pipeline.h"

#include <stdio.h>
#include <string.h>

#include "common.h"

static int pick_pipeline(const EffConfig *c, const eff_dataset *ds) {
    if (!strcmp(c->pipeline, "cifar")) return EFF_PIPE_SEED;
    if (!strcmp(c->pipeline, "imagenet")) return EFF_PIPE_IMAGENET;
    return ds->kind == EFF_DATA_IMAGES ? EFF_PIPE_IMAGENET : EFF_PIPE_SEED;
}

/* data.normalize: mean/std into aug, and the choice's name. */
static const char *pick_normalize(const EffConfig *c, const eff_dataset *ds, eff_aug_config *aug) {
    const char *n = c->normalize;
    if (!strcmp(n, "auto")) n = ds->kind == EFF_DATA_IMAGES ? "dataset" : "seed";
    eff_aug_config ref;
    if (!strcmp(n, "seed")) eff_aug_config_default(&ref, aug->size);
    else if (!strcmp(n, "imagenet")) eff_aug_config_imagenet(&ref, aug->size);
    if (strcmp(n, "dataset") != 0) {
        memcpy(aug->mean, ref.mean, sizeof aug->mean);
        memcpy(aug->std, ref.std, sizeof aug->std);
        return n;
    }
    for (int k = 0; k < 3; k++) {
        EFF_CHECK(ds->std[k] > 0, "data.normalize = dataset: the shards' train_std[%d] is %g\nHINT: use data.normalize "
                  "= imagenet, or reconvert the data set", k, ds->std[k]);
        aug->mean[k] = (float)ds->mean[k];
        aug->std[k] = (float)ds->std[k];
    }
    return n;
}

void eff_data_aug_config(const EffConfig *c, const eff_dataset *ds, int R, eff_aug_config *aug, char *what,
                         size_t cap) {
    const int pipe = pick_pipeline(c, ds);
    if (pipe == EFF_PIPE_IMAGENET) eff_aug_config_imagenet(aug, R);
    else eff_aug_config_default(aug, R);
    aug->filter = eff_filter_parse(c->interpolation);
    EFF_CHECK(aug->filter == EFF_FILTER_BILINEAR || aug->filter == EFF_FILTER_BICUBIC,
              "data.interpolation = '%s': use bilinear or bicubic", c->interpolation);
    aug->scale_min = c->crop_scale_min;
    if (c->eval_resize) aug->eval_resize = (int)c->eval_resize;
    EFF_CHECK(pipe != EFF_PIPE_IMAGENET || aug->eval_resize >= R, "data.eval_resize = %d is smaller than "
              "model.resolution %d\nHINT: set it >= the resolution, or 0 (resolution / 0.875)", aug->eval_resize, R);
    EFF_CHECK(pipe != EFF_PIPE_SEED || !ds->offsets, "data.pipeline = cifar needs images of one size, and '%s' holds "
              "images of their own sizes (ragged)\nHINT: use data.pipeline = imagenet (or auto), or convert with "
              "images-to-h5 --size S", ds->dataset);
    const char *norm = pick_normalize(c, ds, aug);
    if (pipe == EFF_PIPE_IMAGENET)
        snprintf(what, cap, "imagenet (RandomResizedCrop %d, scale %.2f-1, flip; eval: resize %d, centre crop %d), %s, "
                 "normalize %s (mean %.4f %.4f %.4f, std %.4f %.4f %.4f)", R, aug->scale_min, aug->eval_resize, R,
                 eff_filter_name(aug->filter), norm, aug->mean[0], aug->mean[1], aug->mean[2], aug->std[0],
                 aug->std[1], aug->std[2]);
    else
        snprintf(what, cap, "cifar (the seed's: resize %d, flip, rotation, pad + crop, colour jitter), %s, normalize "
                 "%s (mean %.4f %.4f %.4f, std %.4f %.4f %.4f)", R, eff_filter_name(aug->filter), norm, aug->mean[0],
                 aug->mean[1], aug->mean[2], aug->std[0], aug->std[1], aug->std[2]);
}

void eff_data_select(const EffConfig *c, eff_dataset *ds, char *what, size_t cap) {
    what[0] = '\0';
    if (!c->class_subset[0]) return;
    char err[1024];
    int *classes = eff_malloc(sizeof(int) * EFF_DATA_MAX_CLASSES, "data.classes list");
    const int k = eff_parse_class_list(c->class_subset, classes, EFF_DATA_MAX_CLASSES, err, sizeof err);
    EFF_CHECK(k > 0, "%s", err);
    const int64_t before = ds->n;
    EFF_CHECK(eff_dataset_select_classes(ds, classes, k, err, sizeof err) == 0, "%s", err);
    eff_free(classes);
    snprintf(what, cap, "%s split: classes %s only, relabelled 0..%d: %lld of %lld images", ds->split,
             c->class_subset, k - 1, (long long)ds->n, (long long)before);
}

int eff_data_classes(const EffConfig *c, const eff_dataset *ds) {
    EFF_CHECK(c->classes == 0 || c->classes == ds->num_classes, "the data has %d classes%s, model.classes is %ld\n"
              "HINT: set model.classes = 0 (the data's) or %d", ds->num_classes,
              c->class_subset[0] ? " (after data.classes)" : "", c->classes, ds->num_classes);
    return ds->num_classes;
}
