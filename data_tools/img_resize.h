/* img_resize.h: the converter's --size S: torchvision's Resize(S) (shorter
 * side to S) with PIL's BOX filter (area averaging), then CenterCrop(S), on
 * uint8 RGB HWC images, byte for byte as
 *   img.resize((new_w, new_h), Image.BOX) then the centre crop
 * (the resampling is src/data/resample.c, shared with the loader). */
#ifndef EFFNET_IMG_RESIZE_H
#define EFFNET_IMG_RESIZE_H

#include <stdint.h>

/* Resize src (h x w x 3) as above and write the centred S x S x 3 crop to dst.
 * Thread-safe (no shared state); running out of memory ends the process
 * with a message, like every allocation of effnet's. */
void img_resize_crop(const uint8_t *src, int h, int w, int S, uint8_t *dst);

#endif
