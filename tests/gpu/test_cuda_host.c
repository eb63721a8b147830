/* test_cuda_host.c: the host-side decisions of the CUDA backend, checked on
 * the CPU (no device needed, never skipped):
 *
 *  - launch geometry (kernels/launch_geom.h): eff_launch_check accepts what
 *    fits and names the dimension, value and limit of what does not; the
 *    column reduction's grid takes a batch of 65536 (grid.x) where the old
 *    geometry (batch as grid.z, limit 65535) could not launch, nor more than
 *    65535 column tiles (grid.y, now looped); every problem and column of a
 *    reduction is covered exactly once;
 *  - the cuDNN algorithm rule (kernels/conv_pick.h): fastest deterministic,
 *    else the fastest nondeterministic with the fall-back flagged, workspace
 *    sizes over the cap and unsupported candidates skipped;
 *  - eff_cuda_count_verdict (src/backend/backend_cuda.c): "no device" only
 *    for cudaErrorNoDevice or no driver at all; an old driver or a driver
 *    mismatch is an error naming both CUDA versions. */
#include "backend/backend.h"
#include "conv_pick.h"
#include "launch_geom.h"
#include "test_util.h"

#include <cuda_runtime_api.h>
#include <string.h>

static void check_launch(TestState *ts) {
    const EffLaunchLimits lim = eff_launch_limits_min();
    char why[400] = "";
    const long long ok[3] = {EFF_BLOCKS_CAP, 1, 1}, b256[3] = {256, 1, 1};
    T_CHECK(ts, eff_launch_check("k", ok, b256, &lim, why, sizeof why) == 0, "1-D cap rejected: %s", why);
    const long long z[3] = {1, 1, 65536};
    T_CHECK(ts, eff_launch_check("colreduce", z, b256, &lim, why, sizeof why) == 1 && strstr(why, "grid.z = 65536") &&
                    strstr(why, "65535") && strstr(why, "colreduce"),
            "grid.z = 65536 not caught with its value and limit: '%s'", why);
    const long long y0[3] = {4, 0, 1};
    T_CHECK(ts, eff_launch_check("k", y0, b256, &lim, why, sizeof why) == 1 && strstr(why, "grid.y = 0"),
            "an empty grid.y not caught: '%s'", why);
    const long long g1[3] = {1, 1, 1}, fat[3] = {32, 64, 1}, deep[3] = {1, 1, 65};
    T_CHECK(ts, eff_launch_check("k", g1, fat, &lim, why, sizeof why) == 1 && strstr(why, "2048 threads"),
            "a 2048-thread block not caught: '%s'", why);
    T_CHECK(ts, eff_launch_check("k", g1, deep, &lim, why, sizeof why) == 1 && strstr(why, "block.z = 65"),
            "block.z = 65 not caught: '%s'", why);
}

/* The reduction's geometry: fits the limits, and (b, column tile, chunk)
 * enumerates every problem, column and chunk exactly once. */
static void check_colreduce(TestState *ts, long long batch, long long rows, long long C, int chunks) {
    const EffLaunchLimits lim = eff_launch_limits_min();
    const long long block[3] = {EFF_RED_TX, EFF_RED_TY, 1};
    long long g[3];
    char why[400] = "";
    T_CHECK(ts, eff_colreduce_grid(batch, rows, C, chunks, g, why, sizeof why) == 0, "colreduce %lld: %s", batch, why);
    T_CHECK(ts, eff_launch_check("colreduce", g, block, &lim, why, sizeof why) == 0, "batch %lld C %lld: %s", batch,
            C, why);
    T_CHECK(ts, g[0] == batch && g[2] == chunks, "batch %lld chunks %d -> grid (%lld, %lld, %lld)", batch, chunks,
            g[0], g[1], g[2]);
    /* columns: block y takes the tiles at 32y, 32(y + grid.y), ... below C
     * (the kernel's loop); every tile once, no block idle */
    const long long tiles = (C + EFF_RED_TX - 1) / EFF_RED_TX;
    long long seen = 0;
    for (long long y = 0; y < g[1]; y++)
        for (long long c0 = y * EFF_RED_TX; c0 < C; c0 += g[1] * EFF_RED_TX) seen++;
    T_CHECK(ts, seen == tiles && g[1] <= tiles && g[1] <= EFF_RED_TILES_MAX,
            "C = %lld: grid.y %lld visits %lld of %lld column tiles", C, g[1], seen, tiles);
}

