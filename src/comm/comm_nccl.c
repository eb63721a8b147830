/* comm_nccl.c: NCCL gradient all-reduce bootstrapped by MPI (see comm_nccl.h). */
#define _POSIX_C_SOURCE 200809L
#include "comm/comm_nccl.h"
#include "comm/nccl_poll.h"
#include "comm/buckets.h"
#include "common.h"

#include "cuda_ops.h" /* CUDA_CHECK */

#include <cuda_runtime_api.h>
#include <nccl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


struct EffComm {
    ncclComm_t nccl;
    MPI_Comm mpi;
    int rank, world, nbuckets, next; /* buckets are launched from the last down to 0; next: highest not launched */
    int sharded;                     /* ZeRO-1: reduce-scatter the buckets (buckets.h layout), all-gather parameters */
    size_t *lo;                      /* bucket b covers [lo[b], lo[b+1]) */
    float *grad;
    size_t n;
    double timeout_s;
    long step;
    cudaStream_t compute, comm;
    cudaEvent_t ready, done, fin;
};

/* Abort the communicator and exit, naming where we were. */
static void comm_fail(EffComm *c, const char *what, const char *detail) {
    const ncclResult_t a = c->nccl ? ncclCommAbort(c->nccl) : ncclSuccess;
    if (a != ncclSuccess) fprintf(stderr, "ncclCommAbort on rank %d also failed: %s\n", c->rank, ncclGetErrorString(a));
    c->nccl = NULL;
    EFF_FATAL("NCCL %s on rank %d at step %ld: %s\nHINT: a rank may have died or hung, or the network failed; "
              "check the other ranks' logs (comm.timeout_s sets the watchdog)", what, c->rank, c->step, detail);
}

ncclResult_t eff_nccl_poll(EffNcclStatusFn status, void *ctx, double timeout_s, long *polls) {
    const double t0 = eff_time();
    struct timespec nap = {0, 50000}; /* 50 us */
    long n = 0;
    for (;;) {
        const ncclResult_t r = status(ctx);
        n++;
        if (r != ncclInProgress || eff_time() - t0 > timeout_s) {
            if (polls) *polls = n;
            return r;
        }
        nanosleep(&nap, NULL);
    }
}

/* The communicator's state: ncclCommGetAsyncError's own failure, else the
 * asynchronous result (ncclSuccess, ncclInProgress or an error). */
static ncclResult_t comm_status(void *arg) {
    EffComm *c = arg;
    ncclResult_t as = ncclSuccess;
    const ncclResult_t r = ncclCommGetAsyncError(c->nccl, &as);
    return r != ncclSuccess ? r : as;
}

/* NCCL's contract for a non-blocking communicator: once a call has returned
 * ncclInProgress, poll ncclCommGetAsyncError until ncclSuccess before the
 * next NCCL call or any work on NCCL's stream; under the watchdog. */
static void settle(EffComm *c, const char *what) {
    const ncclResult_t r = eff_nccl_poll(comm_status, c, c->timeout_s, NULL);
    if (r == ncclSuccess) return;
    char d[512];
    if (r == ncclInProgress)
        snprintf(d, sizeof d, "still in progress after %.0f s (comm.timeout_s): aborting the communicator",
                 c->timeout_s);
    else
        snprintf(d, sizeof d, "asynchronous error %s (%s)", ncclGetErrorString(r), ncclGetLastError(c->nccl));
    comm_fail(c, what, d);
}

/* Every NCCL call on the communicator goes through here. */
static void nccl_call(EffComm *c, ncclResult_t r, const char *call) {
    if (r == ncclSuccess) return;
    if (r == ncclInProgress) {
        settle(c, call);
        return;
    }
    char d[512];
    snprintf(d, sizeof d, "%s returned %s (%s)", call, ncclGetErrorString(r), ncclGetLastError(c->nccl));
    comm_fail(c, "call failed", d);
}

/* Poll until `ev` completes, checking ncclCommGetAsyncError; abort past the
 * timeout. Every call was settled before, so ncclInProgress here only means
 * "not done yet". */
