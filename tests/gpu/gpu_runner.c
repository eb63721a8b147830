/* gpu_runner: the GPU test programs in one process, so a device check pays
 * CUDA, cuBLAS and cuDNN start-up once instead of once per test.
 *
 *   gpu_runner [--logdir DIR] [--results FILE] [--cap S] [--deadline S] SPEC
 *   gpu_runner --list       the programs it holds, one a line
 *   gpu_runner --probe      versions as key=value lines (driver, runtime, cuDNN,
 *                           NCCL, devices); exit 0 with a device, 77 without, 1
 *                           when the driver cannot run this runtime
 *   gpu_runner --selftest   the supervisor against made-up tests (no GPU needed)
 *
 * SPEC: lines "name<TAB>timeout<TAB>env<TAB>argv", env and argv joined by \x1f
 * (the format of the bundle's GPU_TESTS.tsv); the program is the basename of
 * argv[0] and must be one --list prints. The test sources are compiled a
 * second time with -Dmain=<program>_main (tests/gpu/CMakeLists.txt), so their
 * static helpers stay private and the ctest programs are unchanged.
 *
 * How: this (supervisor) process never touches CUDA. It forks one worker, which
 * runs the tests in order, each with stdout and stderr sent to DIR/NAME.log, and
 * reports "start i" / "done i rc" over a pipe. Per test the supervisor waits at
 * most min(the test's timeout, --cap, what is left of --deadline) seconds; when
 * that runs out it kills the worker (SIGKILL), records "timeout" and forks a
 * fresh worker at the next test. A worker that dies inside a test (a fatal
 * EFF_CHECK exits, a crash) is recorded "fail" and replaced the same way, so a
 * failure costs one more CUDA start-up, not the rest of the run. Tests that call
 * MPI_Init/MPI_Finalize (test_nccl, test_nccl_poll --device) can run once per
 * process: a worker that already ran one hands the next to a fresh worker.
 *
 * Each test's log starts with "gpu_runner: NAME: OMP_NUM_THREADS=N", the
 * value in effect once the spec's environment is applied (device_check.sh
 * drops the spec's own OMP_NUM_THREADS, so the CPU halves use the node's).
 *
 * Results: one line per test "name<TAB>status<TAB>rc<TAB>seconds<TAB>note" to
 * FILE (appended) and stdout; status pass (0), skip (77), fail, timeout, not-run.
 * Exit status 0 when nothing failed or timed out, else 1; 2 on bad usage. */
#define _GNU_SOURCE /* getline, strdup, putenv, strsignal, mkdtemp under -std=c11 */
#include "backend/backend.h"
#include "common.h"

#include <cuda_runtime.h>
#include <cudnn.h>
#include <errno.h>
#include <fcntl.h>
#include <nccl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int test_cuda_ops_main(int argc, char **argv);
int test_cuda_model_main(int argc, char **argv);
int test_cuda_graph_main(int argc, char **argv);
int test_gpu_augment_main(int argc, char **argv);
int test_nccl_main(int argc, char **argv);
int test_nccl_poll_main(int argc, char **argv);

static int st_pass(int c, char **v) { (void)c; (void)v; printf("selftest: pass\n"); return 0; }
static int st_skip(int c, char **v) { (void)c; (void)v; printf("no CUDA device: skipped\n"); return 77; }
static int st_fail(int c, char **v) { (void)c; (void)v; printf("FAIL selftest\n"); return 1; }
static int st_fatal(int c, char **v) { (void)c; (void)v; EFF_FATAL("selftest: a fatal error inside a test"); }
static int st_crash(int c, char **v) { (void)c; (void)v; fflush(stdout); raise(SIGSEGV); return 0; }
static EFF_NORETURN int st_hang(int c, char **v) { (void)c; (void)v; for (;;) pause(); }
static int st_mpi(int c, char **v) { (void)c; (void)v; printf("selftest: an MPI test (worker %d)\n", (int)getpid()); return 0; }