static void check_colreduce_all(TestState *ts) {
    check_colreduce(ts, 65536, 49, 1280, 1);   /* B0 head pooling at batch 65536: was grid.z = 65536 */
    check_colreduce(ts, 1, 65536L * 49, 1280, 256);
    check_colreduce(ts, 1000000, 1, 33, 1);
    check_colreduce(ts, 3, 512, 32, 1);
    check_colreduce(ts, 2, 5, 65535LL * 32, 1);     /* the last C with one tile per block */
    check_colreduce(ts, 2, 5, 65535LL * 32 + 1, 1); /* was grid.y = 65536: now looped */
    check_colreduce(ts, 1, 1, 3000000, 1);
    char why[400] = "";
    long long g[3];
    T_CHECK(ts, eff_colreduce_grid(1, 3000000000LL, 32, 256, g, why, sizeof why) == 1 && strstr(why, "2^31"),
            "rows beyond int not caught: '%s'", why);
    T_CHECK(ts, eff_colreduce_grid(0, 10, 32, 1, g, why, sizeof why) == 1, "an empty batch not caught");
}

static void check_pick(TestState *ts) {
    const size_t cap = EFF_CONV_MAX_WORKSPACE;
    int fb = -1;
    /* fastest first: unsupported, nondeterministic, deterministic */
    const EffAlgoCand a[3] = {{7, 0, 1, 0}, {1, 1, 0, 100}, {0, 1, 1, 200}};
    T_CHECK(ts, eff_conv_pick(a, 3, 1, cap, &fb) == 2 && fb == 0, "deterministic pick: want 2, fb 0 (got fb %d)", fb);
    T_CHECK(ts, eff_conv_pick(a, 3, 0, cap, &fb) == 1 && fb == 0, "free pick: want the fastest usable, 1");
    /* no deterministic candidate: the fastest usable one, flagged */
    const EffAlgoCand b[3] = {{6, 1, 0, cap + 1}, {1, 1, 0, 100}, {0, 1, 0, 0}};
    T_CHECK(ts, eff_conv_pick(b, 3, 1, cap, &fb) == 1 && fb == 1, "fall-back: want 1 flagged (fb %d)", fb);
    /* the workspace cap applies to the queried size */
    const EffAlgoCand c[2] = {{5, 1, 1, cap + 1}, {2, 1, 1, cap}};
    T_CHECK(ts, eff_conv_pick(c, 2, 1, cap, &fb) == 1 && fb == 0, "workspace cap: want 1");
    const EffAlgoCand d[2] = {{5, 0, 1, 0}, {2, 1, 1, cap + 1}};
    T_CHECK(ts, eff_conv_pick(d, 2, 1, cap, &fb) == -1 && fb == 0, "nothing usable: want -1");
    T_CHECK(ts, eff_conv_pick(d, 0, 1, cap, &fb) == -1, "no candidates: want -1");
}

static void check_verdict(TestState *ts) {
    char why[512];
    T_CHECK(ts, eff_cuda_count_verdict(cudaSuccess, 2, 12040, 13000, why, sizeof why) == 2, "2 devices");
    T_CHECK(ts, eff_cuda_count_verdict(cudaErrorNoDevice, 0, 13000, 13000, why, sizeof why) == 0 &&
                    strstr(why, "cudaErrorNoDevice"), "no device: '%s'", why);
    /* what this machine, without libcuda, reports */
    T_CHECK(ts, eff_cuda_count_verdict(cudaErrorInsufficientDriver, 0, 0, 13000, why, sizeof why) == 0 &&
                    strstr(why, "no NVIDIA driver"), "no driver: '%s'", why);
    T_CHECK(ts, eff_cuda_count_verdict(cudaErrorInsufficientDriver, 0, 12040, 13000, why, sizeof why) == -1 &&
                    strstr(why, "12.4") && strstr(why, "13.0") && strstr(why, "HINT"),
            "old driver must fail naming 12.4 and 13.0: '%s'", why);
    T_CHECK(ts, eff_cuda_count_verdict(cudaErrorSystemDriverMismatch, 0, 13000, 13000, why, sizeof why) == -1 &&
                    strstr(why, "cudaErrorSystemDriverMismatch"), "mismatch: '%s'", why);
    T_CHECK(ts, eff_cuda_count_verdict(cudaErrorInitializationError, 0, 13000, 13000, why, sizeof why) == -1,
            "other errors fail: '%s'", why);
}

int main(void) {
    TestState ts = {0, 0};
    check_launch(&ts);
    check_colreduce_all(&ts);
    check_pick(&ts);
    check_verdict(&ts);
    return t_finish(&ts, "test_cuda_host");
}
