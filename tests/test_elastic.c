/* test_elastic.c: the batch split of a resume on another rank count
 * (src/train/elastic.c), against splits worked out by hand. */
#include "train/elastic.h"
#include "test_util.h"

#include <string.h>

typedef struct {
    int ckpt_world;
    long ckpt_batch, ckpt_accum;
    int world;
    long batch, accum;
    int set_batch, set_accum;
    long max_batch;
    int ok;             /* expected: 1 planned, 0 refused */
    long want_batch, want_accum;
    EffSplitKind want_kind;
    const char *want_text; /* in plan.why, or in the error */
} Case;

static const Case cases[] = {
    /* same ranks, same split */
    {2, 32, 1, 2, 32, 1, 0, 0, 0, 1, 32, 1, EFF_SPLIT_SAME, "the same micro-batches"},
    /* the cases: 2 -> 1, 1 -> 4, 4 -> 2 keep the micro-batch and rescale accum */
    {2, 8, 1, 1, 8, 1, 0, 0, 0, 1, 8, 2, EFF_SPLIT_ACCUM, "1 rank(s) x batch 8 x accum 2 = global batch 16"},
    {1, 8, 4, 4, 8, 4, 0, 0, 0, 1, 8, 1, EFF_SPLIT_ACCUM, "4 rank(s) x batch 8 x accum 1 = global batch 32"},
    {4, 8, 1, 2, 8, 1, 0, 0, 0, 1, 8, 2, EFF_SPLIT_ACCUM, "2 rank(s) x batch 8 x accum 2"},
    /* 2 x 32 -> 4 ranks: 32 does not divide the share 16: micro-batch 16, and the log says BN changes */
    {2, 32, 1, 4, 32, 1, 0, 0, 0, 1, 16, 1, EFF_SPLIT_MICRO, "BatchNorm now normalises over 16 images instead of 32"},
    /* a memory limit below the checkpoint's micro-batch: the largest divisor of 64 that is <= 24 is 16 */
    {1, 64, 1, 1, 64, 1, 0, 0, 24, 1, 16, 4, EFF_SPLIT_MICRO, "exceeds train.max_batch"},
    /* 64 on 3 ranks: not divisible; the message names the workable rank counts and the options */
    {2, 32, 1, 3, 32, 1, 0, 0, 0, 0, 0, 0, 0, "resume on 1, 2, 4, 8, 16, 32 rank(s)"},
    {2, 32, 1, 3, 32, 1, 0, 0, 0, 0, 0, 0, 0, "--set train.batch=B --set train.accum=A"},
    /* 64 on 64 ranks: a micro-batch of 1 would make BN undefined at 1x1 */
    {2, 32, 1, 64, 32, 1, 0, 0, 0, 0, 0, 0, 0, "cannot keep the checkpoint's global batch 64"},
    /* the user's split that keeps the global batch */
    {2, 32, 1, 1, 16, 4, 1, 1, 0, 1, 16, 4, EFF_SPLIT_USER, "as given on the command line"},
    /* only the batch given: accum follows from the global batch */
    {2, 32, 1, 1, 64, 1, 1, 0, 0, 1, 64, 1, EFF_SPLIT_USER, "1 rank(s) x batch 64 x accum 1 = global batch 64"},
    /* only the batch given, and it cannot keep the global batch: refused, names the fix */
    {2, 32, 1, 1, 48, 1, 1, 0, 0, 0, 0, 0, 0, "also give --set train.accum=A"},
    /* an explicit recipe change */
    {2, 32, 1, 2, 16, 1, 1, 1, 0, 1, 16, 1, EFF_SPLIT_RECIPE, "RECIPE CHANGE: global batch 64 -> 32"},
};

int main(void) {
    TestState ts = {0, 0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const Case *c = &cases[i];
        EffBatchPlan p;
        char err[1400] = "";
        const int ok = eff_batch_plan(c->ckpt_world, c->ckpt_batch, c->ckpt_accum, c->world, c->batch, c->accum,
                                      c->set_batch, c->set_accum, c->max_batch, &p, err, sizeof err);
        T_CHECK(&ts, ok == c->ok, "case %zu: planned %d, want %d (%s)", i, ok, c->ok, ok ? p.why : err);
        if (ok != c->ok) continue;
        const char *text = ok ? p.why : err;
        T_CHECK(&ts, strstr(text, c->want_text) != NULL, "case %zu: '%s' not in: %s", i, c->want_text, text);
        if (!ok) continue;
        T_CHECK(&ts, p.batch == c->want_batch && p.accum == c->want_accum && p.kind == c->want_kind,
                "case %zu: %ld x %ld kind %d, want %ld x %ld kind %d", i, p.batch, p.accum, (int)p.kind, c->want_batch,
                c->want_accum, (int)c->want_kind);
        const long g = (long)c->ckpt_world * c->ckpt_batch * c->ckpt_accum;
        T_CHECK(&ts, (p.kind == EFF_SPLIT_RECIPE) == (c->world * p.batch * p.accum != g),
                "case %zu: global batch %ld vs %ld, kind %d", i, c->world * p.batch * p.accum, g, (int)p.kind);
    }
    /* the position after a global-batch change: 5 steps of 64 = 320 samples; at 96 per step that is 3.33 steps:
     * continue at step 4, skipping 64 samples */
    long long skipped = -1;
    T_CHECK(&ts, eff_resume_step(5, 64, 96, &skipped) == 4 && skipped == 64, "resume step 5x64 -> 96: skipped %lld",
            skipped);
    T_CHECK(&ts, eff_resume_step(5, 64, 32, &skipped) == 10 && skipped == 0, "resume step 5x64 -> 32: skipped %lld",
            skipped);
    return t_finish(&ts, "test_elastic");
}
