/* data_pipeline.h: what the config asks of the data, resolved against the
 * data set it meets -- shared by `effnet train` and `effnet eval` (which
 * reads the training config from the checkpoint), so both see the same
 * pipeline, normalisation and classes.
 *
 *   data.pipeline      auto | cifar | imagenet  (auto: by the shards' format)
 *   data.normalize     auto | seed | dataset | imagenet
 *   data.interpolation bilinear | bicubic
 *   data.eval_resize, data.crop_scale_min  (the imagenet pipeline)
 *   data.classes       a subset, relabelled (applied by eff_data_select)
 *   model.classes      0: the data's class count */
#ifndef EFFNET_TRAIN_DATA_PIPELINE_H
#define EFFNET_TRAIN_DATA_PIPELINE_H

#include <stddef.h>

#include "config.h"
#include "data/augment.h"
#include "data/shard.h"

/* The augmentation config for resolution R on ds; a one-line description in
 * what (for the log). Exits with a message on a config ds cannot take. */
void eff_data_aug_config(const EffConfig *c, const eff_dataset *ds, int R, eff_aug_config *aug, char *what,
                         size_t cap);
/* data.classes on ds (nothing when empty); a log line in what ("" if none). */
void eff_data_select(const EffConfig *c, eff_dataset *ds, char *what, size_t cap);
/* model.classes, or the data's count when it is 0; exits when they differ. */
int eff_data_classes(const EffConfig *c, const eff_dataset *ds);

#endif