typedef struct { const char *prog; int (*fn)(int, char **); int mpi; /* MPI_Init + MPI_Finalize: once a process */ } Prog;
static const Prog PROGS[] = {
    {"test_cuda_ops", test_cuda_ops_main, 0},       {"test_cuda_model", test_cuda_model_main, 0},
    {"test_cuda_graph", test_cuda_graph_main, 0},   {"test_gpu_augment", test_gpu_augment_main, 0},
    {"test_nccl", test_nccl_main, 1},               {"test_nccl_poll", test_nccl_poll_main, 1},
    {"_selftest_pass", st_pass, 0},   {"_selftest_skip", st_skip, 0},   {"_selftest_fail", st_fail, 0},
    {"_selftest_fatal", st_fatal, 0}, {"_selftest_crash", st_crash, 0}, {"_selftest_hang", st_hang, 0},
    {"_selftest_mpi", st_mpi, 1},
};
enum { NPROGS = sizeof PROGS / sizeof PROGS[0], MAXT = 64, MAXARG = 32 };

typedef struct {
    char name[128];
    int timeout;          /* the test's own (ctest TIMEOUT), 0: none */
    const Prog *prog;
    int argc, nenv;
    char *argv[MAXARG + 1], *env[MAXARG];
    /* results */
    char status[16], note[256];
    int rc;
    double secs;
} Test;

static Test T[MAXT];
static int NT;
static const char *LOGDIR = ".", *RESULTS;
static double CAP = 120, DEADLINE = 0, T0;
static int WORKERS; /* how many workers were forked (for the self-test) */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const Prog *find_prog(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    for (int i = 0; i < NPROGS; i++)
        if (!strcmp(PROGS[i].prog, b)) return &PROGS[i];
    return NULL;
}

static int split(char *s, char **out, int max) { /* in place, on \x1f */
    int n = 0;
    if (!s || !*s || !strcmp(s, "-")) return 0;
    for (char *p = s;; ) {
        if (n == max) return -1;
        out[n++] = p;
        char *q = strchr(p, '\x1f');
        if (!q) break;
        *q = 0;
        p = q + 1;
    }
    return n;
}

static int read_spec(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) { fprintf(stderr, "gpu_runner: cannot open %s: %s\n", path, strerror(errno)); return -1; }
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#') continue;
        char *fld[4] = {0}, *p = strdup(line);
        for (int k = 0; k < 4 && p; k++) { fld[k] = p; p = strchr(p, '\t'); if (p) *p++ = 0; }
        if (!fld[3]) { fprintf(stderr, "gpu_runner: %s: not 4 tab-separated fields: %s\n", path, line); fclose(f); return -1; }
        if (NT == MAXT) { fprintf(stderr, "gpu_runner: more than %d tests\n", MAXT); fclose(f); return -1; }
        Test *t = &T[NT];
        snprintf(t->name, sizeof t->name, "%s", fld[0]);
        t->timeout = atoi(fld[1]);
        t->nenv = split(fld[2], t->env, MAXARG);
        t->argc = split(fld[3], t->argv, MAXARG);
        if (t->nenv < 0 || t->argc <= 0) { fprintf(stderr, "gpu_runner: %s: bad test line: %s\n", path, line); fclose(f); return -1; }
        t->prog = find_prog(t->argv[0]);
        if (!t->prog) { fprintf(stderr, "gpu_runner: %s: program %s is not in this runner (--list)\n", t->name, t->argv[0]); fclose(f); return -1; }
        snprintf(t->status, sizeof t->status, "not-run");
        t->rc = -1;
        NT++;
    }
    free(line);
    fclose(f);
    return 0;
}

/* ---- worker: runs tests from `from` on, reports over fd ------------------- */
static void say(int fd, const char *fmt, int a, int b) {
    char buf[64];
    int n = snprintf(buf, sizeof buf, fmt, a, b);
    if (write(fd, buf, (size_t)n) != n) _exit(125);
}

