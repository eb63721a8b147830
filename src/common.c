/* common.c: fatal errors, checked allocation and I/O, timing. */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static eff_abort_hook_fn abort_hook; /* set once by main(); see common.h */
static pthread_t hook_thread;        /* the thread that set it: the only one that may run it */

#if defined(__SANITIZE_ADDRESS__)
/* Sanitized builds only (-DEFFNET_SANITIZE=ON): a fatal error exits with its
 * buffers still allocated, by design (the OS frees them), so LeakSanitizer
 * checks only exits that do not come through eff_fatal_at. LSan calls this
 * hook when it runs its exit-time check. */
static volatile int fatal_exit;
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void) { return fatal_exit; }
#endif

void eff_set_abort_hook(eff_abort_hook_fn fn) {
    hook_thread = pthread_self();
    abort_hook = fn;
}

void eff_fatal_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "effnet: error: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (%s:%d)\n", file, line);
    fflush(stderr);
    if (abort_hook && !pthread_equal(pthread_self(), hook_thread)) {
        /* A helper thread (OpenMP, a loader) may neither call MPI (FUNNELED)
         * nor run exit()'s handlers -- Open MPI's, HDF5's, libgomp's --
         * under the main thread's feet: end the process here. The launcher
         * sees a failed rank and ends the job; the loaders hand their errors
         * to the main thread instead (data/loader.c), so this is a backstop. */
        fputs("effnet: error: (raised on a helper thread: this rank exits without MPI_Abort)\n", stderr);
        _exit(1);
    }
    if (abort_hook) abort_hook(1);
#if defined(__SANITIZE_ADDRESS__)
    fatal_exit = 1;
#endif
    exit(1);
}

void *eff_malloc(size_t bytes, const char *what) {
    void *p = malloc(bytes ? bytes : 1);
    EFF_CHECK(p, "out of memory allocating %zu bytes for %s\nHINT: reduce batch size or resolution, or run on a node with more memory", bytes, what);
    return p;
}

void *eff_calloc(size_t n, size_t size, const char *what) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    EFF_CHECK(p, "out of memory allocating %zu x %zu bytes for %s\nHINT: reduce batch size or resolution", n, size, what);
    return p;
}

void *eff_alloc_aligned(size_t bytes, const char *what) {
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = NULL;
    int rc = posix_memalign(&p, 64, rounded ? rounded : 64);
    EFF_CHECK(rc == 0 && p, "out of memory allocating %zu bytes for %s\nHINT: reduce batch size or resolution", bytes, what);
    memset(p, 0, rounded ? rounded : 64);
    return p;
}

void eff_free(void *p) { free(p); }

FILE *eff_fopen(const char *path, const char *mode) {
    FILE *f = fopen(path, mode);
    EFF_CHECK(f, "cannot open '%s' (mode %s): %s\nHINT: check the path exists and is %s", path, mode,
              strerror(errno), mode[0] == 'r' ? "readable" : "writable");
    return f;
}

void eff_fclose(FILE *f, const char *path) {
    EFF_CHECK(fclose(f) == 0, "closing '%s' failed: %s\nHINT: the disk may be full", path, strerror(errno));
}

void eff_rename_atomic(const char *tmp_path, const char *final_path) {
    EFF_CHECK(rename(tmp_path, final_path) == 0, "renaming '%s' to '%s' failed: %s", tmp_path, final_path, strerror(errno));
}

double eff_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double eff_peak_rss_mb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1.0;
    return (double)ru.ru_maxrss / 1024.0; /* Linux reports KiB */
}

int eff_parse_int(const char *s, long lo, long hi, long *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

int eff_parse_double(const char *s, double *out) {
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0') return 0;
    *out = v;
    return 1;
}

int eff_mkdir_p(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) { errno = ENAMETOOLONG; return -1; }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char save = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        buf[i] = save;
    }
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    if (!S_ISDIR(st.st_mode)) { errno = ENOTDIR; return -1; }
    return 0;
}
