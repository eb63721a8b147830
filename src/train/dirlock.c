/* dirlock.c: see dirlock.h. */
#define _POSIX_C_SOURCE 200809L
#include "train/dirlock.h"

#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct flock whole_file(short type) {
    struct flock l;
    memset(&l, 0, sizeof l);
    l.l_type = type;
    l.l_whence = SEEK_SET; /* l_start = l_len = 0: the whole file */
    return l;
}

/* Who holds the lock: the file's text (written by the holder) and F_GETLK's PID. */
static void describe_holder(int fd, const char *path, char *holder, size_t cap) {
    char text[EFF_DIRLOCK_NAME_MAX] = "";
    const ssize_t n = pread(fd, text, sizeof text - 1, 0);
    if (n > 0) text[n] = '\0';
    text[strcspn(text, "\n")] = '\0';
    struct flock l = whole_file(F_WRLCK);
    const int pid = fcntl(fd, F_GETLK, &l) == 0 && l.l_type != F_UNLCK ? (int)l.l_pid : 0;
    snprintf(holder, cap, "%s is held by %s (lock owner PID %d, as the lock manager reports it)", path,
             text[0] ? text : "a process that has not yet written its name", pid);
}

/* Record this process as the holder: "host H, PID P, Slurm job J, since T". */
static void write_holder(int fd) {
    char host[256] = "?", when[32] = "?", line[EFF_DIRLOCK_NAME_MAX];
    if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "?");
    const time_t now = time(NULL);
    struct tm tmv;
    if (gmtime_r(&now, &tmv)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    const char *job = getenv("SLURM_JOB_ID"), *restart = getenv("SLURM_RESTART_COUNT");
    char slurm[96] = "no Slurm job";
    if (job) snprintf(slurm, sizeof slurm, "Slurm job %s (restart %s)", job, restart ? restart : "0");
    const int k = snprintf(line, sizeof line, "host %s, PID %ld, %s, since %s\n", host, (long)getpid(), slurm, when);
    /* the name is for messages only: a failure to write it does not matter to the lock */
    if (ftruncate(fd, 0) == 0 && k > 0) (void)!pwrite(fd, line, (size_t)k, 0);
}

int eff_dirlock_acquire(const char *dir, double wait_s, char *holder, size_t cap) {
    char path[1200];
    snprintf(path, sizeof path, "%s/effnet.lock", dir);
    const int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(holder, cap, "cannot create the lock file %s: %s", path, strerror(errno));
        return -3;
    }
    const double t0 = eff_time();
    for (;;) {
        struct flock l = whole_file(F_WRLCK);
        if (fcntl(fd, F_SETLK, &l) == 0) {
            write_holder(fd);
            return fd;
        }
        const int e = errno;
        if (e != EACCES && e != EAGAIN) {
            snprintf(holder, cap, "locking %s failed: %s (the file system may not support POSIX locks)", path,
                     strerror(e));
            close(fd);
            return -2;
        }
        if (eff_time() - t0 >= wait_s) break;
        nanosleep(&(struct timespec){0, 200000000L}, NULL);
    }
    describe_holder(fd, path, holder, cap);
    close(fd);
    return -1;
}

void eff_dirlock_release(int fd) {
    if (fd >= 0) close(fd); /* closing any descriptor of the file drops the process's record locks */
}
