/* img_resize.c: see img_resize.h. */
#include "img_resize.h"

#include "data/resample.h"

void img_resize_crop(const uint8_t *src, int h, int w, int S, uint8_t *dst) {
    int nh, nw;
    eff_resized_size(h, w, S, &nh, &nw);
    eff_resize_plan plan; /* allocation failures exit with a message (eff_malloc) */
    eff_resize_plan_init_crop(&plan, h, w, nh, nw, EFF_FILTER_BOX, eff_center_offset(nh, S), eff_center_offset(nw, S),
                              S, S);
    eff_resize_apply(&plan, src, dst);
    eff_resize_plan_free(&plan);
}