static void watch(EffComm *c, cudaEvent_t ev, const char *what) {
    const double t0 = eff_time();
    struct timespec nap = {0, 50000}; /* 50 us */
    for (;;) {
        const ncclResult_t as = comm_status(c);
        if (as != ncclSuccess && as != ncclInProgress) {
            char d[512];
            snprintf(d, sizeof d, "asynchronous error %s (%s)", ncclGetErrorString(as), ncclGetLastError(c->nccl));
            comm_fail(c, what, d);
        }
        const cudaError_t q = cudaEventQuery(ev);
        if (q == cudaSuccess) return;
        if (q != cudaErrorNotReady) comm_fail(c, what, cudaGetErrorString(q));
        if (eff_time() - t0 > c->timeout_s) {
            char d[256];
            snprintf(d, sizeof d, "not finished after %.0f s (comm.timeout_s): aborting the communicator", c->timeout_s);
            comm_fail(c, what, d);
        }
        nanosleep(&nap, NULL);
    }
}

/* The step's CUDA graph capture has already failed (an op was refused):
 * collectives launched now would run at once, outside the graph and
 * unordered, so they wait for the eager rerun (eff_comm_restart). */
static int capture_broken(const EffComm *c) {
    enum cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    CUDA_CHECK(cudaStreamIsCapturing(c->compute, &st));
    return st == cudaStreamCaptureStatusInvalidated;
}

void eff_comm_nccl_version(char *buf, size_t n) {
    int v = 0;
    if (ncclGetVersion(&v) != ncclSuccess) { snprintf(buf, n, "unknown"); return; }
    snprintf(buf, n, "%d.%d.%d", v / 10000, (v / 100) % 100, v % 100);
}

int eff_comm_select_device(MPI_Comm comm, int verbose) {
    int rank, world, local_rank, local_size;
    MPI_Comm local;
    MPI_CHECK(MPI_Comm_rank(comm, &rank));
    MPI_CHECK(MPI_Comm_size(comm, &world));
    MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &local));
    MPI_CHECK(MPI_Comm_rank(local, &local_rank));
    MPI_CHECK(MPI_Comm_size(local, &local_size));
    const int visible = eff_cuda_device_count();
    char host[128] = "?";
    gethostname(host, sizeof host - 1);
    EFF_CHECK(visible > 0, "rank %d on %s: the CUDA backend needs a GPU, but none is usable here\nHINT: request GPUs "
              "(--gpus-per-node) or set train.backend = cpu", rank, host);
    const int device = local_rank % visible;
    /* Refuse two ranks on one GPU: compare the chosen devices' UUIDs across
     * the node (with per-task binding each rank may see a single, different
     * GPU as device 0, so counting visible devices is not enough). */
    enum { DL = 300 };
    char desc[DL], *descs = eff_malloc((size_t)local_size * DL, "device descriptions");
    memset(desc, 0, sizeof desc);
    eff_cuda_describe(device, desc, sizeof desc);
    MPI_CHECK(MPI_Allgather(desc, DL, MPI_CHAR, descs, DL, MPI_CHAR, local));
    for (int r = 0; r < local_size; r++)
        EFF_CHECK(r == local_rank || strcmp(descs + (size_t)r * DL, desc) != 0,
                  "local ranks %d and %d on %s would share one GPU (%s): %d ranks on this node, %d GPU(s) visible to "
                  "rank %d\nHINT: start one rank per GPU (srun --ntasks-per-node equal to --gpus-per-node), and check "
                  "CUDA_VISIBLE_DEVICES / --gpu-bind", r < local_rank ? r : local_rank, r < local_rank ? local_rank : r,
                  host, desc, local_size, visible, rank);
    eff_free(descs);
    MPI_CHECK(MPI_Comm_free(&local));
    char line[512];
    snprintf(line, sizeof line, "topology: host %s rank %d local rank %d/%d -> device %d of %d: %s", host, rank,
             local_rank, local_size, device, visible, desc);
    char *all = rank == 0 ? eff_malloc((size_t)world * sizeof line, "topology lines") : NULL;
    MPI_CHECK(MPI_Gather(line, (int)sizeof line, MPI_CHAR, all, (int)sizeof line, MPI_CHAR, 0, comm));
    if (rank == 0 && verbose) {
        char v[32];
        eff_comm_nccl_version(v, sizeof v);
        printf("topology: %d rank(s), NCCL %s\n", world, v);
        for (int r = 0; r < world; r++) printf("%s\n", all + (size_t)r * sizeof line);
        fflush(stdout);
    }
    eff_free(all);
    return device;
}

