/* buckets.h: the gradient bucket layout shared by the MPI (buckets_mpi.c)
 * and NCCL (comm_nccl.c) paths, and by ZeRO-1's optimizer ranges.
 *
 * n parameters are cut into nbuckets buckets of about bucket_mb; bucket k
 * covers [lo[k], lo[k+1]). Bucket k is split into `world` pieces: with
 * q = len / world, piece r covers [lo + r q, lo + (r+1) q) and the last
 * piece also takes the len % world leftover elements. That is the layout
 * of ncclReduceScatter / ncclAllGather on the bucket (recvcount q), plus a
 * tail owned by the last rank. Rank r owns piece r of every bucket. */
#ifndef EFFNET_COMM_BUCKETS_H
#define EFFNET_COMM_BUCKETS_H

#include "common.h"

#include <stddef.h>

/* The bucket table: nbuckets + 1 offsets (eff_free it); *nbuckets >= 1. */
static inline size_t *eff_bucket_bounds(size_t n, double bucket_mb, int *nbuckets) {
    EFF_CHECK(bucket_mb > 0, "comm.bucket_mb must be > 0 (got %g)", bucket_mb);
    size_t per = (size_t)(bucket_mb * 1048576.0 / sizeof(float));
    if (per < 1024) per = 1024;
    int nb = (int)((n + per - 1) / per);
    if (nb < 1) nb = 1;
    size_t *lo = eff_malloc(sizeof(size_t) * ((size_t)nb + 1), "bucket table");
    for (int k = 0; k <= nb; k++) lo[k] = (size_t)((double)n * k / nb);
    *nbuckets = nb;
    return lo;
}

/* Start of piece r (0 <= r <= world) of the bucket [lo, hi). */
static inline size_t eff_piece_lo(size_t lo, size_t hi, int r, int world) {
    return r == world ? hi : lo + (size_t)r * ((hi - lo) / (size_t)world);
}

/* Rank `rank`'s pieces, ascending, non-empty ones only: fills seg (room for
 * nbuckets) and returns their number. */
static inline int eff_bucket_owned(const size_t *lo, int nbuckets, int rank, int world, EffSeg *seg) {
    int count = 0;
    for (int k = 0; k < nbuckets; k++) {
        const size_t a = eff_piece_lo(lo[k], lo[k + 1], rank, world), b = eff_piece_lo(lo[k], lo[k + 1], rank + 1, world);
        if (b > a) seg[count++] = (EffSeg){a, b - a};
    }
    return count;
}

#endif
