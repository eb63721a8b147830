/* launch_geom.h: kernel launch geometry as plain host C, so that it is
 * unit-tested on the CPU (tests/gpu/test_launch_geom.c) and not only found
 * out on a GPU.
 *
 *  - EffLaunchLimits: a device's grid and block limits (filled from
 *    cudaDeviceGetAttribute by eff_backend_cuda_create; eff_launch_limits_min
 *    gives the limits every device of compute capability >= 3.0 has).
 *  - eff_launch_check: THE check of a launch's geometry against the limits.
 *    kernels/cuda_common.cuh: eff_grid3 calls it for every shape-sized grid;
 *    1-D grid-stride launches use eff_blocks, whose cap EFF_BLOCKS_CAP is
 *    asserted below to be within every device's limit.
 *  - eff_colreduce_grid: the geometry of kernels/reduce.cuh (whose
 *    eff_red_geom then sets grid.y to its tiles of column vectors). The batch
 *    (up to the int range) goes to grid.x, whose limit is 2^31 - 1; the row
 *    chunks (at most EFF_RED_MAX_CHUNKS, 1024) go to grid.z, limit 65535. Before, the batch was grid.z,
 *    and a batch of 65536 could not launch. The column tiles go to grid.y,
 *    capped at 65535: the kernel loops over the tiles beyond (C > 2097120
 *    columns), which before could not launch either.
 *
 * Plain C99 that is also valid C++ (included by the .cu files). */
#ifndef EFFNET_LAUNCH_GEOM_H
#define EFFNET_LAUNCH_GEOM_H

#include <stddef.h>
#include <stdio.h>

typedef struct EffLaunchLimits {
    long long grid[3];  /* cudaDevAttrMaxGridDimX/Y/Z */
    long long block[3]; /* cudaDevAttrMaxBlockDimX/Y/Z */
    long long threads;  /* cudaDevAttrMaxThreadsPerBlock */
} EffLaunchLimits;

/* 1-D grid-stride kernels launch at most this many blocks (eff_blocks). */
#define EFF_BLOCKS_CAP (65535LL * 8)
/* grid.x limit of every device of compute capability >= 3.0 */
#define EFF_GRID_X_MIN_LIMIT 2147483647LL
#ifdef __cplusplus
static_assert(EFF_BLOCKS_CAP <= EFF_GRID_X_MIN_LIMIT, "eff_blocks' cap exceeds grid.x of some device");
#else
_Static_assert(EFF_BLOCKS_CAP <= EFF_GRID_X_MIN_LIMIT, "eff_blocks' cap exceeds grid.x of some device");
#endif

static inline EffLaunchLimits eff_launch_limits_min(void) {
    EffLaunchLimits l = {{EFF_GRID_X_MIN_LIMIT, 65535, 65535}, {1024, 1024, 64}, 1024};
    return l;
}

/* 0 when grid and block fit lim. Otherwise 1, and why names the kernel, the
 * dimension, the bad value, the limit and what to do. */
static inline int eff_launch_check(const char *kernel, const long long grid[3], const long long block[3],
                                   const EffLaunchLimits *lim, char *why, size_t n) {
    static const char axis[3] = {'x', 'y', 'z'};
    long long threads = 1;
    for (int d = 0; d < 3; d++) {
        if (grid[d] < 1 || grid[d] > lim->grid[d]) {
            snprintf(why, n, "kernel %s: grid.%c = %lld is outside [1, %lld], this device's limit\nHINT: a shape is "
                     "too large for this launch geometry (lower the batch size or resolution) and report it",
                     kernel, axis[d], grid[d], lim->grid[d]);
            return 1;
        }
        if (block[d] < 1 || block[d] > lim->block[d]) {
            snprintf(why, n, "kernel %s: block.%c = %lld is outside [1, %lld], this device's limit (a bug in the "
                     "launch geometry: report it)", kernel, axis[d], block[d], lim->block[d]);
            return 1;
        }
        threads *= block[d];
    }
    if (threads > lim->threads) {
        snprintf(why, n, "kernel %s: %lld threads per block, this device allows %lld (a bug in the launch "
                 "geometry: report it)", kernel, threads, lim->threads);
        return 1;
    }
    return 0;
}

/* kernels/reduce.cuh stage 1: block of 256 threads, (W, 256 / W) with W at
 * most EFF_RED_TX column vectors (EFF_RED_TX x EFF_RED_TY is one such block);
 * grid x = problem b, y = tile of 32 columns here (reduce.cuh's eff_red_geom
 * replaces it by its tiles of W column vectors; tiles y, y + grid.y, ... when
 * there are more than EFF_RED_TILES_MAX), z = row chunk. rows must fit the kernel's int. Returns
 * 0, or 1 with why set when the problem cannot be launched. */
#define EFF_RED_TX 32
#define EFF_RED_TY 8
#define EFF_RED_TILES_MAX 65535LL /* grid.y limit of every device */
static inline int eff_colreduce_grid(long long batch, long long rows, long long C, int chunks, long long grid[3],
                                     char *why, size_t n) {
    if (batch < 1 || C < 1 || rows < 1 || rows > 2147483647LL || chunks < 1) {
        snprintf(why, n, "column reduction of %lld problem(s) of %lld rows x %lld columns in %d chunks: every count "
                 "must be >= 1 and the rows must fit in an int (2^31 - 1)", batch, rows, C, chunks);
        return 1;
    }
    grid[0] = batch;
    grid[1] = (C + EFF_RED_TX - 1) / EFF_RED_TX;
    if (grid[1] > EFF_RED_TILES_MAX) grid[1] = EFF_RED_TILES_MAX;
    grid[2] = chunks;
    return 0;
}

#endif
