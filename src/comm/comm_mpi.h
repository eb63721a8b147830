/* comm_mpi.h: MPI collectives under a stall watchdog (src/comm/comm_mpi.c).
 *
 * A blocking MPI_Allreduce waits forever when one rank stops taking part
 * (kill -STOP, a deadlock, a dead link TCP has not noticed). Every collective
 * of the training loop therefore goes through EffMpi: it is started
 * non-blocking (MPI_Iallreduce, MPI_Ibcast, ...) and waited for by polling,
 * with the collective's sequence number and a name ("gradient all-reduce").
 *
 * Past comm.timeout_s the waiting rank asks every other rank, on a side
 * communicator (a dup of the world), where it is. A rank that is itself
 * waiting in a collective answers at once with that collective's number and
 * name (or, in a point-to-point wait such as ZeRO-1's parameter all-gather,
 * the number of the last collective it entered); a stopped, dead or
 * unreachable rank cannot. After a short grace period (the replies' round
 * trip plus a margin) the waiting rank prints one error naming the
 * collective, the ranks and hosts that did not answer, the ranks waiting
 * with it, and any rank waiting in a different collective (a mismatch: a
 * deadlock), then
 * calls MPI_Abort with EFF_EXIT_STALL so the job ends with a non-zero exit
 * that mpirun, srun and Slurm see. Hostnames are gathered once at creation,
 * so a silent rank's host is known without asking it.
 *
 * Not thread-safe: one thread per process calls these (MPI_THREAD_FUNNELED). */
#ifndef EFFNET_COMM_MPI_H
#define EFFNET_COMM_MPI_H

#include "common.h"

#include <mpi.h>
#include <stddef.h>

/* Check an MPI call: on failure, name the call and MPI's error string and
 * exit through EFF_FATAL (whose abort hook ends every rank). */
