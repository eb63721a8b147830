/* backend_cuda_stub.c: the CUDA entry points of backend.h in a build without
 * CUDA (no nvcc at configure time, or -DEFFNET_CUDA=OFF). */
#include "backend/backend.h"
#include "common.h"

#include <stdio.h>

int eff_cuda_available(void) { return 0; }
int eff_cuda_device_count(void) { return 0; }
int eff_cuda_device_count_why(char *why, size_t n) {
    snprintf(why, n, "this effnet was built without CUDA");
    return 0;
}
const EffBackend *eff_backend_cuda_ops(void) { return NULL; }

EffBackend *eff_backend_cuda_create(int device, EffPrecision precision, int deterministic) {
    (void)precision;
    (void)deterministic;
    EFF_FATAL("the CUDA backend (device %d) was requested, but this effnet was built without CUDA\nHINT: reconfigure "
              "with -DEFFNET_CUDA=ON on a machine with nvcc, cuDNN and NCCL, or set train.backend = cpu", device);
}

void eff_backend_cuda_destroy(EffBackend *be) { (void)be; }
void eff_cuda_describe(int device, char *buf, size_t n) { snprintf(buf, n, "no CUDA in this build (device %d)", device); }
void eff_cuda_memory(const EffBackend *be, double *alloc_peak_mb, double *device_used_mb) {
    (void)be;
    if (alloc_peak_mb) *alloc_peak_mb = 0;
    if (device_used_mb) *device_used_mb = 0;
}
void *eff_cuda_stream(const EffBackend *be) { (void)be; return NULL; }
