/* cmd_bench_comm.c: `effnet bench-comm` -- an all-reduce benchmark in the
 * manner of nccl-tests' all_reduce_perf, for checking a fabric before a
 * scaling study (docs/scaling.md).
 *
 * Sweeps float sums from --min-bytes to --max-bytes (x --step-factor) and
 * reports per size and call: the time of one call (the mean over the timed
 * iterations, then the maximum over ranks), algbw = bytes / time and busbw =
 * algbw * 2(n-1)/n (the bytes each rank's link carries in a ring all-reduce,
 * per second: comparable across rank counts), and #wrong.
 *
 * Calls, CPU backend (MPI):
 *   MPI_Allreduce       out of place, blocking: the plain MPI figure;
 *   eff_mpi_allreduce   in place, MPI_Iallreduce waited for by polling under
 *                       the stall watchdog (comm_mpi.h): what `effnet train`
 *                       does with comm.overlap = 0.
 * CUDA backend (NCCL, one GPU per rank): ncclAllReduce out of place and in
 * place, timed on the host around the stream (as nccl-tests does).
 *
 * Correctness: after the timed calls, one more call per size and call is
 * checked element by element. Rank r contributes ((i + k + 3r) mod 13) at
 * element i (k: the size's index), small integers whose sum is exact in
 * float, and each element is compared with the known sum; the output buffer
 * is poisoned (NaN) first, so a call that does nothing is caught. #wrong is
 * the number of wrong elements summed over ranks; any makes the exit code 1.
 * The hidden option --inject-error adds 1000 to one input element of the last
 * rank in every checked call (each row must then report n wrong elements),
 * so that the tests can show the check is live.
 *
 * Exit codes: 0 all results right; 1 wrong results or an error; 4 a
 * collective did not finish within --timeout-s; 77 --backend cuda without a
 * usable GPU (skipped). */
#define _POSIX_C_SOURCE 200809L
#include "backend/backend.h"
#include "cmd/cli.h"
#include "comm/comm_mpi.h"
#include "common.h"
#include "jsonout.h"

#include <math.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef EFFNET_HAVE_CUDA
#include "comm/comm_nccl.h"
#include <cuda_runtime_api.h>
#include <nccl.h>
#endif

enum { PATTERN = 13, MAX_CALLS = 2, EXIT_SKIP = 77 };

extern char **environ;

/* The settings that change which algorithm runs (Open MPI MCA, NCCL, UCX),
 * for the record; not the launcher's own wiring (URIs, session directories,
 * job IDs, the transport key). */
static int is_comm_setting(const char *e) {
    static const char *launcher[] = {"OMPI_MCA_orte_", "OMPI_MCA_ess", "OMPI_MCA_pmix", "OMPI_MCA_initial_wdir",
                                     "OMPI_MCA_shmem_RUNTIME_QUERY_hint"};
    for (size_t i = 0; i < sizeof launcher / sizeof launcher[0]; i++)
        if (!strncmp(e, launcher[i], strlen(launcher[i]))) return 0;
    return !strncmp(e, "OMPI_MCA_", 9) || !strncmp(e, "NCCL_", 5) || !strncmp(e, "UCX_", 4);
}

static void abort_hook(int code) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin) MPI_Abort(MPI_COMM_WORLD, code);
}

/* A blocking call (MPI_Allreduce, an NCCL stream) has no watchdog of its own:
 * SIGALRM ends the process after the deadline with a message prepared before
 * the alarm was armed (write and _exit only: async-signal-safe). */
static char alarm_msg[512];
static void on_alarm(int sig) {
    (void)sig;
    ssize_t w = write(STDERR_FILENO, alarm_msg, strlen(alarm_msg));
    (void)w;
    _exit(EFF_EXIT_STALL);
}
static void guard(unsigned seconds, const char *what, size_t bytes, int rank) {
    if (!seconds) { alarm(0); return; }
    snprintf(alarm_msg, sizeof alarm_msg, "effnet: error: bench-comm: %s of %zu bytes on rank %d did not finish within "
             "%u s (--timeout-s x calls): a rank or its link is stuck\n", what, bytes, rank, seconds);
    alarm(seconds);
}