#define MPI_CHECK(call) do { int rc_ = (call); if (rc_ != MPI_SUCCESS) { char s_[MPI_MAX_ERROR_STRING]; int l_ = 0; \
    MPI_Error_string(rc_, s_, &l_); EFF_FATAL("%s failed: %s", #call, s_); } } while (0)

enum { EFF_EXIT_STALL = 4 }; /* a collective stalled past comm.timeout_s */

typedef struct EffMpi EffMpi;

/* Collective over comm: duplicates it for the side channel and gathers every
 * rank's hostname. timeout_s > 0. */
EffMpi *eff_mpi_create(MPI_Comm comm, double timeout_s);
void eff_mpi_destroy(EffMpi *w);
int eff_mpi_rank(const EffMpi *w);
MPI_Comm eff_mpi_comm(const EffMpi *w);
int eff_mpi_size(const EffMpi *w);
const char *eff_mpi_host(const EffMpi *w, int rank);
/* Collectives entered so far (the next one's number minus 1); the same on
 * every rank at the same point of the program. */
long long eff_mpi_seq(const EffMpi *w);
/* The training step under way (>= 1), named in a stall report; 0: none. */
void eff_mpi_set_step(EffMpi *w, long long step);

/* Wait for a started request under the watchdog; `what` names it in errors. */
void eff_mpi_wait(EffMpi *w, MPI_Request *req, const char *what);
/* Wait for n started requests (all of them) under the watchdog. */
void eff_mpi_waitall(EffMpi *w, int n, MPI_Request *reqs, const char *what);
/* The blocking collectives of the training loop, each under the watchdog. */
void eff_mpi_allreduce(EffMpi *w, void *buf, size_t count, MPI_Datatype type, MPI_Op op, const char *what);
void eff_mpi_bcast(EffMpi *w, void *buf, size_t count, MPI_Datatype type, int root, const char *what);
void eff_mpi_allgather(EffMpi *w, const void *send, void *recv, size_t count, MPI_Datatype type, const char *what);
void eff_mpi_barrier(EffMpi *w, const char *what);
/* Poll done(arg) (which tests requests and advances their state) until it
 * returns non-zero, under the watchdog. _collective: a wait that every rank
 * makes, in the same order (it gets the next collective number); plain: a
 * point-to-point wait that only some ranks make (not numbered, so the
 * numbers stay comparable across ranks in a stall report). */
void eff_mpi_poll(EffMpi *w, int (*done)(void *arg), void *arg, const char *what);
void eff_mpi_poll_collective(EffMpi *w, int (*done)(void *arg), void *arg, const char *what);
/* recv[displs[r] ..] on root = rank r's send[0 .. counts[r]) (float buffers). */
void eff_mpi_gatherv(EffMpi *w, const float *send, int count, float *recv, const int *counts, const int *displs,
                     int root, const char *what);

/* Bucketed gradient reduction (src/comm/buckets_mpi.c) on point-to-point messages, overlapped with
 * backward (the CPU twin of comm_nccl.c's buckets), for the replicated and
 * the sharded (ZeRO-1) optimizer alike.
 *
 * The gradient buffer is cut into buckets of about bucket_mb, and every
 * bucket into world near-equal pieces: piece r of every bucket belongs to
 * rank r (DeepSpeed's interleaved layout, so every bucket keeps every link
 * busy). Reducing a bucket: every rank sends piece r to rank r (non-blocking
 * sends and receives on a private communicator), and rank r adds the world
 * contributions in rank order 0, 1, ..., N-1. In EFF_BUCKETS_ALLREDUCE mode
 * rank r then sends its summed piece to every rank (an all-gather); in
 * EFF_BUCKETS_REDUCE_SCATTER mode it keeps it (ZeRO-1: rank r updates the
 * parameters of its pieces, eff_bucket_owned in buckets.h, and
 * eff_mpi_buckets_allgather sends them to everyone).
 *
 * Because every mode adds in the same fixed order, the sharded and the
 * replicated optimizer see bit-identical gradients on any rank count. With
 * 2 ranks the sum is also bit-identical to MPI_Allreduce's (a sum of two is
 * the same in either order); with more, MPI's order differs (rounding only).
 *
 * eff_mpi_grad_ready(first) -- called by backward between ops whenever every
 * gradient at offsets >= first is final -- starts each bucket wholly in that
 * range; eff_mpi_buckets_progress (after every op) tests the messages in
 * flight and advances each bucket (sum, then all-gather): Open MPI has no
 * progress thread for shared memory or TCP, so this is where the bytes move.
 * finish starts the rest and waits for all under the watchdog. */
typedef struct EffMpiBuckets EffMpiBuckets;
typedef struct {
    int buckets;           /* per step */
    int done_in_backward;  /* buckets found complete by a test call before finish */
    double exposed_s;      /* finish: waiting after backward */
} EffMpiBucketStats;
enum { EFF_BUCKETS_ALLREDUCE = 0, EFF_BUCKETS_REDUCE_SCATTER = 1 };

/* Collective over w's communicator (it duplicates it). */
EffMpiBuckets *eff_mpi_buckets_create(EffMpi *w, float *grad, size_t n, double bucket_mb, int mode);
void eff_mpi_buckets_destroy(EffMpiBuckets *b);
int eff_mpi_buckets_count(const EffMpiBuckets *b);
void eff_mpi_buckets_begin(EffMpiBuckets *b);
void eff_mpi_grad_ready(EffMpiBuckets *b, size_t first_final_offset);
void eff_mpi_buckets_progress(EffMpiBuckets *b);
void eff_mpi_buckets_finish(EffMpiBuckets *b, EffMpiBucketStats *stats);
/* ZeRO-1: every rank's pieces of buf to every rank, in place (buf has the
 * gradient's layout: the parameters). start posts the messages of every
 * bucket; eff_mpi_buckets_progress moves them, so they overlap the next
 * forward; wait blocks, under the watchdog, until every bucket that begins
 * below offset `end` has arrived (SIZE_MAX: all); pending tests that without
 * blocking. The next step's reduction must not start before all arrived. */
void eff_mpi_buckets_allgather_start(EffMpiBuckets *b, float *buf);
void eff_mpi_buckets_allgather_wait(EffMpiBuckets *b, size_t end, const char *what);
int eff_mpi_buckets_params_pending(EffMpiBuckets *b, size_t end);
/* fn(arg, bucket, 0) when a bucket's reduction starts, fn(arg, bucket, 1)
 * when a test call (or finish) first sees it complete (output.trace). */
typedef void (*EffBucketEvent)(void *arg, int bucket, int done);
void eff_mpi_buckets_on_event(EffMpiBuckets *b, EffBucketEvent fn, void *arg);

#endif
