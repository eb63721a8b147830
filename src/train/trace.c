/* trace.c: the per-rank Chrome trace of output.trace (see trace.h). */
#define _POSIX_C_SOURCE 200809L
#include "train/trace.h"

#include "common.h"
#include "jsonout.h"

#include <errno.h>
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

/* Append sep and the event (one line, printed by cJSON) to the buffer; deletes ev. */
static void put(EffTrace *t, const char *sep, cJSON *ev) {
    const size_t seplen = strlen(sep);
    for (;;) { /* cJSON's estimate wants some slack: it only fails when the space is short */
        const size_t room = t->cap - t->len;
        if (room > seplen + 64 && cJSON_PrintPreallocated(ev, t->buf + t->len + seplen, (int)(room - seplen), 0)) {
            memcpy(t->buf + t->len, sep, seplen);
            t->len += seplen + strlen(t->buf + t->len + seplen);
            cJSON_Delete(ev);
            return;
        }
        EFF_CHECK(t->cap < ((size_t)1 << 30), "trace: one event does not fit in 1 GiB");
        char *bigger = eff_malloc(2 * t->cap, "trace buffer");
        memcpy(bigger, t->buf, t->len);
        eff_free(t->buf);
        t->buf = bigger;
        t->cap *= 2;
    }
}

/* {"ph": ph, "name": name, "pid": the rank, "tid": 1}, the fields every event has */
static cJSON *event(const EffTrace *t, const char *ph, const char *name) {
    cJSON *ev = eff_json_object();
    eff_json_str(ev, "ph", ph);
    eff_json_str(ev, "name", name);
    eff_json_int(ev, "pid", t->pid);
    eff_json_int(ev, "tid", 1);
    return ev;
}

EffTrace *eff_trace_open(const char *dir, int rank, const char *host) {
    EffTrace *t = eff_calloc(1, sizeof *t, "trace");
    t->pid = rank;
    t->cap = 1 << 16;
    t->buf = eff_malloc(t->cap, "trace buffer");
    snprintf(t->path, sizeof t->path, "%s/trace-rank%d.json", dir, rank);
    t->f = fopen(t->path, "w");
    EFF_CHECK(t->f, "output.trace: cannot create %s: %s\nHINT: check output.dir is writable", t->path, strerror(errno));
    char label[300];
    snprintf(label, sizeof label, "rank %d (%s)", rank, host);
    cJSON *ev = event(t, "M", "process_name");
    eff_json_str(eff_json_add_object(ev, "args"), "name", label);
    put(t, "[\n", ev);
    ev = event(t, "M", "process_sort_index");
    eff_json_int(eff_json_add_object(ev, "args"), "sort_index", rank);
    put(t, ",\n", ev);
    ev = event(t, "M", "thread_name");
    eff_json_str(eff_json_add_object(ev, "args"), "name", "training");
    put(t, ",\n", ev);
    eff_trace_flush(t);
    return t;
}

static void span(EffTrace *t, const char *ph, const char *name) {
    cJSON *ev = event(t, ph, name);
    eff_json_num(ev, "ts", now_us(), "%.1f");
    put(t, ",\n", ev);
}

void eff_trace_begin(EffTrace *t, const char *name) {
    if (t) span(t, "B", name);
}

void eff_trace_end(EffTrace *t, const char *name) {
    if (t) span(t, "E", name);
}

void eff_trace_async(EffTrace *t, const char *cat, const char *name, int id, char phase) {
    if (!t) return;
    const char ph[2] = {phase, '\0'};
    cJSON *ev = eff_json_object();
    eff_json_str(ev, "ph", ph);
    eff_json_str(ev, "cat", cat);
    eff_json_str(ev, "name", name);
    eff_json_int(ev, "id", id);
    eff_json_int(ev, "pid", t->pid);
    eff_json_int(ev, "tid", 1);
    eff_json_num(ev, "ts", now_us(), "%.1f");
    put(t, ",\n", ev);
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
