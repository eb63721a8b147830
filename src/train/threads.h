/* threads.h: how many OpenMP/BLAS threads a rank runs when train.threads = 0.
 *
 * OpenMP's default is every core the process may use. Under `mpirun -np 2`
 * on a 2-core node without binding, both ranks see both cores, take 2
 * threads each and oversubscribe the node: the from-scratch recipe's B0 step
 * took 681-958 ms that way against 280-320 ms with 1 thread per rank. So:
 * OMP_NUM_THREADS, when set, decides (the Slurm scripts set it from
 * --cpus-per-task); otherwise each rank takes the cores of its affinity mask
 * divided by the ranks on its host whose masks overlap it (unbound ranks all
 * overlap; ranks bound to a core each overlap none; two ranks bound to one
 * socket share it), at least 1. */
#ifndef EFFNET_TRAIN_THREADS_H
#define EFFNET_TRAIN_THREADS_H

#include <stddef.h>

/* Bytes of one affinity mask as eff_threads_mask writes it (a cpu_set_t). */
size_t eff_threads_mask_bytes(void);

/* This process's affinity mask into out (eff_threads_mask_bytes() bytes); 0,
 * or -1 with errno when the kernel will not say. */
int eff_threads_mask(unsigned char *out);

/* The count for rank `me` of `world`: hosts[r] names rank r's host and
 * masks + r * mask_bytes is its mask. Writes how it was chosen to why. */
int eff_threads_auto(int me, int world, const char *const *hosts, const unsigned char *masks, size_t mask_bytes,
                     char *why, size_t n);

#endif
