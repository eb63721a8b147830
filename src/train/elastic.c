/* elastic.c: the batch split of a resumed run (see elastic.h). */
#include "train/elastic.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { MIN_MICRO = 2 };

static int fail(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return 0;
}

/* Largest micro-batch b in [MIN_MICRO, limit] dividing share; 0 if none. */
static long largest_divisor(long share, long limit) {
    for (long b = limit < share ? limit : share; b >= MIN_MICRO; b--)
        if (share % b == 0) return b;
    return 0;
}

/* "1, 2, 4" : the rank counts that can keep global batch g within limit. */
static void workable_worlds(long g, long limit, char *buf, size_t cap) {
    buf[0] = '\0';
    size_t used = 0;
    for (long w = 1; w <= g && used + 16 < cap; w++)
        if (g % w == 0 && largest_divisor(g / w, limit))
            used += (size_t)snprintf(buf + used, cap - used, "%s%ld", used ? ", " : "", w);
    if (!used) snprintf(buf, cap, "none");
}

static int explicit_split(long g, int world, long batch, long accum, int set_batch, int set_accum, EffBatchPlan *p,
                          char *err, size_t errlen) {
    if (set_batch && !set_accum) {
        if (g % ((long)world * batch) != 0)
            return fail(err, errlen, "resume: --set train.batch=%ld cannot keep the checkpoint's global batch %ld on %d "
                        "rank(s) (%ld is not a multiple of %d x %ld)\nHINT: also give --set train.accum=A to change the "
                        "recipe (global batch = ranks x batch x accum), or leave train.batch to the resume", batch, g,
                        world, g, world, batch);
        accum = g / ((long)world * batch);
    } else if (set_accum && !set_batch) {
        if (g % ((long)world * accum) != 0)
            return fail(err, errlen, "resume: --set train.accum=%ld cannot keep the checkpoint's global batch %ld on %d "
                        "rank(s) (%ld is not a multiple of %d x %ld)\nHINT: also give --set train.batch=B to change the "
                        "recipe, or leave train.accum to the resume", accum, g, world, g, world, accum);
        batch = g / ((long)world * accum);
    }
    p->batch = batch;
    p->accum = accum;
    p->global_new = (long)world * batch * accum;
    p->kind = p->global_new == g ? EFF_SPLIT_USER : EFF_SPLIT_RECIPE;
    if (p->kind == EFF_SPLIT_USER)
        snprintf(p->why, sizeof p->why, "%d rank(s) x batch %ld x accum %ld = global batch %ld, as given on the command "
                 "line (the checkpoint's global batch is kept)", world, batch, accum, g);
    else
        snprintf(p->why, sizeof p->why, "RECIPE CHANGE: global batch %ld -> %ld (%d rank(s) x batch %ld x accum %ld, "
                 "as given on the command line); the learning rate and schedule are not rescaled", g, p->global_new,
                 world, batch, accum);
    return 1;
}

int eff_batch_plan(int ckpt_world, long ckpt_batch, long ckpt_accum, int world, long batch, long accum, int set_batch,
                   int set_accum, long max_batch, EffBatchPlan *p, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    if (ckpt_world < 1 || ckpt_batch < 1 || ckpt_accum < 1 || world < 1 || batch < 1 || accum < 1)
        return fail(err, errlen, "resume: bad batch split (checkpoint %d x %ld x %ld, run %d x %ld x %ld)", ckpt_world,
                    ckpt_batch, ckpt_accum, world, batch, accum);
    const long g = (long)ckpt_world * ckpt_batch * ckpt_accum;
    p->global_old = g;
    if (set_batch || set_accum) return explicit_split(g, world, batch, accum, set_batch, set_accum, p, err, errlen);
    const long limit = max_batch > 0 ? max_batch : (batch > ckpt_batch ? batch : ckpt_batch);
    char ok[256];
    workable_worlds(g, limit, ok, sizeof ok);
    if (g % world != 0 || !largest_divisor(g / world, limit))
        return fail(err, errlen, "resume: cannot keep the checkpoint's global batch %ld (%d rank(s) x batch %ld x accum "
                    "%ld) on %d rank(s): %s\nHINT: the options: resume on %s rank(s); raise train.max_batch (now %ld, "
                    "the largest micro-batch that fits in memory); or change the recipe explicitly with --set "
                    "train.batch=B --set train.accum=A (global batch = ranks x B x A; logged as a recipe change)", g,
                    ckpt_world, ckpt_batch, ckpt_accum, world,
                    g % world ? "it is not a multiple of the rank count" : "no micro-batch within train.max_batch "
                    "divides the per-rank share", ok, limit);
    const long share = g / world;
    p->global_new = g;
    if (share % ckpt_batch == 0 && ckpt_batch <= limit) {
        p->batch = ckpt_batch;
        p->accum = share / ckpt_batch;
        p->kind = world == ckpt_world ? EFF_SPLIT_SAME : EFF_SPLIT_ACCUM;
        snprintf(p->why, sizeof p->why, "%d rank(s) x batch %ld x accum %ld = global batch %ld, as the checkpoint's %d "
                 "x %ld x %ld: the same micro-batches (BatchNorm statistics, dropout keys), only summed in another "
                 "order", world, p->batch, p->accum, g, ckpt_world, ckpt_batch, ckpt_accum);
        return 1;
    }
    p->batch = largest_divisor(share, limit);
    p->accum = share / p->batch;
    p->kind = EFF_SPLIT_MICRO;
    snprintf(p->why, sizeof p->why, "%d rank(s) x batch %ld x accum %ld = global batch %ld (checkpoint: %d x %ld x %ld): "
             "the micro-batch %ld %s, so BatchNorm now normalises over %ld images instead of %ld and the loss will "
             "differ slightly from an uninterrupted run; the recipe (global batch, learning rate, schedule) is kept",
             world, p->batch, p->accum, g, ckpt_world, ckpt_batch, ckpt_accum, ckpt_batch,
             ckpt_batch > limit ? "exceeds train.max_batch" : "does not divide the per-rank share", p->batch, ckpt_batch);
    return 1;
}

long long eff_resume_step(long long step_in_epoch, long global_old, long global_new, long long *skipped) {
    const long long seen = step_in_epoch * global_old, step = (seen + global_new - 1) / global_new;
    if (skipped) *skipped = step * global_new - seen;
    return step;
}