EffComm *eff_comm_create(MPI_Comm comm, const EffBackend *be, float *grad, size_t n, double bucket_mb,
                         double timeout_s, int sharded) {
    EffComm *c = eff_calloc(1, sizeof *c, "NCCL communicator");
    c->sharded = sharded;
    c->mpi = comm;
    c->grad = grad;
    c->n = n;
    c->timeout_s = timeout_s;
    c->step = 0;
    MPI_CHECK(MPI_Comm_rank(comm, &c->rank));
    MPI_CHECK(MPI_Comm_size(comm, &c->world));
    ncclUniqueId id;
    if (c->rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&id);
        EFF_CHECK(r == ncclSuccess, "ncclGetUniqueId failed on rank 0: %s\nHINT: check NCCL_SOCKET_IFNAME and the "
                  "network interfaces", ncclGetErrorString(r));
    }
    MPI_CHECK(MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, comm));
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0; /* so the watchdog can abort a hung init or collective */
    nccl_call(c, ncclCommInitRankConfig(&c->nccl, c->world, id, c->rank, &cfg), "ncclCommInitRankConfig");
    settle(c, "communicator initialisation"); /* even after ncclSuccess: the init may still be connecting */

    c->compute = (cudaStream_t)eff_cuda_stream(be);
    CUDA_CHECK(cudaStreamCreateWithFlags(&c->comm, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&c->ready, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&c->done, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&c->fin, cudaEventDisableTiming));
    c->lo = eff_bucket_bounds(n, bucket_mb, &c->nbuckets);
    c->next = -1;
    return c;
}

int eff_comm_buckets(const EffComm *c) { return c->nbuckets; }

void eff_comm_begin(EffComm *c, long step) {
    c->step = step;
    c->next = c->nbuckets - 1;
}

void eff_comm_restart(EffComm *c) { c->next = c->nbuckets - 1; }

/* ZeRO-1: rank r gets the average of piece r of the bucket [lo, hi)
 * (buckets.h): an in-place ncclReduceScatter over the world x q head (in
 * place because recvbuff = sendbuff + rank q), and the last rank the
 * len % world tail by ncclReduce. */
static void reduce_scatter(EffComm *c, size_t lo, size_t hi) {
    const size_t q = (hi - lo) / (size_t)c->world, tail = lo + q * (size_t)c->world;
    if (q) nccl_call(c, ncclReduceScatter(c->grad + lo, c->grad + lo + (size_t)c->rank * q, q, ncclFloat, ncclAvg,
                                          c->nccl, c->comm), "ncclReduceScatter");
    if (hi > tail) nccl_call(c, ncclReduce(c->grad + tail, c->grad + tail, hi - tail, ncclFloat, ncclAvg, c->world - 1,
                                           c->nccl, c->comm), "ncclReduce (bucket tail)");
}

/* ZeRO-1: every rank's updated pieces to every rank (in-place ncclAllGather
 * per bucket, ncclBroadcast of the tails from the last rank), on the comm
 * stream after the optimizer; the compute stream waits before the next
 * forward. Never inside a CUDA graph: the optimizer step is not captured. */
void eff_comm_allgather_params(EffComm *c, float *param) {
    CUDA_CHECK(cudaEventRecord(c->ready, c->compute));
    CUDA_CHECK(cudaStreamWaitEvent(c->comm, c->ready, 0));
    for (int k = 0; k < c->nbuckets; k++) {
        const size_t lo = c->lo[k], hi = c->lo[k + 1], q = (hi - lo) / (size_t)c->world, tail = lo + q * (size_t)c->world;
        if (q) nccl_call(c, ncclAllGather(param + lo + (size_t)c->rank * q, param + lo, q, ncclFloat, c->nccl, c->comm),
                         "ncclAllGather (parameters)");
        if (hi > tail) nccl_call(c, ncclBroadcast(param + tail, param + tail, hi - tail, ncclFloat, c->world - 1, c->nccl,
                                                  c->comm), "ncclBroadcast (parameter bucket tail)");
    }
    CUDA_CHECK(cudaEventRecord(c->done, c->comm));
    CUDA_CHECK(cudaStreamWaitEvent(c->compute, c->done, 0));
}

