/* comm_mpi.c: MPI collectives under a stall watchdog (see comm_mpi.h). */
#define _POSIX_C_SOURCE 200809L
#include "comm/comm_mpi.h"

#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { HOST_LEN = 64, WHAT_LEN = 48, TAG_QUERY = 1, TAG_REPLY = 2 };

/* A rank's answer to "where are you?": what it is waiting in. */
typedef struct {
    long long seq;       /* collectives this rank has entered, the one it waits in included */
    int collective;      /* 1: waiting in collective #seq; 0: in a point-to-point wait after it */
    double waited_s;
    char what[WHAT_LEN];
} Where;

struct EffMpi {
    MPI_Comm comm, side; /* side: a dup of comm for the watchdog's queries and replies */
    int rank, size;
    double timeout_s;
    long long seq;       /* collectives entered so far (every rank enters the same ones, so this is global) */
    int collective;      /* the wait under way is collective #seq (else a point-to-point wait) */
    const char *what;    /* its name, NULL when not waiting */
    long long step;      /* the training step under way, 0: none (setup, evaluation) */
    double t_start;      /* when the wait began */
    char *hosts;         /* size x HOST_LEN */
    /* Per peer: the send buffers of this rank's answer to it and of its query
     * to it, and their requests. A buffer is rewritten only once its previous
     * send has completed; destroy frees none that MPI may still read. */
    Where *replies;
    long long *queries;
    MPI_Request *reply_req, *query_req;
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

EffMpi *eff_mpi_create(MPI_Comm comm, double timeout_s) {
    EFF_CHECK(timeout_s > 0, "comm.timeout_s must be > 0 (got %g)", timeout_s);
    EffMpi *w = eff_calloc(1, sizeof *w, "MPI watchdog");
    w->comm = comm;
    w->timeout_s = timeout_s;
    MPI_CHECK(MPI_Comm_rank(comm, &w->rank));
    MPI_CHECK(MPI_Comm_size(comm, &w->size));
    MPI_CHECK(MPI_Comm_dup(comm, &w->side));
    char me[HOST_LEN] = {0};
    if (gethostname(me, sizeof me - 1) != 0) snprintf(me, sizeof me, "?");
    w->hosts = eff_calloc((size_t)w->size, HOST_LEN, "host names");
    w->replies = eff_calloc((size_t)w->size, sizeof(Where), "watchdog answers");
    w->queries = eff_calloc((size_t)w->size, sizeof(long long), "watchdog queries");
    w->reply_req = eff_malloc(sizeof(MPI_Request) * 2 * (size_t)w->size, "watchdog requests");
    w->query_req = w->reply_req + w->size;
    for (int r = 0; r < 2 * w->size; r++) w->reply_req[r] = MPI_REQUEST_NULL;
    MPI_CHECK(MPI_Allgather(me, HOST_LEN, MPI_CHAR, w->hosts, HOST_LEN, MPI_CHAR, comm));
    return w;
}

/* 1 when request r is complete (or null); it is then null. */
static int send_done(MPI_Request *r) {
    int flag = 1;
    if (*r != MPI_REQUEST_NULL) MPI_CHECK(MPI_Test(r, &flag, MPI_STATUS_IGNORE));
    return flag;
}

void eff_mpi_destroy(EffMpi *w) {
    if (!w) return;
    /* The watchdog's sends are small (eager) and normally long complete; give
     * any still in flight a second. One that is not done by then (its peer is
     * gone) keeps its buffers: MPI may still read them, and the process is
     * about to exit. Freeing the communicator with it pending is allowed. */
    int pending = 0;
    const double t0 = now_s();
    do {
        pending = 0;
        for (int r = 0; r < 2 * w->size; r++) pending += !send_done(&w->reply_req[r]);
        if (pending) nanosleep(&(struct timespec){0, 1000000L}, NULL);
    } while (pending && now_s() - t0 < 1.0);
    MPI_CHECK(MPI_Comm_free(&w->side));
    eff_free(w->hosts);
    if (!pending) {
        eff_free(w->replies);
        eff_free(w->queries);
        eff_free(w->reply_req);
    }
    eff_free(w);
}

int eff_mpi_rank(const EffMpi *w) { return w->rank; }
MPI_Comm eff_mpi_comm(const EffMpi *w) { return w->comm; }
int eff_mpi_size(const EffMpi *w) { return w->size; }
const char *eff_mpi_host(const EffMpi *w, int rank) { return w->hosts + (size_t)rank * HOST_LEN; }
long long eff_mpi_seq(const EffMpi *w) { return w->seq; }
void eff_mpi_set_step(EffMpi *w, long long step) { w->step = step; }

/* Answer every pending "where are you?" with what this rank waits in. An
 * asker whose previous answer is still in flight gets none this time (one
 * answer per stall is all it needs), so no send buffer is rewritten early. */
static void answer_queries(EffMpi *w) {
    for (;;) {
        int flag = 0;
        MPI_Status st;
        MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, TAG_QUERY, w->side, &flag, &st));
        if (!flag) return;
        long long their_seq;
        const int from = st.MPI_SOURCE;
        MPI_CHECK(MPI_Recv(&their_seq, 1, MPI_LONG_LONG, from, TAG_QUERY, w->side, MPI_STATUS_IGNORE));
        if (!send_done(&w->reply_req[from])) continue;
        Where *a = &w->replies[from];
        a->seq = w->seq;
        a->collective = w->collective;
        a->waited_s = now_s() - w->t_start;
        snprintf(a->what, WHAT_LEN, "%s", w->what ? w->what : "-");
        MPI_CHECK(MPI_Isend(a, (int)sizeof *a, MPI_BYTE, from, TAG_REPLY, w->side, &w->reply_req[from]));
    }
}