typedef struct Bench Bench;
struct Bench {
    int rank, n, ncalls, inject;
    const char *call_name[MAX_CALLS];
    int in_place[MAX_CALLS];
    int blocking[MAX_CALLS]; /* no watchdog of its own: guard with SIGALRM */
    float expect[PATTERN];   /* the sum over ranks of rank r's value for residue j */
    /* backend: one call of `count` floats, enqueued or done */
    void (*run)(Bench *b, int call, size_t count);
    void (*sync)(Bench *b);                                 /* wait until the enqueued calls are done */
    void (*fill)(Bench *b, int call, size_t count, int k);  /* inputs of the checked call, output poisoned */
    long long (*check)(Bench *b, int call, size_t count, int k);
    /* CPU buffers (MPI), or host staging buffers (NCCL) */
    float *send, *recv;
    EffMpi *mpi;
#ifdef EFFNET_HAVE_CUDA
    float *dsend, *drecv;
    ncclComm_t nccl;
    cudaStream_t stream;
#endif
};

/* Rank r's input: x[i] = (i + k + 3r) mod 13; one element off by 1000 with --inject-error on the last rank. */
static void fill_input(const Bench *b, float *x, size_t count, int k) {
    unsigned v = (unsigned)((k + 3 * b->rank) % PATTERN);
    for (size_t i = 0; i < count; i++) {
        x[i] = (float)v;
        if (++v == PATTERN) v = 0;
    }
    if (b->inject && b->rank == b->n - 1) x[count / 2] += 1000.0f;
}

static void poison(float *x, size_t count) {
    for (size_t i = 0; i < count; i++) x[i] = NAN;
}

static long long count_wrong(const Bench *b, const float *y, size_t count, int k) {
    long long wrong = 0;
    unsigned j = (unsigned)(k % PATTERN);
    for (size_t i = 0; i < count; i++) {
        wrong += y[i] != b->expect[j];
        if (++j == PATTERN) j = 0;
    }
    return wrong;
}

/* ---- MPI ------------------------------------------------------------------ */

