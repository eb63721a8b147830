/* nccl_poll.h: the polling loop of NCCL's non-blocking contract, as a host
 * function of a status source, so that it is tested without a GPU
 * (tests/gpu/test_nccl_poll.c feeds it scripted answers).
 *
 * src/comm/comm_nccl.c creates its communicator non-blocking (so that the
 * watchdog can abort it). Then any NCCL call may return ncclInProgress, and
 * NCCL's contract is: query ncclCommGetAsyncError until it answers
 * ncclSuccess before the next NCCL call or any work on NCCL's stream. */
#ifndef EFFNET_NCCL_POLL_H
#define EFFNET_NCCL_POLL_H

#include <nccl.h>

/* The communicator's state now: ncclSuccess, ncclInProgress or an error. */
typedef ncclResult_t (*EffNcclStatusFn)(void *ctx);

/* Poll status(ctx), napping 50 us between polls, until it answers anything
 * but ncclInProgress, or until timeout_s seconds have passed. Returns the
 * last answer: ncclSuccess (settled), an error, or ncclInProgress (timed
 * out). *polls (NULL-able) gets the number of polls made. */
ncclResult_t eff_nccl_poll(EffNcclStatusFn status, void *ctx, double timeout_s, long *polls);

#endif