/* Ask every other rank where it is; collect answers for `grace` seconds (or
 * until all answered). answered[r] = 1 and where[r] filled for those that did. */
static int collect_answers(EffMpi *w, double grace, int *answered, Where *where) {
    for (int r = 0; r < w->size; r++) {
        if (r == w->rank || !send_done(&w->query_req[r])) continue;
        w->queries[r] = w->seq;
        MPI_CHECK(MPI_Isend(&w->queries[r], 1, MPI_LONG_LONG, r, TAG_QUERY, w->side, &w->query_req[r]));
    }
    int got = 0;
    const double t0 = now_s();
    while (got < w->size - 1 && now_s() - t0 < grace) {
        answer_queries(w);
        int flag = 0;
        MPI_Status st;
        MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, TAG_REPLY, w->side, &flag, &st));
        if (!flag) { nanosleep(&(struct timespec){0, 1000000L}, NULL); continue; }
        Where a;
        MPI_CHECK(MPI_Recv(&a, (int)sizeof a, MPI_BYTE, st.MPI_SOURCE, TAG_REPLY, w->side, MPI_STATUS_IGNORE));
        if (!answered[st.MPI_SOURCE]) got++;
        answered[st.MPI_SOURCE] = 1;
        where[st.MPI_SOURCE] = a;
    }
    return got;
}

static void append(char *buf, size_t cap, const char *fmt, ...) EFF_PRINTF(3, 4);
static void append(char *buf, size_t cap, const char *fmt, ...) {
    size_t n = strlen(buf);
    if (n + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, cap - n, fmt, ap);
    va_end(ap);
}

/* Whether a and b wait in the same collective; equal numbers of point-to-point
 * waits mean nothing (only some ranks wait, e.g. for ZeRO-1's parameters). */
static int same_collective(const Where *a, const Where *b) {
    return a->collective && b->collective && a->seq == b->seq && !strcmp(a->what, b->what);
}

/* The lines about the ranks that answered: which wait here too, and where the
 * others are -- a mismatch only when both wait in different collectives. */
