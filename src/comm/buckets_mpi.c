/* buckets_mpi.c: the bucketed gradient reduction of the MPI path: a
 * reduce-scatter on point-to-point messages with every bucket split over the
 * ranks, summed in rank order, optionally followed by an all-gather (see
 * comm_mpi.h for the contract). */
#define _POSIX_C_SOURCE 200809L
#include "comm/comm_mpi.h"
#include "comm/buckets.h"

#include <string.h>
#include <time.h>

enum { ST_IDLE, ST_REDUCE, ST_GATHER, ST_PARAMS, ST_DONE };
enum { TAG_REDUCE = 0, TAG_GATHER = 1, TAG_PARAMS = 2, TAGS = 3 }; /* tag = TAGS * bucket + kind */

struct EffMpiBuckets {
    EffMpi *w;
    MPI_Comm comm;          /* a dup of w's: these messages' tags never meet another's */
    int rank, size, mode;
    float *grad;
    int nbuckets, next;     /* launched from the last bucket down to 0; next: highest not launched */
    size_t *lo;             /* bucket k covers [lo[k], lo[k+1]) */
    int *state;             /* per bucket: ST_* */
    MPI_Request *req;       /* per bucket: 2 (size - 1) requests of its current phase */
    float *stage;           /* per bucket: the other ranks' contributions to this rank's piece */
    size_t *stage_at;       /* per bucket: its offset in stage */
    int done_in_backward, in_finish;
    EffBucketEvent on_event; /* output.trace: each bucket's start and completion */
    void *event_arg;
};

/* Piece r of bucket k: [piece_lo(k, r), piece_lo(k, r + 1)) (buckets.h). */
static size_t piece_lo(const EffMpiBuckets *b, int k, int r) { return eff_piece_lo(b->lo[k], b->lo[k + 1], r, b->size); }

static size_t piece_n(const EffMpiBuckets *b, int k, int r) { return piece_lo(b, k, r + 1) - piece_lo(b, k, r); }

EffMpiBuckets *eff_mpi_buckets_create(EffMpi *w, float *grad, size_t n, double bucket_mb, int mode) {
    EffMpiBuckets *b = eff_calloc(1, sizeof *b, "gradient buckets");
    b->w = w;
    b->grad = grad;
    b->mode = mode;
    b->rank = eff_mpi_rank(w);
    b->size = eff_mpi_size(w);
    MPI_CHECK(MPI_Comm_dup(eff_mpi_comm(w), &b->comm));
    b->lo = eff_bucket_bounds(n, bucket_mb, &b->nbuckets);
    int *tag_ub = NULL, flag = 0;
    MPI_CHECK(MPI_Comm_get_attr(b->comm, MPI_TAG_UB, &tag_ub, &flag));
    EFF_CHECK(!flag || (long)TAGS * b->nbuckets <= (long)*tag_ub, "comm.bucket_mb = %g gives %d buckets: more than "
              "this MPI's tags allow (%d)\nHINT: raise comm.bucket_mb", bucket_mb, b->nbuckets, *tag_ub / TAGS);
    const size_t peers = (size_t)b->size - 1;
    b->state = eff_calloc((size_t)b->nbuckets, sizeof(int), "bucket states");
    b->req = eff_malloc(sizeof(MPI_Request) * 2 * peers * (size_t)b->nbuckets, "bucket requests");
    for (size_t i = 0; i < 2 * peers * (size_t)b->nbuckets; i++) b->req[i] = MPI_REQUEST_NULL;
    b->stage_at = eff_malloc(sizeof(size_t) * (size_t)b->nbuckets, "bucket staging offsets");
    size_t stage = 0;
    for (int k = 0; k < b->nbuckets; k++) {
        b->stage_at[k] = stage;
        stage += peers * piece_n(b, k, b->rank);
        EFF_CHECK(piece_n(b, k, b->size - 1) + 1 <= (size_t)0x7fffffff, "comm.bucket_mb = %g: a bucket piece exceeds MPI's int "
                  "count\nHINT: lower comm.bucket_mb", bucket_mb);
    }
    b->stage = eff_malloc(sizeof(float) * (stage ? stage : 1), "gradient reduction staging");
    return b;
}

