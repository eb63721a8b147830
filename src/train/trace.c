/* trace.c: the per-rank Chrome trace of output.trace (see trace.h). */
#define _POSIX_C_SOURCE 200809L
#include "train/trace.h"

#include "common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct EffTrace {
    FILE *f;
    char path[1200];
    int pid;            /* the rank */
    char *buf;          /* events not yet written */
    size_t len, cap;
};

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

/* Append one event (",\n" + the object) to the buffer. */
static void put(EffTrace *t, const char *fmt, ...) EFF_PRINTF(2, 3);
static void put(EffTrace *t, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        const int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        EFF_CHECK(n >= 0, "trace: formatting an event failed");
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        char *bigger = eff_malloc(2 * t->cap + (size_t)n, "trace buffer");
        memcpy(bigger, t->buf, t->len);
        eff_free(t->buf);
        t->buf = bigger;
        t->cap = 2 * t->cap + (size_t)n;
    }
}

/* Copy s into out with JSON's quote and backslash escaped, control characters dropped. */
static void escape(const char *s, char *out, size_t cap) {
    size_t o = 0;
    for (; *s && o + 3 < cap; s++) {
        if (*s == '"' || *s == '\\') out[o++] = '\\';
        if ((unsigned char)*s >= 0x20) out[o++] = *s;
    }
    out[o] = '\0';
}

EffTrace *eff_trace_open(const char *dir, int rank, const char *host) {
    EffTrace *t = eff_calloc(1, sizeof *t, "trace");
    t->pid = rank;
    t->cap = 1 << 16;
    t->buf = eff_malloc(t->cap, "trace buffer");
    snprintf(t->path, sizeof t->path, "%s/trace-rank%d.json", dir, rank);
    t->f = fopen(t->path, "w");
    EFF_CHECK(t->f, "output.trace: cannot create %s: %s\nHINT: check output.dir is writable", t->path, strerror(errno));
    char h[256];
    escape(host, h, sizeof h);
    put(t, "[\n{\"ph\": \"M\", \"name\": \"process_name\", \"pid\": %d, \"tid\": 1, \"args\": {\"name\": \"rank %d (%s)\"}}",
        rank, rank, h);
    put(t, ",\n{\"ph\": \"M\", \"name\": \"process_sort_index\", \"pid\": %d, \"tid\": 1, \"args\": {\"sort_index\": %d}}",
        rank, rank);
    put(t, ",\n{\"ph\": \"M\", \"name\": \"thread_name\", \"pid\": %d, \"tid\": 1, \"args\": {\"name\": \"training\"}}", rank);
    eff_trace_flush(t);
    return t;
}

void eff_trace_begin(EffTrace *t, const char *name) {
    if (t) put(t, ",\n{\"ph\": \"B\", \"name\": \"%s\", \"pid\": %d, \"tid\": 1, \"ts\": %.1f}", name, t->pid, now_us());
}

void eff_trace_end(EffTrace *t, const char *name) {
    if (t) put(t, ",\n{\"ph\": \"E\", \"name\": \"%s\", \"pid\": %d, \"tid\": 1, \"ts\": %.1f}", name, t->pid, now_us());
}

void eff_trace_async(EffTrace *t, const char *cat, const char *name, int id, char phase) {
    if (t)
        put(t, ",\n{\"ph\": \"%c\", \"cat\": \"%s\", \"name\": \"%s\", \"id\": %d, \"pid\": %d, \"tid\": 1, \"ts\": %.1f}",
            phase, cat, name, id, t->pid, now_us());
}

/* Write the buffered events and a closing bracket, then step back over the
 * bracket so the next flush overwrites it: the file is valid JSON after
 * every flush. */
void eff_trace_flush(EffTrace *t) {
    if (!t || !t->len) return;
    EFF_CHECK(fwrite(t->buf, 1, t->len, t->f) == t->len && fputs("\n]\n", t->f) >= 0 && fflush(t->f) == 0 &&
              fseek(t->f, -3, SEEK_END) == 0, "output.trace: writing %s failed: %s", t->path, strerror(errno));
    t->len = 0;
}

void eff_trace_close(EffTrace *t) {
    if (!t) return;
    eff_trace_flush(t);
    EFF_CHECK(fclose(t->f) == 0, "output.trace: closing %s failed: %s", t->path, strerror(errno));
    eff_free(t->buf);
    eff_free(t);
}