static void launch_down_to(EffComm *c, int lowest) {
    if (c->next < lowest || capture_broken(c)) return;
    /* everything the compute stream has queued so far is ordered before these buckets */
    CUDA_CHECK(cudaEventRecord(c->ready, c->compute));
    CUDA_CHECK(cudaStreamWaitEvent(c->comm, c->ready, 0));
    for (; c->next >= lowest; c->next--) {
        const size_t lo = c->lo[c->next], hi = c->lo[c->next + 1];
        if (c->sharded) reduce_scatter(c, lo, hi);
        else nccl_call(c, ncclAllReduce(c->grad + lo, c->grad + lo, hi - lo, ncclFloat, ncclAvg, c->nccl, c->comm),
                       "ncclAllReduce");
    }
}

void eff_comm_grad_ready(EffComm *c, size_t first_final_offset) {
    /* the lowest bucket that lies wholly at or above first_final_offset */
    int b = c->nbuckets;
    while (b > 0 && c->lo[b - 1] >= first_final_offset) b--;
    launch_down_to(c, b);
}

void eff_comm_finish(EffComm *c) {
    launch_down_to(c, 0); /* each launch settled (nccl_call), so the join below may use the comm stream */
    if (capture_broken(c)) return;
    CUDA_CHECK(cudaEventRecord(c->done, c->comm));
    CUDA_CHECK(cudaStreamWaitEvent(c->compute, c->done, 0)); /* the optimizer reads the averaged gradients */
}

/* A fresh event on the compute stream, after the join: it completes with the
 * step's collectives whether they ran eagerly or inside a replayed CUDA graph
 * (an event recorded during a capture cannot be queried afterwards). */
void eff_comm_wait(EffComm *c) {
    CUDA_CHECK(cudaEventRecord(c->fin, c->compute));
    watch(c, c->fin, "gradient all-reduce");
}

void eff_comm_allreduce_avg(EffComm *c, float *buf, size_t n) {
    CUDA_CHECK(cudaEventRecord(c->ready, c->compute));
    CUDA_CHECK(cudaStreamWaitEvent(c->comm, c->ready, 0));
    nccl_call(c, ncclAllReduce(buf, buf, n, ncclFloat, ncclAvg, c->nccl, c->comm), "ncclAllReduce (BN statistics)");
    CUDA_CHECK(cudaEventRecord(c->done, c->comm));
    CUDA_CHECK(cudaStreamWaitEvent(c->compute, c->done, 0));
    watch(c, c->done, "BN statistics all-reduce");
}

void eff_comm_destroy(EffComm *c) {
    if (!c) return;
    if (c->nccl) {
        CUDA_CHECK(cudaStreamSynchronize(c->comm));
        nccl_call(c, ncclCommFinalize(c->nccl), "ncclCommFinalize");
        settle(c, "ncclCommFinalize"); /* even after ncclSuccess: wait until globally quiescent */
        /* after a settled finalize, destroy frees local resources without
         * blocking; the handle is gone, so there is nothing left to poll */
        const ncclResult_t r = ncclCommDestroy(c->nccl);
        c->nccl = NULL;
        if (r != ncclSuccess && r != ncclInProgress) {
            char d[256];
            snprintf(d, sizeof d, "ncclCommDestroy returned %s", ncclGetErrorString(r));
            comm_fail(c, "teardown", d);
        }
    }
    CUDA_CHECK(cudaEventDestroy(c->ready));
    CUDA_CHECK(cudaEventDestroy(c->done));
    CUDA_CHECK(cudaEventDestroy(c->fin));
    CUDA_CHECK(cudaStreamDestroy(c->comm));
    eff_free(c->lo);
    eff_free(c);
}
