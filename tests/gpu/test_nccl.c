/* test_nccl.c: the NCCL communicator of src/comm/comm_nccl.c on real devices.
 *
 *   test_nccl            one rank (an MPI singleton), or under mpirun with
 *                        one rank per GPU
 *
 * Checks: device selection and the topology log; ncclGetUniqueId broadcast
 * and ncclCommInitRankConfig; the bucketed gradient all-reduce (ncclAvg)
 * launched in pieces through eff_comm_grad_ready as backward would, then
 * eff_comm_finish / eff_comm_wait: every element must equal the mean over
 * ranks of rank-dependent values (with one rank: unchanged); and the blocking
 * eff_comm_allreduce_avg used for BN statistics.
 * Without a usable device: "no CUDA device: skipped", exit 77, before MPI. */
#include "backend/backend.h"
#include "comm/comm_nccl.h"
#include "common.h"
#include "test_util.h"

#include <math.h>
#include <mpi.h>
#include <stdlib.h>

static float value(int rank, size_t i) { return (float)((i % 1000) * 0.001 + rank); }

int main(int argc, char **argv) {
    if (eff_cuda_device_count() == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    MPI_Init(&argc, &argv);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    TestState ts = {0, 0};
    const int device = eff_comm_select_device(MPI_COMM_WORLD, 1);
    EffBackend *be = eff_backend_cuda_create(device, EFF_PREC_FP32, 1);
    const size_t n = 3 * 1000 * 1000 + 17; /* ~12 MB: several 1 MiB buckets, an uneven tail */
    float *h = eff_malloc(n * sizeof(float), "host buffer");
    for (size_t i = 0; i < n; i++) h[i] = value(rank, i);
    float *d = be->alloc(be, n * sizeof(float), "gradient buffer");
    be->upload(be, d, h, n * sizeof(float));
    EffComm *c = eff_comm_create(MPI_COMM_WORLD, be, d, n, 1.0, 60.0, 0);
    T_CHECK(&ts, eff_comm_buckets(c) >= 11, "expected >= 11 buckets of 1 MiB, got %d", eff_comm_buckets(c));
    for (int step = 1; step <= 3; step++) {
        eff_comm_begin(c, step);
        eff_comm_grad_ready(c, n - n / 4); /* as backward finishes the tail first */
        eff_comm_grad_ready(c, n / 2);
        eff_comm_finish(c);
        eff_comm_wait(c);
        /* averaging identical-across-steps data again is idempotent after the first step */
    }
    be->download(be, h, d, n * sizeof(float));
    const double mean_rank = (world - 1) / 2.0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double want = (i % 1000) * 0.001 + mean_rank;
        worst = fmax(worst, fabs(h[i] - want));
    }
    /* not measured: no GPU here. One rank: unchanged, error = the float rounding of (i % 1000) * 0.001, <= 3e-8.
     * W ranks: ncclAvg of values <= 1 + (W-1)/2, three times over: <= ~3 x log2(W) roundings of ~5e-7 at W = 8,
     * ~4e-6; 1e-5 is 2.5x that worst case (a wrong bucket or offset is off by >= 1e-3). */
    T_CHECK(&ts, worst <= 1e-5, "bucketed all-reduce: worst |got - mean| = %.3g", worst);
    for (size_t i = 0; i < 1000; i++) h[i] = (float)(rank + 1);
    be->upload(be, d, h, 1000 * sizeof(float));
    eff_comm_allreduce_avg(c, d, 1000);
    be->download(be, h, d, 1000 * sizeof(float));
    /* not measured: no GPU here. One rank (the ctest case): exact. W ranks: exact when W is a power of two (the
     * values are small dyadic rationals); otherwise the average rounds (x 1/W, then sums) a few times at <= 0.5 ulp
     * of <= 4.5 (2.4e-7): 1e-6 holds ~4 such roundings, which may be tight for W = 6 or 7 */
    T_CHECK(&ts, fabs(h[0] - (world + 1) / 2.0) < 1e-6 && fabs(h[999] - (world + 1) / 2.0) < 1e-6,
            "allreduce_avg: %g, want %g", h[0], (world + 1) / 2.0);
    if (rank == 0) printf("test_nccl: %d rank(s), %d buckets, worst error %.3g\n", world, eff_comm_buckets(c), worst);
    eff_comm_destroy(c);
    be->release(be, d);
    eff_backend_cuda_destroy(be);
    eff_free(h);
    int failed = ts.failures, any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return rank == 0 ? t_finish(&ts, "test_nccl") : (any ? 1 : 0);
}