static EFF_NORETURN void worker(int from, int fd) {
    int ran_mpi = 0, out0 = dup(1), err0 = dup(2);
    for (int i = from; i < NT; i++) {
        Test *t = &T[i];
        if (t->prog->mpi && ran_mpi) { say(fd, "again %d %d\n", i, 0); _exit(0); }
        ran_mpi |= t->prog->mpi;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.log", LOGDIR, t->name);
        fflush(stdout); fflush(stderr);
        int lf = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (lf >= 0) { dup2(lf, 1); dup2(lf, 2); close(lf); }
        for (int k = 0; k < t->nenv; k++) putenv(t->env[k]);
        const char *omp = getenv("OMP_NUM_THREADS"); /* the CPU halves' threads, as this test sees them */
        printf("gpu_runner: %s: OMP_NUM_THREADS=%s\n", t->name, omp ? omp : "(unset)");
        say(fd, "start %d %d\n", i, 0);
        optind = 1;
        int rc = t->prog->fn(t->argc, t->argv);
        fflush(stdout); fflush(stderr);
        dup2(out0, 1); dup2(err0, 2);
        say(fd, "done %d %d\n", i, rc);
    }
    fflush(NULL);
    _exit(0); /* no exit-time CUDA teardown: the supervisor is waiting */
}

/* ---- supervisor ------------------------------------------------------------------- */
static void record(Test *t, const char *status, int rc, double secs, const char *note) {
    snprintf(t->status, sizeof t->status, "%s", status);
    snprintf(t->note, sizeof t->note, "%s", note ? note : "");
    t->rc = rc;
    t->secs = secs;
    printf("gpu_runner: %s: %s (rc %d, %.1fs)%s%s\n", t->name, status, rc, secs, t->note[0] ? " -- " : "", t->note);
    fflush(stdout);
    if (RESULTS) {
        FILE *f = fopen(RESULTS, "a");
        if (f) {
            fprintf(f, "%s\t%s\t%d\t%.1f\t%s\n", t->name, status, rc, secs, t->note);
            fclose(f);
        }
    }
}

static double limit_of(const Test *t, double started) {
    double l = CAP;
    if (t->timeout > 0 && t->timeout < l) l = t->timeout;
    if (DEADLINE > 0 && T0 + DEADLINE - started < l) l = T0 + DEADLINE - started;
    return l < 1 ? 1 : l;
}