static void describe_others(const EffMpi *w, const int *answered, const Where *where, char *msg, size_t cap) {
    const Where *me = &where[w->rank];
    int here = 0;
    for (int r = 0; r < w->size; r++)
        if (r != w->rank && answered[r] && same_collective(me, &where[r]))
            append(msg, cap, "%s rank %d", here++ ? "," : "\n  waiting in the same collective:", r);
    for (int r = 0; r < w->size; r++) {
        const Where *o = &where[r];
        if (r == w->rank || !answered[r] || same_collective(me, o)) continue;
        if (me->collective && o->collective && o->seq == me->seq)
            append(msg, cap, "\n  rank %d (host %s) waits in a different collective under the same number: %s (#%lld) "
                   "for %.1f s (a mismatch: the ranks run different code paths)", r, eff_mpi_host(w, r), o->what,
                   o->seq, o->waited_s);
        else if (me->collective && o->collective) /* its part of the earlier one was done: not a mismatch */
            append(msg, cap, "\n  rank %d (host %s) waits in collective #%lld, %s, for %.1f s (%s)", r,
                   eff_mpi_host(w, r), o->seq, o->what, o->waited_s, o->seq > me->seq ? "ahead: its part of this one "
                   "completed" : "behind: it has not reached this one");
        else
            append(msg, cap, "\n  rank %d (host %s) waits in %s (%s #%lld) for %.1f s", r, eff_mpi_host(w, r), o->what,
                   o->collective ? "collective" : "a point-to-point wait after collective", o->seq, o->waited_s);
    }
}

/* The wait passed timeout_s: find who did not arrive, report, abort the job. */
static void stall(EffMpi *w) {
    const double grace = w->timeout_s < 10 ? 2.0 : 5.0;
    int *answered = eff_calloc((size_t)w->size, sizeof(int), "watchdog replies");
    Where *where = eff_calloc((size_t)w->size, sizeof(Where), "watchdog replies");
    answered[w->rank] = 1;
    where[w->rank] = (Where){.seq = w->seq, .collective = w->collective, .waited_s = now_s() - w->t_start};
    snprintf(where[w->rank].what, WHAT_LEN, "%s", w->what);
    collect_answers(w, grace, answered, where);
    int reporter = w->rank; /* the lowest rank that waits in the same place reports; the others back it up */
    for (int r = 0; r < w->size; r++)
        if (answered[r] && (r == w->rank || same_collective(&where[w->rank], &where[r]))) { reporter = r; break; }
    if (reporter != w->rank) { /* give the reporter time to abort the job; then report too */
        const double t0 = now_s();
        while (now_s() - t0 < grace) { answer_queries(w); nanosleep(&(struct timespec){0, 10000000L}, NULL); }
    }
    char msg[4096] = "";
    char step[48] = "";
    if (w->step > 0) snprintf(step, sizeof step, ", training step %lld", w->step);
    append(msg, sizeof msg, "effnet: error: comm stall: %s (%s #%lld%s) waited %.1f s on rank %d (host %s), "
           "past comm.timeout_s = %g.\n  did not arrive (no answer within %.0f s: stopped, dead, unreachable, or busy "
           "outside any collective):", w->what, w->collective ? "collective" : "point-to-point wait after collective",
           w->seq, step, now_s() - w->t_start, w->rank, eff_mpi_host(w, w->rank), w->timeout_s, grace);
    int silent = 0;
    for (int r = 0; r < w->size; r++)
        if (!answered[r]) append(msg, sizeof msg, "%s rank %d (host %s)", silent++ ? "," : "", r, eff_mpi_host(w, r));
    if (!silent) append(msg, sizeof msg, " none");
    describe_others(w, answered, where, msg, sizeof msg);
    append(msg, sizeof msg, "\nHINT: check the named ranks' node (dmesg, the node's network link, a stopped "
           "process); raise comm.timeout_s if a step or a checkpoint legitimately takes longer; resume from the last "
           "checkpoint (docs/training.md)\n");
    fputs(msg, stderr);
    fflush(stderr);
    fflush(stdout);
    /* MPI_Abort may itself block on a dead link (the launcher tries to reach
     * the lost node's daemon): SIGALRM's default action ends this process
     * regardless, which the launcher sees as a failed rank */
    signal(SIGALRM, SIG_DFL);
    alarm(20);
    MPI_Abort(w->comm, EFF_EXIT_STALL);
    _exit(EFF_EXIT_STALL); /* not reached */
}