void eff_mpi_buckets_destroy(EffMpiBuckets *b) {
    if (!b) return;
    /* every message done: the requests, the staging and the communicator are free to go */
    for (int k = 0; k < b->nbuckets; k++)
        EFF_CHECK(b->state[k] == ST_IDLE || b->state[k] == ST_DONE, "gradient bucket %d destroyed with its messages in "
                  "flight (state %d; internal error: finish the step, or wait for the parameter all-gather, first)", k,
                  b->state[k]);
    MPI_CHECK(MPI_Comm_free(&b->comm));
    eff_free(b->lo);
    eff_free(b->state);
    eff_free(b->req);
    eff_free(b->stage_at);
    eff_free(b->stage);
    eff_free(b);
}

int eff_mpi_buckets_count(const EffMpiBuckets *b) { return b->nbuckets; }

void eff_mpi_buckets_on_event(EffMpiBuckets *b, EffBucketEvent fn, void *arg) {
    b->on_event = fn;
    b->event_arg = arg;
}

void eff_mpi_buckets_begin(EffMpiBuckets *b) {
    b->next = b->nbuckets - 1;
    b->done_in_backward = 0;
    b->in_finish = 0;
    for (int k = 0; k < b->nbuckets; k++) {
        EFF_CHECK(b->state[k] != ST_REDUCE && b->state[k] != ST_GATHER, "gradient bucket %d: a new step began while its "
                  "reduction was in flight (internal error)", k);
        if (b->state[k] == ST_DONE) b->state[k] = ST_IDLE; /* a parameter all-gather may still be in flight */
    }
}

static MPI_Request *reqs_of(EffMpiBuckets *b, int k) { return b->req + (size_t)k * 2 * ((size_t)b->size - 1); }

/* The other ranks in a fixed order: peer i (0 <= i < size - 1). */
static int peer(const EffMpiBuckets *b, int i) { return i < b->rank ? i : i + 1; }

/* Every rank's piece r of bucket k to rank r; the others' contributions to
 * this rank's piece into its staging slots. */
static void start_reduce(EffMpiBuckets *b, int k) {
    MPI_Request *r = reqs_of(b, k);
    const int peers = b->size - 1, mine = (int)piece_n(b, k, b->rank);
    for (int i = 0; i < peers; i++) {
        const int p = peer(b, i);
        MPI_CHECK(MPI_Irecv(b->stage + b->stage_at[k] + (size_t)i * (size_t)mine, mine, MPI_FLOAT, p,
                            TAGS * k + TAG_REDUCE, b->comm, &r[i]));
        MPI_CHECK(MPI_Isend(b->grad + piece_lo(b, k, p), (int)piece_n(b, k, p), MPI_FLOAT, p, TAGS * k + TAG_REDUCE,
                            b->comm, &r[peers + i]));
    }
    b->state[k] = ST_REDUCE;
    if (b->on_event) b->on_event(b->event_arg, k, 0);
}

/* This rank's piece := the sum of the size contributions, added in rank order. */
static void sum_piece(EffMpiBuckets *b, int k) {
    enum { CHUNK = 1024 };
    const size_t n = piece_n(b, k, b->rank);
    float *dst = b->grad + piece_lo(b, k, b->rank);
    const float *slot = b->stage + b->stage_at[k];
    float acc[CHUNK];
    for (size_t c0 = 0; c0 < n; c0 += CHUNK) {
        const size_t m = n - c0 < CHUNK ? n - c0 : CHUNK;
        for (int r = 0; r < b->size; r++) {
            const float *src = r == b->rank ? dst + c0 : slot + (size_t)(r < b->rank ? r : r - 1) * n + c0;
            if (r == 0) memcpy(acc, src, m * sizeof(float));
            else for (size_t i = 0; i < m; i++) acc[i] += src[i];
        }
        memcpy(dst + c0, acc, m * sizeof(float));
    }
}

/* buf's piece `rank` of bucket k to every rank; the others' pieces into buf. */
static void start_gather(EffMpiBuckets *b, int k, float *buf, int kind) {
    MPI_Request *r = reqs_of(b, k);
    const int peers = b->size - 1;
    for (int i = 0; i < peers; i++) {
        const int p = peer(b, i);
        MPI_CHECK(MPI_Irecv(buf + piece_lo(b, k, p), (int)piece_n(b, k, p), MPI_FLOAT, p, TAGS * k + kind, b->comm,
                            &r[i]));
        MPI_CHECK(MPI_Isend(buf + piece_lo(b, k, b->rank), (int)piece_n(b, k, b->rank), MPI_FLOAT, p, TAGS * k + kind,
                            b->comm, &r[peers + i]));
    }
}