static int supervise(void) {
    int i = 0;
    while (i < NT) {
        if (DEADLINE > 0 && now() - T0 > DEADLINE - 1) {
            for (; i < NT; i++) record(&T[i], "not-run", -1, 0, "the tests' time was used up");
            break;
        }
        int p[2];
        if (pipe(p) != 0) { perror("gpu_runner: pipe"); return 2; }
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) { perror("gpu_runner: fork"); return 2; }
        if (pid == 0) { close(p[0]); worker(i, p[1]); }
        close(p[1]);
        WORKERS++;
        FILE *in = fdopen(p[0], "r");
        setvbuf(in, NULL, _IONBF, 0); /* poll() sees the fd, not stdio's buffer: no line may wait there */
        int cur = -1, again = -1, killed = 0;
        double started = now();
        char buf[128], word[16];
        for (;;) {
            /* waiting for a test: its limit; between tests: 60 s (start-up, a test's own teardown) */
            double left = cur >= 0 ? limit_of(&T[cur], started) - (now() - started) : 60 - (now() - started);
            struct pollfd pf = {.fd = p[0], .events = POLLIN};
            int r = left > 0 ? poll(&pf, 1, (int)(left * 1000) + 1) : 0;
            if (r < 0 && errno == EINTR) continue;
            if (r == 0) { kill(pid, SIGKILL); killed = 1; break; }
            if (!fgets(buf, sizeof buf, in)) break; /* the worker is gone */
            int a = -1, b = 0;
            if (sscanf(buf, "%15s %d %d", word, &a, &b) != 3 || a < 0 || a >= NT) continue;
            if (!strcmp(word, "start")) { cur = a; started = now(); }
            else if (!strcmp(word, "done")) {
                const char *st = b == 0 ? "pass" : b == 77 ? "skip" : "fail";
                record(&T[a], st, b, now() - started, NULL);
                cur = -1; started = now();
            } else if (!strcmp(word, "again")) again = a;
        }
        fclose(in);
        int ws = 0;
        while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {}
        if (cur >= 0) {
            const double s = now() - started;
            char note[200];
            if (killed) {
                snprintf(note, sizeof note, "killed after %.0fs (its cap)", limit_of(&T[cur], started));
                record(&T[cur], "timeout", 124, s, note);
            } else if (WIFSIGNALED(ws)) {
                snprintf(note, sizeof note, "worker killed by signal %d (%s) inside the test", WTERMSIG(ws), strsignal(WTERMSIG(ws)));
                record(&T[cur], "fail", 128 + WTERMSIG(ws), s, note);
            } else {
                snprintf(note, sizeof note, "worker exited with status %d inside the test (a fatal error? see its log)",
                         WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
                record(&T[cur], "fail", WIFEXITED(ws) ? WEXITSTATUS(ws) : -1, s, note);
            }
            i = cur + 1;
        } else if (again >= 0) {
            i = again;
        } else {
            int next = i; /* first test without a result */
            while (next < NT && strcmp(T[next].status, "not-run")) next++;
            if (next < NT && next == i) { /* died before starting anything: do not loop */
                record(&T[next], "fail", -1, 0, killed ? "the worker hung before starting the test" : "the worker died before starting the test");
                next++;
            }
            i = next;
        }
    }
    int bad = 0;
    for (int k = 0; k < NT; k++) bad |= strcmp(T[k].status, "pass") && strcmp(T[k].status, "skip");
    printf("gpu_runner: %d tests, %d worker process(es), %.1fs\n", NT, WORKERS, now() - T0);
    return bad ? 1 : 0;
}

/* ---- --probe: what this build needs vs what the machine has -------------------------- */
static int probe(void) {
    int driver = 0, runtime = 0, count = 0;
    const cudaError_t de = cudaDriverGetVersion(&driver);
    (void)cudaRuntimeGetVersion(&runtime);
    printf("cuda_runtime=%d\n", runtime);
    printf("cuda_runtime_built=%d\n", CUDART_VERSION);
    printf("cuda_driver=%d\n", de == cudaSuccess ? driver : -1);
    printf("cudnn=%zu\ncudnn_built=%d\n", cudnnGetVersion(), CUDNN_VERSION);
    int nv = 0;
    printf("nccl=%d\nnccl_built=%d\n", ncclGetVersion(&nv) == ncclSuccess ? nv : -1, NCCL_VERSION_CODE);
    fflush(stdout);
    const cudaError_t e = cudaGetDeviceCount(&count);
    char why[512];
    const int v = eff_cuda_count_verdict((int)e, count, driver, runtime, why, sizeof why);
    printf("device_count_error=%s\n", e == cudaSuccess ? "none" : cudaGetErrorName(e));
    printf("devices=%d\nverdict=%s\n", v < 0 ? 0 : v, why);
    for (int d = 0; v > 0 && d < v; d++) {
        struct cudaDeviceProp pr;
        if (cudaGetDeviceProperties(&pr, d) == cudaSuccess)
            printf("device%d=%s, sm_%d%d, %.1f GiB\n", d, pr.name, pr.major, pr.minor, pr.totalGlobalMem / 1073741824.0);
    }
    return v < 0 ? 1 : v == 0 ? 77 : 0;
}

