/* kernel_emu.h: host emulations of CUDA kernels, for tests without a GPU.
 *
 * Each runs the kernel's own __host__ __device__ thread function on the CPU
 * for every thread of the grid its launcher would use (the augment.cu
 * pattern), on host arrays of precision prec's storage type (0 fp32,
 * 1 bf16, 2 fp16: EffPrecision). Each returns the channel width the
 * kernels used (1, 4 or 8: 16-byte vectors when the sizes and pointers
 * allow; scalar != 0 forces 1), or 0 when the launcher would reject the
 * shape. Plain C; built with the CUDA backend. */
#ifndef EFFNET_KERNEL_EMU_H
#define EFFNET_KERNEL_EMU_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* dwconv.cu: the forward and the backward (din NULL-able; dw accumulates)
 * exactly as dwconv_forward_cuda / dwconv_backward_cuda launch them.
 * The width returned is that of the forward / input-gradient kernels. */
int dwconv_forward_emulate(int prec, int scalar, void *out, const void *in, const float *w, int N, int H, int W,
                           int C, int K, int stride);
int dwconv_backward_emulate(int prec, int scalar, void *din, float *dw, const void *dout, const void *in,
                            const float *w, int N, int H, int W, int C, int K, int stride);

#ifdef __cplusplus
}
#endif
#endif