/* Test bucket k's messages; when its phase is complete, take the next one. */
static void advance(EffMpiBuckets *b, int k) {
    if (b->state[k] != ST_REDUCE && b->state[k] != ST_GATHER && b->state[k] != ST_PARAMS) return;
    int done = 0;
    MPI_CHECK(MPI_Testall(2 * (b->size - 1), reqs_of(b, k), &done, MPI_STATUSES_IGNORE));
    if (!done) return;
    if (b->state[k] == ST_REDUCE) { /* every send of this bucket is complete too: its pieces may be overwritten */
        sum_piece(b, k);
        if (b->mode == EFF_BUCKETS_ALLREDUCE) {
            start_gather(b, k, b->grad, TAG_GATHER);
            b->state[k] = ST_GATHER;
            return;
        }
    }
    const int params = b->state[k] == ST_PARAMS;
    b->state[k] = ST_DONE;
    if (params) return;
    if (!b->in_finish) b->done_in_backward++;
    if (b->on_event) b->on_event(b->event_arg, k, 1);
}

void eff_mpi_buckets_progress(EffMpiBuckets *b) {
    for (int k = b->nbuckets - 1; k >= 0; k--) advance(b, k);
}

/* Start the reduction of bucket b->next, the highest not yet started. */
static void start_next(EffMpiBuckets *b) {
    EFF_CHECK(b->state[b->next] == ST_IDLE || b->state[b->next] == ST_DONE, "gradient bucket %d started while its "
              "parameters were still being gathered (internal error: the forward must wait for them)", b->next);
    start_reduce(b, b->next);
    b->next--;
}

void eff_mpi_grad_ready(EffMpiBuckets *b, size_t first_final_offset) {
    eff_mpi_buckets_progress(b);
    while (b->next >= 0 && b->lo[b->next] >= first_final_offset) start_next(b);
}

static int all_done(void *arg) {
    EffMpiBuckets *b = arg;
    eff_mpi_buckets_progress(b);
    for (int k = 0; k < b->nbuckets; k++)
        if (b->state[k] != ST_DONE) return 0;
    return 1;
}

void eff_mpi_buckets_finish(EffMpiBuckets *b, EffMpiBucketStats *stats) {
    eff_mpi_buckets_progress(b);
    while (b->next >= 0) start_next(b);
    const double t0 = eff_time();
    b->in_finish = 1;
    eff_mpi_poll_collective(b->w, all_done, b, b->mode == EFF_BUCKETS_ALLREDUCE ? "gradient all-reduce (buckets)"
                                                                      : "gradient reduce-scatter (buckets)");
    if (stats) *stats = (EffMpiBucketStats){b->nbuckets, b->done_in_backward, eff_time() - t0};
}

void eff_mpi_buckets_allgather_start(EffMpiBuckets *b, float *buf) {
    for (int k = 0; k < b->nbuckets; k++) {
        EFF_CHECK(b->state[k] == ST_DONE || b->state[k] == ST_IDLE, "parameter all-gather of bucket %d started during "
                  "its reduction (internal error)", k);
        start_gather(b, k, buf, TAG_PARAMS);
        b->state[k] = ST_PARAMS;
    }
}

typedef struct { EffMpiBuckets *b; size_t end; } Below;

static int params_below(void *arg) {
    const Below *w = arg;
    EffMpiBuckets *b = w->b;
    eff_mpi_buckets_progress(b);
    for (int k = 0; k < b->nbuckets && b->lo[k] < w->end; k++)
        if (b->state[k] == ST_PARAMS) return 0;
    return 1;
}

int eff_mpi_buckets_params_pending(EffMpiBuckets *b, size_t end) {
    Below w = {b, end};
    return !params_below(&w);
}

void eff_mpi_buckets_allgather_wait(EffMpiBuckets *b, size_t end, const char *what) {
    Below w = {b, end};
    if (!params_below(&w)) eff_mpi_poll(b->w, params_below, &w, what);
}