static void mpi_run(Bench *b, int call, size_t count) {
    if (!b->in_place[call])
        MPI_CHECK(MPI_Allreduce(b->send, b->recv, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    else
        eff_mpi_allreduce(b->mpi, b->recv, count, MPI_FLOAT, MPI_SUM, "bench-comm all-reduce");
}
static void mpi_sync(Bench *b) { (void)b; }
static void mpi_fill(Bench *b, int call, size_t count, int k) {
    if (b->in_place[call]) {
        fill_input(b, b->recv, count, k);
    } else {
        fill_input(b, b->send, count, k);
        poison(b->recv, count);
    }
}
static long long mpi_check(Bench *b, int call, size_t count, int k) {
    (void)call;
    return count_wrong(b, b->recv, count, k);
}

/* ---- NCCL ----------------------------------------------------------------- */

#ifdef EFFNET_HAVE_CUDA
#define CUDA_OK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) \
    EFF_FATAL("%s failed: %s", #call, cudaGetErrorString(e_)); } while (0)
#define NCCL_OK(call) do { ncclResult_t r_ = (call); if (r_ != ncclSuccess) \
    EFF_FATAL("%s failed: %s", #call, ncclGetErrorString(r_)); } while (0)

static void nccl_run(Bench *b, int call, size_t count) {
    const float *src = b->in_place[call] ? b->drecv : b->dsend;
    NCCL_OK(ncclAllReduce(src, b->drecv, count, ncclFloat, ncclSum, b->nccl, b->stream));
}
static void nccl_sync(Bench *b) { CUDA_OK(cudaStreamSynchronize(b->stream)); }
static void nccl_fill(Bench *b, int call, size_t count, int k) {
    fill_input(b, b->send, count, k);
    if (b->in_place[call]) {
        CUDA_OK(cudaMemcpy(b->drecv, b->send, count * sizeof(float), cudaMemcpyHostToDevice));
    } else {
        CUDA_OK(cudaMemcpy(b->dsend, b->send, count * sizeof(float), cudaMemcpyHostToDevice));
        CUDA_OK(cudaMemset(b->drecv, 0xff, count * sizeof(float))); /* all-ones bits: NaN */
    }
}
static long long nccl_check(Bench *b, int call, size_t count, int k) {
    (void)call;
    CUDA_OK(cudaMemcpy(b->recv, b->drecv, count * sizeof(float), cudaMemcpyDeviceToHost));
    return count_wrong(b, b->recv, count, k);
}
#endif

/* "8", "64K", "256M", "1G" (binary multiples, as nccl-tests' -b/-e) -> bytes; 0 if malformed. */
static long parse_bytes(const char *s) {
    long v;
    size_t n = strlen(s), mult = 1;
    char num[32];
    if (n == 0 || n >= sizeof num) return 0;
    memcpy(num, s, n + 1);
    switch (num[n - 1]) {
    case 'K': case 'k': mult = 1UL << 10; num[--n] = 0; break;
    case 'M': case 'm': mult = 1UL << 20; num[--n] = 0; break;
    case 'G': case 'g': mult = 1UL << 30; num[--n] = 0; break;
    default: break;
    }
    if (!eff_parse_int(num, 1, 1L << 40, &v)) return 0;
    return (long)((size_t)v * mult);
}

/* ---- the sweep ------------------------------------------------------------ */

typedef struct {
    size_t bytes, count;
    int call, iters;
    double time_us, algbw, busbw;
    long long wrong;
} Row;

static void print_group_header(const Bench *b, int with_iters) {
    printf("#%22s%8s%7s", "", "", "");
    for (int c = 0; c < b->ncalls; c++) printf("  %-34.34s", b->call_name[c]);
    printf("\n#%11s%12s%7s%7s", "size", "count", "type", "redop");
    for (int c = 0; c < b->ncalls; c++) printf("  %10s%8s%8s%8s%s", "time", "algbw", "busbw", "#wrong", with_iters ? "  iters" : "");
    printf("\n#%11s%12s%7s%7s", "(B)", "(elements)", "", "");
    for (int c = 0; c < b->ncalls; c++) printf("  %10s%8s%8s%8s%s", "(us)", "(GB/s)", "(GB/s)", "", with_iters ? "       " : "");
    printf("\n");
}

/* The command line of bench-comm. */
typedef struct {
    long min_bytes, max_bytes, factor, iters, warmup, max_time_ms, timeout_s;
    const char *backend, *calls;
    int json, inject, cuda;
} Opts;

/* Parse and check the options; returns 1 when --help was printed. */
static int parse_opts(Opts *o, int argc, char **argv) {
    const char *min_s = "8", *max_s = "256M";
    *o = (Opts){.factor = 2, .iters = 20, .warmup = 5, .max_time_ms = 0, .timeout_s = 300, .backend = "cpu",
                .calls = "both"};
    /* --inject-error: a hidden test option, taken out before the strict parser sees argv */
    int ac = 0;
    char **av = eff_malloc(sizeof(char *) * ((size_t)argc + 1), "arguments");
    for (int a = 0; a < argc; a++) {
        if (a >= 2 && !strcmp(argv[a], "--inject-error")) o->inject = 1;
        else av[ac++] = argv[a];
    }
    av[ac] = NULL;
    CliOpt opts[] = {
        {"--min-bytes", CLI_STR, &min_s, 0, 0, "smallest message in bytes, K/M/G suffixes allowed (a multiple of 4: floats)"},
        {"--max-bytes", CLI_STR, &max_s, 0, 0, "largest message in bytes"},
        {"--step-factor", CLI_INT, &o->factor, 2, 1024, "each size is the previous one times this"},
        {"--iters", CLI_INT, &o->iters, 1, 1000000, "timed calls per size"},
        {"--warmup", CLI_INT, &o->warmup, 0, 1000000, "untimed calls per size first"},
        {"--max-time-ms", CLI_INT, &o->max_time_ms, 0, 100000000, "0: off; else fewer timed calls where --iters would take longer (from the warm-up's time; needs --warmup >= 1)"},
        {"--calls", CLI_STR, &o->calls, 0, 0, "MPI: allreduce (MPI_Allreduce) | iallreduce (the trainer's MPI_Iallreduce under the watchdog) | both"},
        {"--backend", CLI_STR, &o->backend, 0, 0, "cpu (MPI) | cuda (NCCL, one GPU per rank)"},
        {"--timeout-s", CLI_INT, &o->timeout_s, 1, 86400, "a collective taking longer ends the run (exit 4), naming the rank"},
        {"--json", CLI_BOOL, &o->json, 0, 0, "print one JSON document instead of the table"},
    };
    const int help = cli_parse("bench-comm", "[--min-bytes B] [--max-bytes B] [--step-factor F] [--iters N] "
                               "[--warmup N] [--calls allreduce|iallreduce|both] [--backend cpu|cuda] [--json]   "
                               "(one process per rank: mpirun/srun)", opts, (int)(sizeof opts / sizeof opts[0]), ac, av, 2);
    eff_free(av);
    if (help) return 1;
    o->min_bytes = parse_bytes(min_s);
    o->max_bytes = parse_bytes(max_s);
    EFF_CHECK(o->min_bytes >= 4 && o->max_bytes >= 4, "--min-bytes '%s' / --max-bytes '%s': want a size of at least 4 "
              "bytes, e.g. 8, 64K, 256M", min_s, max_s);
    EFF_CHECK(o->min_bytes % 4 == 0, "--min-bytes %ld is not a multiple of 4 (the benchmark sums floats)", o->min_bytes);
    EFF_CHECK(o->min_bytes <= o->max_bytes, "--min-bytes %ld > --max-bytes %ld", o->min_bytes, o->max_bytes);
    EFF_CHECK(o->max_bytes / 4 <= 2147483647L, "--max-bytes %ld: more than 2^31-1 floats (MPI's int count)", o->max_bytes);
    EFF_CHECK(!o->max_time_ms || o->warmup >= 1, "--max-time-ms needs --warmup >= 1 (the warm-up's time sets the calls)");
    o->cuda = !strcmp(o->backend, "cuda");
    EFF_CHECK(o->cuda || !strcmp(o->backend, "cpu"), "--backend '%s' unknown\nHINT: use cpu (MPI) or cuda (NCCL)",
              o->backend);
    EFF_CHECK(!strcmp(o->calls, "both") || !strcmp(o->calls, "allreduce") || !strcmp(o->calls, "iallreduce"),
              "--calls '%s' unknown\nHINT: use allreduce, iallreduce or both", o->calls);
    return 0;
}

/* MPI: the buffers and the calls to time. */
static void setup_mpi(Bench *b, const Opts *o, size_t max_count) {
    const int want_a = strcmp(o->calls, "iallreduce") != 0, want_i = strcmp(o->calls, "allreduce") != 0;
    b->send = eff_alloc_aligned(max_count * sizeof(float), "send buffer");
    b->recv = eff_alloc_aligned(max_count * sizeof(float), "receive buffer");
    fill_input(b, b->send, max_count, 0);
    fill_input(b, b->recv, max_count, 0);
    if (want_a) {
        b->call_name[b->ncalls] = "MPI_Allreduce out-of-place";
        b->in_place[b->ncalls] = 0, b->blocking[b->ncalls] = 1;
        b->ncalls++;
    }
    if (want_i) {
        b->call_name[b->ncalls] = "MPI_Iallreduce in-place + watchdog";
        b->in_place[b->ncalls] = 1, b->blocking[b->ncalls] = 0;
        b->ncalls++;
    }
    b->run = mpi_run, b->sync = mpi_sync, b->fill = mpi_fill, b->check = mpi_check;
}

#ifdef EFFNET_HAVE_CUDA
/* NCCL: the device, the communicator, the buffers; 0 when some rank has no GPU (skip). */
static int setup_nccl(Bench *b, const Opts *o, size_t max_count, char *nccl_version, size_t cap) {
    int have = eff_cuda_device_count() > 0, all = 0;
    MPI_CHECK(MPI_Allreduce(&have, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    if (!all) {
        if (!have) {
            char host[64] = "?";
            gethostname(host, sizeof host - 1);
            fprintf(stderr, "bench-comm: no usable CUDA device on rank %d (host %s): the NCCL benchmark is skipped "
                    "(run it on GPU nodes, one rank per GPU; --backend cpu measures MPI)\n", b->rank, host);
        }
        return 0;
    }
    const int dev = eff_comm_select_device(MPI_COMM_WORLD, !o->json);
    CUDA_OK(cudaSetDevice(dev));
    eff_comm_nccl_version(nccl_version, cap);
    ncclUniqueId id;
    if (b->rank == 0) NCCL_OK(ncclGetUniqueId(&id));
    MPI_CHECK(MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD));
    NCCL_OK(ncclCommInitRank(&b->nccl, b->n, id, b->rank));
    CUDA_OK(cudaStreamCreateWithFlags(&b->stream, cudaStreamNonBlocking));
    CUDA_OK(cudaMalloc((void **)&b->dsend, max_count * sizeof(float)));
    CUDA_OK(cudaMalloc((void **)&b->drecv, max_count * sizeof(float)));
    b->send = eff_alloc_aligned(max_count * sizeof(float), "host staging buffer");
    b->recv = eff_alloc_aligned(max_count * sizeof(float), "host check buffer");
    b->ncalls = 2;
    b->call_name[0] = "ncclAllReduce out-of-place";
    b->call_name[1] = "ncclAllReduce in-place";
    b->in_place[0] = 0, b->in_place[1] = 1;
    b->blocking[0] = b->blocking[1] = 1;
    b->run = nccl_run, b->sync = nccl_sync, b->fill = nccl_fill, b->check = nccl_check;
    /* the timed inputs: the check's pattern (in place the sums grow by n per call, harmlessly) */
    nccl_fill(b, 0, max_count, 0);
    CUDA_OK(cudaMemcpy(b->drecv, b->dsend, max_count * sizeof(float), cudaMemcpyDeviceToDevice));
    return 1;
}
#endif

/* The table's preamble: ranks and hosts, the library, the settings, the environment. */
static void print_preamble(const Bench *b, const Opts *o, const char *library, double bus_factor) {
    printf("# effnet bench-comm: all-reduce (float, sum), %d rank(s) on hosts", b->n);
    const char *prev = "";
    for (int r = 0; r < b->n; r++) /* runs of equal names once: "n1 n2" or "localhost" */
        if (strcmp(eff_mpi_host(b->mpi, r), prev)) { printf(" %s", eff_mpi_host(b->mpi, r)); prev = eff_mpi_host(b->mpi, r); }
    printf("\n# backend %s: %s %s\n", o->cuda ? "cuda" : "cpu", o->cuda ? "NCCL" : "MPI,", library);
    printf("# sizes %ld B .. %ld B (x%ld), warm-up %ld, iters %ld%s; time: mean per call over the timed calls, max "
           "over ranks; algbw = size/time; busbw = algbw x 2(n-1)/n = algbw x %.3f\n", o->min_bytes, o->max_bytes,
           o->factor, o->warmup, o->iters, o->max_time_ms ? " (fewer past --max-time-ms per size)" : "", bus_factor);
    for (char **e = environ; *e; e++)
        if (is_comm_setting(*e)) printf("# environment: %s\n", *e);
    printf("# #wrong: elements of one more, checked call that differ from the exact sum, summed over ranks%s\n#\n",
           o->inject ? " (--inject-error: one input element corrupted per checked call)" : "");
    print_group_header(b, o->max_time_ms > 0);
    fflush(stdout);
}

/* One message size, one call: warm-up, the timed calls, the checked call. */
static Row measure(Bench *b, const Opts *o, int c, size_t bytes, int k, double bus_factor) {
    const size_t count = bytes / 4;
    double dl = (double)o->timeout_s * (double)(o->warmup + o->iters + 1);
    const unsigned deadline = b->blocking[c] ? (unsigned)(dl < 1e7 ? dl : 1e7) : 0;
    guard(deadline, b->call_name[c], bytes, b->rank);
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    double t0 = MPI_Wtime();
    for (long w = 0; w < o->warmup; w++) b->run(b, c, count);
    b->sync(b);
    double tw = o->warmup ? (MPI_Wtime() - t0) / (double)o->warmup : 0, twmax = 0;
    long it = o->iters;
    if (o->max_time_ms > 0) { /* every rank must run the same number of calls: agree on the slowest */
        MPI_CHECK(MPI_Allreduce(&tw, &twmax, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
        const double fit = 1e-3 * (double)o->max_time_ms / (twmax > 0 ? twmax : 1e-9);
        if (fit < (double)it) it = fit < 1 ? 1 : (long)fit;
    }
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    t0 = MPI_Wtime();
    for (long i = 0; i < it; i++) b->run(b, c, count);
    b->sync(b);
    double t = (MPI_Wtime() - t0) / (double)it, tmax = 0;
    /* the checked call */
    b->fill(b, c, count, k);
    b->run(b, c, count);
    b->sync(b);
    guard(0, "", 0, 0);
    long long wrong = b->check(b, c, count, k), wsum = 0;
    MPI_CHECK(MPI_Allreduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
    MPI_CHECK(MPI_Allreduce(&wrong, &wsum, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD));
    /* later sizes time the pattern again (the check overwrote it with sums in place) */
    if (!o->cuda && b->in_place[c]) fill_input(b, b->recv, count, 0);
    Row row = {.bytes = bytes, .count = count, .call = c, .iters = (int)it, .time_us = 1e6 * tmax,
               .algbw = (double)bytes / tmax / 1e9, .wrong = wsum};
    row.busbw = row.algbw * bus_factor;
    return row;
}

static void print_size_row(const Bench *b, const Opts *o, const Row *rows, size_t bytes) {
    printf(" %11zu %11zu %6s %6s", bytes, bytes / 4, "float", "sum");
    for (int c = 0; c < b->ncalls; c++) {
        printf("  %10.2f %7.3f %7.3f %7lld", rows[c].time_us, rows[c].algbw, rows[c].busbw, rows[c].wrong);
        if (o->max_time_ms > 0) printf("  %5d", rows[c].iters);
    }
    printf("\n");
    fflush(stdout);
}

/* The whole sweep as one JSON document (rank 0). */
static void write_json(const Bench *b, const Opts *o, const char *library, double bus_factor, const Row *rows,
                       int nrows, long long wrong_total, double avg_busbw) {
    cJSON *j = eff_json_object();
    eff_json_str(j, "benchmark", "bench-comm");
    eff_json_str(j, "collective", "all_reduce");
    eff_json_str(j, "backend", o->cuda ? "cuda" : "cpu");
    char lib[MPI_MAX_LIBRARY_VERSION_STRING + 16];
    snprintf(lib, sizeof lib, "%s%s", o->cuda ? "NCCL " : "", library);
    eff_json_str(j, "library", lib);
    eff_json_int(j, "ranks", b->n);
    cJSON *hosts = eff_json_add_array(j, "hosts");
    for (int r = 0; r < b->n; r++) eff_json_str(hosts, NULL, eff_mpi_host(b->mpi, r));
    eff_json_str(j, "type", "float");
    eff_json_str(j, "redop", "sum");
    eff_json_int(j, "min_bytes", o->min_bytes);
    eff_json_int(j, "max_bytes", o->max_bytes);
    eff_json_int(j, "step_factor", o->factor);
    eff_json_int(j, "warmup", o->warmup);
    eff_json_int(j, "iters", o->iters);
    eff_json_int(j, "max_time_ms", o->max_time_ms);
    eff_json_num(j, "busbw_factor", bus_factor, NULL);
    eff_json_str(j, "time", "mean per call over the timed calls, max over ranks");
    eff_json_bool(j, "inject_error", o->inject);
    cJSON *calls = eff_json_add_array(j, "calls");
    for (int c = 0; c < b->ncalls; c++) eff_json_str(calls, NULL, b->call_name[c]);
    cJSON *env = eff_json_add_object(j, "environment");
    for (char **e = environ; *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!is_comm_setting(*e) || !eq) continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(eq - *e), *e);
        eff_json_str(env, name, eq + 1);
    }
    cJSON *results = eff_json_add_array(j, "results");
    for (int i = 0; i < nrows; i++) {
        const Row *r = &rows[i];
        cJSON *x = eff_json_add_object(results, NULL);
        eff_json_uint(x, "bytes", r->bytes);
        eff_json_uint(x, "count", r->count);
        eff_json_str(x, "call", b->call_name[r->call]);
        eff_json_bool(x, "in_place", b->in_place[r->call]);
        eff_json_int(x, "iters", r->iters);
        eff_json_num(x, "time_us", r->time_us, NULL);
        eff_json_num(x, "algbw_gbs", r->algbw, NULL);
        eff_json_num(x, "busbw_gbs", r->busbw, NULL);
        eff_json_int(x, "wrong", r->wrong);
    }
    eff_json_int(j, "wrong_total", wrong_total);
    eff_json_num(j, "avg_busbw_gbs", avg_busbw, NULL);
    eff_json_write(j, stdout, "standard output");
}

int cmd_bench_comm(int argc, char **argv) {
    Opts o;
    if (parse_opts(&o, argc, argv)) return 0;
    int provided = 0;
    MPI_CHECK(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided));
    eff_set_abort_hook(abort_hook);
    MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    signal(SIGALRM, on_alarm);
    Bench b;
    memset(&b, 0, sizeof b);
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &b.rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &b.n));
    b.inject = o.inject;
    b.mpi = eff_mpi_create(MPI_COMM_WORLD, (double)o.timeout_s);
    for (int j = 0; j < PATTERN; j++) {
        long s = 0;
        for (int r = 0; r < b.n; r++) s += (j + 3 * r) % PATTERN;
        b.expect[j] = (float)s;
    }
    const size_t max_count = (size_t)o.max_bytes / 4;
    char lib[MPI_MAX_LIBRARY_VERSION_STRING] = "", nccl_version[32] = "";
    int liblen = 0;
    MPI_Get_library_version(lib, &liblen);
    lib[strcspn(lib, "\n,")] = 0;
    if (o.cuda) {
#ifndef EFFNET_HAVE_CUDA
        EFF_FATAL("--backend cuda: this effnet was built without CUDA/NCCL\nHINT: reconfigure with -DEFFNET_CUDA=ON "
                  "where nvcc, cuDNN and NCCL are installed, or use --backend cpu");
#else
        if (!setup_nccl(&b, &o, max_count, nccl_version, sizeof nccl_version)) {
            eff_mpi_destroy(b.mpi);
            MPI_Finalize();
            return EXIT_SKIP;
        }
#endif
    } else {
        setup_mpi(&b, &o, max_count);
    }
    char library[sizeof lib + 8];
    snprintf(library, sizeof library, "%s", o.cuda ? nccl_version : lib);
    const double bus_factor = b.n > 1 ? 2.0 * (b.n - 1) / b.n : 0.0;
    int nsizes = 0;
    for (size_t s = (size_t)o.min_bytes; s <= (size_t)o.max_bytes; s *= (size_t)o.factor) nsizes++;
    Row *rows = eff_calloc((size_t)nsizes * (size_t)b.ncalls, sizeof(Row), "result rows");
    if (b.rank == 0 && !o.json) print_preamble(&b, &o, library, bus_factor);
    long long wrong_total = 0;
    double busbw_sum = 0;
    int k = 0;
    for (size_t bytes = (size_t)o.min_bytes; bytes <= (size_t)o.max_bytes; bytes *= (size_t)o.factor, k++) {
        Row *row = &rows[(size_t)k * b.ncalls];
        for (int c = 0; c < b.ncalls; c++) {
            row[c] = measure(&b, &o, c, bytes, k, bus_factor);
            wrong_total += row[c].wrong;
            busbw_sum += row[c].busbw;
        }
        if (b.rank == 0 && !o.json) print_size_row(&b, &o, row, bytes);
    }
    const double avg_busbw = busbw_sum / ((double)nsizes * b.ncalls);
    if (b.rank == 0 && !o.json) {
        printf("# Out of bounds values : %lld %s\n", wrong_total, wrong_total ? "FAILED" : "OK");
        printf("# Avg bus bandwidth    : %.4f GB/s (mean over sizes and calls)\n#\n", avg_busbw);
    }
    if (b.rank == 0 && o.json) write_json(&b, &o, library, bus_factor, rows, nsizes * b.ncalls, wrong_total, avg_busbw);
    fflush(stdout);
#ifdef EFFNET_HAVE_CUDA
    if (o.cuda) {
        ncclCommDestroy(b.nccl);
        cudaFree(b.dsend);
        cudaFree(b.drecv);
        cudaStreamDestroy(b.stream);
    }
#endif
    eff_free(rows);
    eff_free(b.send);
    eff_free(b.recv);
    eff_mpi_destroy(b.mpi);
    MPI_CHECK(MPI_Finalize());
    return wrong_total ? 1 : 0;
}
