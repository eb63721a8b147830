/* threads.c: the thread count for train.threads = 0 (threads.h). */
#define _GNU_SOURCE /* sched_getaffinity, cpu_set_t */
#include "train/threads.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>

size_t eff_threads_mask_bytes(void) { return sizeof(cpu_set_t); }

int eff_threads_mask(unsigned char *out) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    memcpy(out, &set, sizeof set);
    return 0;
}

static int bits(const unsigned char *a, const unsigned char *b, size_t n) { /* popcount(a & b) */
    int k = 0;
    for (size_t i = 0; i < n; i++) k += __builtin_popcount((unsigned)(a[i] & b[i]));
    return k;
}

int eff_threads_auto(int me, int world, const char *const *hosts, const unsigned char *masks, size_t mask_bytes,
                     char *why, size_t n) {
    const unsigned char *mine = masks + (size_t)me * mask_bytes;
    const int cores = bits(mine, mine, mask_bytes);
    int sharing = 0; /* ranks on this host whose mask overlaps mine, me included */
    for (int r = 0; r < world; r++)
        if (strcmp(hosts[r], hosts[me]) == 0 && bits(mine, masks + (size_t)r * mask_bytes, mask_bytes) > 0) sharing++;
    const int threads = sharing > 0 && cores / sharing > 1 ? cores / sharing : 1;
    snprintf(why, n, "%d core(s) in this rank's affinity mask, shared by %d rank(s) on host %s", cores, sharing,
             hosts[me]);
    return threads;
}