void eff_mpi_wait(EffMpi *w, MPI_Request *req, const char *what) { eff_mpi_waitall(w, 1, req, what); }

typedef struct { int n; MPI_Request *reqs; } Reqs;

static int test_all(void *arg) {
    Reqs *r = arg;
    int done = 0;
    MPI_CHECK(MPI_Testall(r->n, r->reqs, &done, MPI_STATUSES_IGNORE));
    return done;
}

void eff_mpi_waitall(EffMpi *w, int n, MPI_Request *reqs, const char *what) {
    Reqs r = {n, reqs};
    eff_mpi_poll_collective(w, test_all, &r, what);
}

static void poll_until(EffMpi *w, int (*done)(void *arg), void *arg, const char *what, int collective) {
    if (collective) w->seq++;
    w->collective = collective;
    w->what = what;
    w->t_start = now_s();
    /* spin (MPI progresses inside MPI_Test) for the first 50 ms, then poll every 0.2 ms */
    for (long polls = 0;; polls++) {
        if (done(arg)) break;
        if ((polls & 63) == 0) {
            answer_queries(w);
            const double waited = now_s() - w->t_start;
            if (waited > w->timeout_s) stall(w);
            if (waited > 0.05) nanosleep(&(struct timespec){0, 200000L}, NULL);
            else sched_yield();
        }
    }
    w->what = NULL;
    w->collective = 0;
}

void eff_mpi_poll(EffMpi *w, int (*done)(void *arg), void *arg, const char *what) {
    poll_until(w, done, arg, what, 0);
}

void eff_mpi_poll_collective(EffMpi *w, int (*done)(void *arg), void *arg, const char *what) {
    poll_until(w, done, arg, what, 1);
}

static int as_int(size_t count, const char *what) {
    EFF_CHECK(count <= INT_MAX, "%s: %zu elements exceed MPI's int count", what, count);
    return (int)count;
}

void eff_mpi_allreduce(EffMpi *w, void *buf, size_t count, MPI_Datatype type, MPI_Op op, const char *what) {
    MPI_Request r;
    MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, buf, as_int(count, what), type, op, w->comm, &r));
    eff_mpi_wait(w, &r, what);
}

void eff_mpi_bcast(EffMpi *w, void *buf, size_t count, MPI_Datatype type, int root, const char *what) {
    MPI_Request r;
    MPI_CHECK(MPI_Ibcast(buf, as_int(count, what), type, root, w->comm, &r));
    eff_mpi_wait(w, &r, what);
}

void eff_mpi_allgather(EffMpi *w, const void *send, void *recv, size_t count, MPI_Datatype type, const char *what) {
    MPI_Request r;
    MPI_CHECK(MPI_Iallgather(send, as_int(count, what), type, recv, as_int(count, what), type, w->comm, &r));
    eff_mpi_wait(w, &r, what);
}

void eff_mpi_barrier(EffMpi *w, const char *what) {
    MPI_Request r;
    MPI_CHECK(MPI_Ibarrier(w->comm, &r));
    eff_mpi_wait(w, &r, what);
}

void eff_mpi_gatherv(EffMpi *w, const float *send, int count, float *recv, const int *counts, const int *displs,
                     int root, const char *what) {
    MPI_Request r;
    MPI_CHECK(MPI_Igatherv(send, count, MPI_FLOAT, recv, counts, displs, MPI_FLOAT, root, w->comm, &r));
    eff_mpi_wait(w, &r, what);
}

