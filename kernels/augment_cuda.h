/* augment_cuda.h: the seed's train/test augmentation (src/data/augment.h) on
 * a CUDA device, for C11 callers. No CUDA types: a stream is passed as void *.
 *
 * The images are uploaded once and stay resident; a batch call draws each
 * image's parameters on the host with eff_aug_draw (same (seed, epoch, global
 * index) keys as the CPU loader), uploads them, and one kernel writes the
 * normalised float32 NHWC batch. The uint8 and float results equal the CPU
 * augmenter's exactly (tests/gpu/test_gpu_augment.c). */
#ifndef EFFNET_KERNELS_AUGMENT_CUDA_H
#define EFFNET_KERNELS_AUGMENT_CUDA_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "data/augment.h" /* eff_aug_config, eff_aug_params (C declarations) */

/* One augmenter per calling thread (it holds staging buffers). */
typedef struct EffGpuAugment EffGpuAugment;

/* Upload n uint8 HWC images (in_h x in_w x 3, tightly packed) to the current
 * device. cuda_stream: a cudaStream_t, or NULL for the legacy default stream;
 * every later call is asynchronous on it. Fatal error (names the call and
 * value) on any CUDA failure or a bad size. Output size cfg->size <= 4096. */
EffGpuAugment *eff_gpu_aug_create(const eff_aug_config *cfg, const uint8_t *host_images, int64_t n, int in_h, int in_w,
                                  void *cuda_stream);
void eff_gpu_aug_destroy(EffGpuAugment *a); /* synchronises the stream; NULL is fine */

/* Augment n images: image idx[i] (0 <= idx[i] < number uploaded) with the
 * parameters eff_aug_draw(cfg, seed, epoch, gidx[i]) (gidx NULL: gidx = idx).
 * train = 0: the test pipeline (resize, normalise; seed/epoch/gidx unused).
 * out_dev: device, n x S x S x 3 floats. u8_dev: device, n x S x S x 3 bytes,
 * the uint8 image before ToTensor, or NULL. Asynchronous on the stream: idx
 * and gidx may be reused on return; read out_dev after a stream sync. */
void eff_gpu_aug_batch(EffGpuAugment *a, int train, const int64_t *idx, const int64_t *gidx, int n, uint64_t seed,
                       uint64_t epoch, float *out_dev, uint8_t *u8_dev);

/* The same with explicit parameters (params[i] for image idx[i]; ignored and
 * may be NULL when train = 0). For tests and for callers that draw their own. */
void eff_gpu_aug_batch_params(EffGpuAugment *a, int train, const int64_t *idx, const eff_aug_params *params, int n,
                              float *out_dev, uint8_t *u8_dev);

/* Run the device code path on the host: the same __host__ __device__
 * functions, a host loop in place of the grid. One image src (in_h x in_w x 3);
 * out: S x S x 3 floats; u8: S x S x 3 bytes or NULL. Needs no GPU. */
void eff_gpu_aug_reference_host(const eff_aug_config *cfg, const uint8_t *src, int in_h, int in_w,
                                const eff_aug_params *p, int train, float *out, uint8_t *u8);

#ifdef __cplusplus
}
#endif

#endif
