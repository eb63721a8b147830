/* comm_nccl.h: one GPU per MPI rank, and the gradient all-reduce over NCCL,
 * bootstrapped by MPI (src/comm/comm_nccl.c; src/comm/comm_nccl_stub.c without CUDA).
 *
 *  - eff_comm_select_device: the node-local rank from
 *    MPI_Comm_split_type(MPI_COMM_TYPE_SHARED); device = local_rank % visible
 *    GPUs; refuses to put two ranks on one GPU (chosen devices' UUIDs are
 *    compared across the node); logs the topology (host, rank,
 *    local rank, GPU name and UUID) on rank 0, and the NCCL version.
 *  - eff_comm_create: rank 0 calls ncclGetUniqueId and MPI_Bcast's it; every
 *    rank then ncclCommInitRankConfig (non-blocking, so it can be aborted).
 *    Every NCCL call that answers ncclInProgress is settled -- polled with
 *    ncclCommGetAsyncError until ncclSuccess, under the watchdog's timeout
 *    (src/comm/nccl_poll.h) -- before the next NCCL call or any work on the
 *    comm stream, as NCCL requires of a non-blocking communicator.
 *  - Gradients: the contiguous buffer is cut into fixed buckets of about
 *    bucket_bytes. eff_comm_grad_ready(first) is called by the backward pass
 *    whenever every gradient at offsets >= first is final (gradients finish
 *    from the classifier back to the stem); each bucket lying wholly in that
 *    range is launched at once -- ncclAllReduce(ncclAvg) on the comm stream,
 *    ordered after the compute stream by an event -- so communication
 *    overlaps the rest of backward. eff_comm_finish launches the rest and
 *    makes the compute stream wait for all of them.
 *  - Watchdog: eff_comm_wait polls the completion event and
 *    ncclCommGetAsyncError; past timeout_s (config comm.timeout_s) or on an
 *    asynchronous NCCL error it calls ncclCommAbort and exits non-zero naming
 *    the rank and step (the MPI abort hook then ends the other ranks). */
#ifndef EFFNET_COMM_NCCL_H
#define EFFNET_COMM_NCCL_H

#include "backend/backend.h"
#include "comm/comm_mpi.h" /* MPI_CHECK */

#include <mpi.h>
#include <stddef.h>

typedef struct EffComm EffComm;

/* Returns the device this rank must use. */
int eff_comm_select_device(MPI_Comm comm, int verbose);
/* sharded (ZeRO-1): the buckets are reduce-scattered (ncclAvg; rank r gets
 * piece r of each, src/comm/buckets.h) instead of all-reduced, and
 * eff_comm_allgather_params sends the updated pieces back after the step. */
EffComm *eff_comm_create(MPI_Comm comm, const EffBackend *be, float *grad, size_t n, double bucket_mb,
                         double timeout_s, int sharded);
void eff_comm_allgather_params(EffComm *c, float *param);
void eff_comm_destroy(EffComm *c);
/* Start a new step's gradient all-reduce (resets the bucket state). */
void eff_comm_begin(EffComm *c, long step);
/* The step's CUDA graph capture failed and its recording was dropped: the
 * buckets it recorded never ran, so the eager rerun launches all of them
 * again (same step). While a capture is already broken, no bucket is
 * launched at all: it would run at once, outside the graph. */
void eff_comm_restart(EffComm *c);
void eff_comm_grad_ready(EffComm *c, size_t first_final_offset);
void eff_comm_finish(EffComm *c);
/* Host waits for the step's collectives, under the watchdog. */
void eff_comm_wait(EffComm *c);
/* Blocking average of a small device buffer (BN running stats), under the watchdog. */
void eff_comm_allreduce_avg(EffComm *c, float *buf, size_t n);
int eff_comm_buckets(const EffComm *c);
/* "2.28.3" or "none". */
void eff_comm_nccl_version(char *buf, size_t n);

#endif
