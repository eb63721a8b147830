/* common.h: fatal-error reporting, checked allocation and file I/O, timing.
 *
 * Every external call goes through one of these checks. An error message names
 * what failed, the bad value, and a HINT with the fix; the process then exits
 * non-zero. Under MPI the launcher (or the abort hook the training driver
 * installs) ends the other ranks, so nothing hangs. */
#ifndef EFFNET_COMMON_H
#define EFFNET_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#if defined(__GNUC__)
#define EFF_NORETURN __attribute__((noreturn))
#define EFF_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define EFF_NORETURN
#define EFF_PRINTF(a, b)
#endif

/* Print "effnet: error: <msg> (file:line)" and exit(1). */
EFF_NORETURN void eff_fatal_at(const char *file, int line, const char *fmt, ...) EFF_PRINTF(3, 4);
#define EFF_FATAL(...) eff_fatal_at(__FILE__, __LINE__, __VA_ARGS__)
#define EFF_CHECK(cond, ...) do { if (!(cond)) eff_fatal_at(__FILE__, __LINE__, __VA_ARGS__); } while (0)

/* The process-wide hook run before exit on a fatal error (MPI_Abort under MPI).
 * Set once at start-up by main(); it is not per-step mutable state. Only the
 * thread that set it runs it: a fatal error on any other thread (an OpenMP
 * worker, a loader thread) prints its message and ends the process with
 * _exit(1), without MPI calls or exit handlers. */
typedef void (*eff_abort_hook_fn)(int code);
void eff_set_abort_hook(eff_abort_hook_fn fn);

/* Allocation: all sizes in bytes; `what` names the buffer in the error. */
void *eff_malloc(size_t bytes, const char *what);
void *eff_calloc(size_t n, size_t size, const char *what);
/* 64-byte aligned, zeroed. Free with eff_free. */
void *eff_alloc_aligned(size_t bytes, const char *what);
void eff_free(void *p);

FILE *eff_fopen(const char *path, const char *mode);
void eff_fclose(FILE *f, const char *path);
/* Write to path.tmp then rename onto path, so a crash never leaves a half file. */
void eff_rename_atomic(const char *tmp_path, const char *final_path);

/* mkdir -p: create path and its parents (mode 0777 & umask). Returns 0 or -1 (errno set). */
int eff_mkdir_p(const char *path);

double eff_time(void);       /* monotonic seconds */
double eff_peak_rss_mb(void); /* peak resident set size of this process, MiB */

/* A range [lo, lo + n) of a flat buffer (parameters, gradients). */
typedef struct { size_t lo, n; } EffSeg;

/* Parse helpers that reject trailing junk and out-of-range values. */
int eff_parse_int(const char *s, long lo, long hi, long *out);
int eff_parse_double(const char *s, double *out);

#endif