/* ---- --selftest: the supervisor against made-up tests ------------------------------- */
static int selftest(void) {
    char dir[] = "/tmp/gpu_runner_selftest.XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    char spec[4200];
    snprintf(spec, sizeof spec, "%s/spec.tsv", dir);
    FILE *f = fopen(spec, "w");
    if (!f) return 1;
    const char *lines[][2] = {{"a_pass", "_selftest_pass"}, {"b_skip", "_selftest_skip"}, {"c_fail", "_selftest_fail"},
                              {"d_fatal", "_selftest_fatal"}, {"e_crash", "_selftest_crash"}, {"f_hang", "_selftest_hang"},
                              {"g_mpi", "_selftest_mpi"},     {"h_mpi", "_selftest_mpi"},     {"i_pass", "_selftest_pass"}};
    const char *want[] = {"pass", "skip", "fail", "fail", "fail", "timeout", "pass", "pass", "pass"};
    for (size_t k = 0; k < sizeof lines / sizeof lines[0]; k++)
        fprintf(f, "%s\t%d\tOMP_NUM_THREADS=1\t@TESTS@/%s\n", lines[k][0], k == 5 ? 2 : 0, lines[k][1]);
    fclose(f);
    LOGDIR = dir;
    if (read_spec(spec) != 0) return 1;
    const double t0 = now();
    const int rc = supervise();
    int bad = rc != 1; /* failures above: exit 1 */
    for (int k = 0; k < NT; k++)
        if (strcmp(T[k].status, want[k])) { printf("FAIL selftest: %s is %s, want %s\n", T[k].name, T[k].status, want[k]); bad = 1; }
    /* workers: the first; after the fatal exit, the crash and the hang; the second MPI test */
    if (WORKERS != 5) { printf("FAIL selftest: %d workers, want 5\n", WORKERS); bad = 1; }
    if (now() - t0 > 10) { printf("FAIL selftest: took %.1fs (the hang's cap is 2 s)\n", now() - t0); bad = 1; }
    char log[4200], text[2048] = "";
    snprintf(log, sizeof log, "%s/d_fatal.log", dir);
    FILE *lf = fopen(log, "r");
    const size_t got = lf ? fread(text, 1, sizeof text - 1, lf) : 0;
    text[got] = 0;
    if (!strstr(text, "a fatal error inside a test")) {
        printf("FAIL selftest: %s does not hold the fatal message (%s)\n", log, text); bad = 1;
    }
    /* the spec's environment is applied, and each log names the thread count in effect */
    if (!strstr(text, "gpu_runner: d_fatal: OMP_NUM_THREADS=1\n")) {
        printf("FAIL selftest: %s does not name OMP_NUM_THREADS=1 (%s)\n", log, text); bad = 1;
    }
    if (lf) fclose(lf);
    printf("%s: gpu_runner supervisor self-test (%d tests, %d workers, %.1fs)\n", bad ? "FAIL" : "PASS", NT, WORKERS, now() - t0);
    if (!bad) { char cmd[4300]; snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir); if (system(cmd) != 0) {} }
    return bad;
}

int main(int argc, char **argv) {
    const char *spec = NULL;
    T0 = now();
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--list")) { for (int i = 0; i < NPROGS; i++) if (PROGS[i].prog[0] != '_') printf("%s\n", PROGS[i].prog); return 0; }
        else if (!strcmp(argv[a], "--probe")) return probe();
        else if (!strcmp(argv[a], "--selftest")) return selftest();
        else if (!strcmp(argv[a], "--logdir") && a + 1 < argc) LOGDIR = argv[++a];
        else if (!strcmp(argv[a], "--results") && a + 1 < argc) RESULTS = argv[++a];
        else if (!strcmp(argv[a], "--cap") && a + 1 < argc) CAP = atof(argv[++a]);
        else if (!strcmp(argv[a], "--deadline") && a + 1 < argc) DEADLINE = atof(argv[++a]);
        else if (argv[a][0] != '-' && !spec) spec = argv[a];
        else {
            fprintf(stderr, "usage: gpu_runner [--logdir DIR] [--results FILE] [--cap S] [--deadline S] SPEC | --list | --probe | --selftest\n");
            return 2;
        }
    }
    if (!spec) { fprintf(stderr, "gpu_runner: no SPEC (see the top of tests/gpu/gpu_runner.c)\n"); return 2; }
    if (read_spec(spec) != 0) return 2;
    return supervise();
}
