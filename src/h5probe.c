/* A test read of an unverified HDF5 file in a child process (issue 23).
 *
 * HDF5 1.10 trusts the structure of the files it reads: the fuzz soak found
 * checkpoints without effnet's checksum header (older effnet's, or written
 * by h5py) where 48 changed bytes make H5Dread crash inside the library
 * (SIGSEGV in H5VM_memcpyvv, reached from a chunked dataset read). A
 * checkpoint with the header is verified before HDF5 reads a byte; one
 * without it is first read, every dataset and attribute, by a forked child:
 * if HDF5 crashes or hangs there, the caller gets an error instead of the
 * crash. An HDF5 *error* in the child is not reported here: the caller's own
 * read meets it and says so in its words. */
#define _GNU_SOURCE /* strsignal */
#include "h5probe.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

enum { PROBE_MAX_DEPTH = 16, PROBE_TIMEOUT_S = 300 };
static const size_t probe_max_bytes = (size_t)1 << 33; /* one object larger than 8 GiB: refuse, don't allocate */

/* Read one dataset or attribute whole, in its own native type, or (as_double,
 * numbers only) converted to double as effnet's readers do: the conversion
 * path is where the fuzz soak's crash was. */
static int read_whole(hid_t obj, int is_attr, int as_double) {
    hid_t t = is_attr ? H5Aget_type(obj) : H5Dget_type(obj);
    hid_t sp = is_attr ? H5Aget_space(obj) : H5Dget_space(obj);
    if (t < 0 || sp < 0) return 0;
    const H5T_class_t cl = H5Tget_class(t);
    if (as_double && cl != H5T_FLOAT && cl != H5T_INTEGER) return 1;
    hid_t mem = as_double ? H5Tcopy(H5T_NATIVE_DOUBLE) : H5Tget_native_type(t, H5T_DIR_ASCEND);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    size_t sz = mem >= 0 ? H5Tget_size(mem) : 0;
    if (mem < 0 || n < 0 || sz == 0 || (n > 0 && (size_t)n > probe_max_bytes / sz)) return 0;
    void *buf = malloc((size_t)(n > 0 ? n : 1) * sz);
    if (!buf) return 0;
    herr_t rc = is_attr ? H5Aread(obj, mem, buf) : H5Dread(obj, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    free(buf); /* variable-length strings leak their blobs: the child exits next */
    return rc >= 0;
}

static herr_t read_attr_cb(hid_t loc, const char *name, const H5A_info_t *info, void *ok) {
    (void)info;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0 || !read_whole(a, 1, 0) || !read_whole(a, 1, 1)) *(int *)ok = 0;
    if (a >= 0) H5Aclose(a);
    return 0;
}

/* Every attribute of obj, then (a group) every member, depth first. */
static int walk(hid_t obj, int depth) {
    int ok = 1;
    hsize_t idx = 0;
    if (H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, read_attr_cb, &ok) < 0) ok = 0;
    const H5I_type_t type = H5Iget_type(obj);
    if (type == H5I_DATASET) return read_whole(obj, 0, 0) && read_whole(obj, 0, 1) && ok;
    if (type != H5I_GROUP) return ok;
    H5G_info_t gi;
    if (depth >= PROBE_MAX_DEPTH || H5Gget_info(obj, &gi) < 0) return 0;
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        char name[1024];
        ssize_t len = H5Lget_name_by_idx(obj, ".", H5_INDEX_NAME, H5_ITER_NATIVE, i, name, sizeof name, H5P_DEFAULT);
        if (len < 0 || (size_t)len >= sizeof name) { ok = 0; continue; }
        hid_t child = H5Oopen(obj, name, H5P_DEFAULT);
        if (child < 0) { ok = 0; continue; }
        if (!walk(child, depth + 1)) ok = 0;
        H5Oclose(child);
    }
    return ok;
}

/* The child: default fault actions (no inherited handler that prints a
 * backtrace), no core, no output, a time limit; exit 0 read, 3 HDF5 error. */
static void child(const char *path) {
    const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGALRM};
    sigset_t unblock;
    sigemptyset(&unblock);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        signal(sigs[i], SIG_DFL);
        sigaddset(&unblock, sigs[i]);
    }
    sigprocmask(SIG_UNBLOCK, &unblock, NULL);
    const struct rlimit no_core = {0, 0};
    (void)setrlimit(RLIMIT_CORE, &no_core);
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) { (void)dup2(null, 1); (void)dup2(null, 2); }
    alarm(PROBE_TIMEOUT_S);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t root = f >= 0 ? H5Gopen2(f, "/", H5P_DEFAULT) : -1;
    int ok = root >= 0 && walk(root, 0);
    _exit(ok ? 0 : 3);
}

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

int eff_h5_probe(const char *path, const char *what, char *err, size_t errlen) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return fail(err, errlen, "%s '%s': cannot start the test read (fork: %s)", what, path, strerror(errno));
    if (pid == 0) child(path);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return fail(err, errlen, "%s '%s': waiting for the test read: %s", what, path, strerror(errno));
    if (!WIFSIGNALED(status)) return 0;
    const int sig = WTERMSIG(status);
    if (sig == SIGALRM)
        return fail(err, errlen, "%s '%s' is damaged: it has no checksum to verify, and reading it did not finish in "
                    "%d s (HDF5 looping on a broken structure)\nHINT: use another copy (best.h5, or an earlier "
                    "checkpoint)", what, path, PROBE_TIMEOUT_S);
    return fail(err, errlen, "%s '%s' is damaged: it has no checksum to verify (written by an older effnet or by "
                "another tool), and a test read of it crashed the HDF5 library (%s)\nHINT: use another copy (best.h5, "
                "or an earlier checkpoint)", what, path, strsignal(sig));
}
