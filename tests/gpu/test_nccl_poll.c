/* test_nccl_poll.c: NCCL's non-blocking contract in src/comm/comm_nccl.c.
 *
 *   test_nccl_poll --host    eff_nccl_poll (src/comm/nccl_poll.h) against
 *                            scripted status sources: it polls through
 *                            ncclInProgress until ncclSuccess, stops at the
 *                            first error, gives up (ncclInProgress) after the
 *                            timeout, and never polls past a settled state
 *   test_nccl_poll --device  the communicator on a GPU, one rank: a
 *                            non-blocking init, then 30+ back-to-back
 *                            ncclAllReduce calls (tiny buckets), each settled
 *                            before the next; a dropped capture's restart
 *                            (eff_comm_restart) relaunches every bucket;
 *                            teardown through ncclCommFinalize. Without a
 *                            device: the reason, "skipped", exit 77 -- at
 *                            the first CUDA call, before MPI. */
#include "backend/backend.h"
#include "comm/comm_nccl.h"
#include "comm/nccl_poll.h"
#include "common.h"
#include "test_util.h"

#include <math.h>
#include <mpi.h>
#include <string.h>

typedef struct Script { const ncclResult_t *answers; int n, next; } Script;

/* Answers in order; the last one repeats. */
static ncclResult_t scripted(void *ctx) {
    Script *s = ctx;
    const ncclResult_t r = s->answers[s->next < s->n ? s->next : s->n - 1];
    s->next++;
    return r;
}

static void check_script(TestState *ts, const char *what, const ncclResult_t *a, int n, double timeout,
                         ncclResult_t want, long want_polls) {
    Script s = {a, n, 0};
    long polls = -1;
    const double t0 = eff_time();
    const ncclResult_t r = eff_nccl_poll(scripted, &s, timeout, &polls);
    const double dt = eff_time() - t0;
    T_CHECK(ts, r == want, "%s: returned %s, want %s", what, ncclGetErrorString(r), ncclGetErrorString(want));
    if (want_polls > 0) T_CHECK(ts, polls == want_polls, "%s: %ld polls, want %ld", what, polls, want_polls);
    T_CHECK(ts, polls == s.next, "%s: reported %ld polls, made %d", what, polls, s.next);
    if (want == ncclInProgress) T_CHECK(ts, dt >= timeout && dt < timeout + 1.0, "%s: gave up after %.3f s", what, dt);
}

static int host_half(void) {
    TestState ts = {0, 0};
    const ncclResult_t settles[] = {ncclInProgress, ncclInProgress, ncclInProgress, ncclInProgress, ncclSuccess};
    check_script(&ts, "in progress x4, then success", settles, 5, 10.0, ncclSuccess, 5);
    const ncclResult_t at_once[] = {ncclSuccess};
    check_script(&ts, "already settled", at_once, 1, 10.0, ncclSuccess, 1);
    const ncclResult_t fails[] = {ncclInProgress, ncclInProgress, ncclRemoteError, ncclSuccess};
    check_script(&ts, "error while in progress", fails, 4, 10.0, ncclRemoteError, 3);
    const ncclResult_t query_fails[] = {ncclInvalidArgument};
    check_script(&ts, "the query itself fails", query_fails, 1, 10.0, ncclInvalidArgument, 1);
    const ncclResult_t hangs[] = {ncclInProgress};
    check_script(&ts, "never settles", hangs, 1, 0.05, ncclInProgress, 0);
    return t_finish(&ts, "test_nccl_poll --host");
}

static int device_half(int argc, char **argv) {
    char why[512];
    if (eff_cuda_device_count_why(why, sizeof why) == 0) {
        printf("%s: skipped\n", why);
        return 77;
    }
    MPI_Init(&argc, &argv);
    TestState ts = {0, 0};
    const int device = eff_comm_select_device(MPI_COMM_WORLD, 0);
    EffBackend *be = eff_backend_cuda_create(device, EFF_PREC_FP32, 1);
    const size_t n = 32 * 1024 + 5; /* 1024-float buckets: 33 all-reduces per step */
    float *h = eff_malloc(n * sizeof(float), "host buffer");
    for (size_t i = 0; i < n; i++) h[i] = (float)(i % 97);
    float *d = be->alloc(be, n * sizeof(float), "gradient buffer");
    be->upload(be, d, h, n * sizeof(float));
    EffComm *c = eff_comm_create(MPI_COMM_WORLD, be, d, n, 1.0, 60.0, 0);
    T_CHECK(&ts, eff_comm_buckets(c) == 33, "%d buckets, want 33", eff_comm_buckets(c));
    for (int step = 1; step <= 3; step++) {
        eff_comm_begin(c, step);
        eff_comm_grad_ready(c, n / 2);
        if (step == 2) eff_comm_restart(c); /* as after a dropped capture: all buckets again */
        eff_comm_finish(c);
        eff_comm_wait(c);
    }
    be->download(be, h, d, n * sizeof(float));
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(h[i] - (float)(i % 97)));
    T_CHECK(&ts, worst == 0, "one rank: the average must be the identity, worst error %g", worst);
    eff_comm_destroy(c);
    be->release(be, d);
    eff_backend_cuda_destroy(be);
    eff_free(h);
    MPI_Finalize();
    return t_finish(&ts, "test_nccl_poll --device");
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--host")) return host_half();
    if (argc == 2 && !strcmp(argv[1], "--device")) return device_half(argc, argv);
    fprintf(stderr, "usage: test_nccl_poll --host | --device\n");
    return 2;
}
