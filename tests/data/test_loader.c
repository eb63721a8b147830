/* test_loader: the prefetching loader and the augmentation parameters.
 *
 * - A batch equals what the sampler and the augmentation give when run
 *   directly, for 1 and 3 augmentation threads (thread count changes nothing).
 * - Epochs roll over; resuming at (epoch, step) gives the same batches.
 * - The next batch is prepared in the background while the caller holds one.
 * - Evaluation mode: test pipeline, in order, every sample valid exactly once.
 * - Augmentation parameters: pure function of (seed, epoch, index), inside the
 *   configured ranges, all 24 ColorJitter orders about equally often.
 * - An error on the prefetch thread (an augmentation thread that cannot
 *   start) is raised by the main thread in eff_loader_next, through the
 *   abort hook (MPI_Abort in effnet train), never on the thread itself. */
#define _GNU_SOURCE /* pthread_setattr_default_np */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "test_util.h"
#include "data/augment.h"
#include "data/loader.h"
#include "data/sampler.h"

static TestState ts; /* this test file's check counters */
#define CHECK(...) T_CHECK(&ts, __VA_ARGS__)

static void synthetic(eff_dataset *ds, int64_t n) {
    memset(ds, 0, sizeof *ds);
    ds->n = n;
    ds->height = ds->width = 32;
    ds->channels = 3;
    ds->num_classes = 10;
    ds->images = eff_malloc((size_t)n * 3072, "images");
    ds->labels = eff_malloc((size_t)n * sizeof *ds->labels, "labels");
    uint64_t x = 1;
    for (size_t i = 0; i < (size_t)n * 3072; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        ds->images[i] = (uint8_t)((i / 3 % 32) * 6 + (x >> 59));
    }
    for (int64_t i = 0; i < n; i++) ds->labels[i] = (int32_t)(i % 10);
}

/* What batch (epoch, step) of rank/world must hold, computed without the loader. */
static void expected(const eff_dataset *ds, const eff_loader_config *c, int64_t epoch, int64_t step, float *x,
                     int32_t *y, int *valid) {
    eff_sampler s;
    eff_sampler_init(&s, ds->n, c->rank, c->world, c->batch, c->seed, c->train, c->train);
    int64_t idx[64];
    *valid = eff_sampler_batch(&s, epoch, step, idx);
    eff_augmenter A;
    eff_augmenter_init(&A, &c->aug, 32, 32);
    size_t per = (size_t)c->aug.size * c->aug.size * 3;
    for (int k = 0; k < c->batch; k++) {
        if (c->train) {
            eff_aug_params p;
            eff_aug_draw(&c->aug, c->seed, (uint64_t)epoch, (uint64_t)idx[k], &p);
            eff_augment_train(&A, ds->images + idx[k] * 3072, &p, x + k * per, NULL);
        } else {
            eff_augment_test(&A, ds->images + idx[k] * 3072, x + k * per, NULL);
        }
        y[k] = ds->labels[idx[k]];
    }
    eff_augmenter_free(&A);
    eff_sampler_free(&s);
}

static void loader_runs(const eff_dataset *ds, int S) {
    eff_loader_config c;
    memset(&c, 0, sizeof c);
    c.rank = 1;
    c.world = 2;
    c.batch = 12;
    c.train = 1;
    c.seed = 2024;
    eff_aug_config_default(&c.aug, S);
    size_t per = (size_t)S * S * 3;
    float *x = eff_malloc((size_t)c.batch * per * sizeof(float), "x");
    int32_t y[64];
    int valid;
    for (int threads = 1; threads <= 3; threads += 2) {
        c.threads = threads;
        eff_loader *L = eff_loader_open(ds, &c);
        int64_t steps = eff_loader_steps_per_epoch(L);
        CHECK(steps == ds->n / 24, "steps per epoch %lld", (long long)steps);
        for (int64_t i = 0; i < steps + 3; i++) {
            const eff_batch *b = eff_loader_next(L);
            int64_t e = i / steps, t = i % steps;
            CHECK(b->epoch == e && b->step == t, "batch %lld is (%lld, %lld), want (%lld, %lld)", (long long)i,
                  (long long)b->epoch, (long long)b->step, (long long)e, (long long)t);
            expected(ds, &c, e, t, x, y, &valid);
            CHECK(b->n_valid == valid && memcmp(b->y, y, c.batch * sizeof *y) == 0 &&
                      memcmp(b->x, x, c.batch * per * sizeof(float)) == 0,
                  "S=%d threads=%d batch (%lld,%lld) differs from the direct computation", S, threads, (long long)e,
                  (long long)t);
            if (i == 0) /* prefetch: the next batch gets ready while we hold this one */
                CHECK(eff_loader_ready(L, 30.0) == 1, "the next batch was not prepared in the background");
        }
        eff_loader_close(L);
    }
    /* resume at (1, 2) */
    c.threads = 2;
    c.start_epoch = 1;
    c.start_step = 2;
    eff_loader *L = eff_loader_open(ds, &c);
    int64_t steps = eff_loader_steps_per_epoch(L);
    for (int64_t i = 0; i < steps + 1; i++) { /* the rest of epoch 1 and into epoch 2 */
        const eff_batch *b = eff_loader_next(L);
        int64_t e = 1 + (2 + i) / steps, t = (2 + i) % steps;
        expected(ds, &c, e, t, x, y, &valid);
        CHECK(b->epoch == e && b->step == t && memcmp(b->x, x, c.batch * per * sizeof(float)) == 0,
              "resumed batch %lld differs", (long long)i);
    }
    eff_loader_close(L);
    /* indices_only (the GPU-augmentation path): same indices and labels, no images */
    c.indices_only = 1;
    c.start_epoch = 0;
    c.start_step = 0;
    L = eff_loader_open(ds, &c);
    for (int64_t t = 0; t < 3; t++) {
        const eff_batch *b = eff_loader_next(L);
        expected(ds, &c, 0, t, x, y, &valid);
        eff_sampler s;
        int64_t idx[64];
        eff_sampler_init(&s, ds->n, c.rank, c.world, c.batch, c.seed, 1, 1);
        eff_sampler_batch(&s, 0, t, idx);
        eff_sampler_free(&s);
        CHECK(b->x == NULL && b->n_valid == valid && memcmp(b->y, y, c.batch * sizeof *y) == 0 &&
                  memcmp(b->index, idx, c.batch * sizeof *idx) == 0,
              "indices_only batch %lld: x %p, labels or indices differ", (long long)t, (void *)b->x);
    }
    eff_loader_close(L);
    free(x);
}

static void eval_mode(const eff_dataset *ds) {
    eff_loader_config c;
    memset(&c, 0, sizeof c);
    c.world = 3;
    c.batch = 16;
    c.threads = 2;
    eff_aug_config_default(&c.aug, 32);
    int *seen = eff_calloc((size_t)ds->n, sizeof *seen, "seen");
    float x[16 * 3072];
    int32_t y[16];
    int valid;
    for (int r = 0; r < 3; r++) {
        c.rank = r;
        eff_loader *L = eff_loader_open(ds, &c);
        int64_t steps = eff_loader_steps_per_epoch(L);
        CHECK(steps == (ds->n + 47) / 48, "eval steps %lld", (long long)steps);
        for (int64_t t = 0; t < steps; t++) {
            const eff_batch *b = eff_loader_next(L);
            for (int k = 0; k < b->n_valid; k++) seen[b->index[k]]++;
            expected(ds, &c, 0, t, x, y, &valid);
            CHECK(memcmp(b->x, x, sizeof x) == 0 && memcmp(b->y, y, sizeof y) == 0, "eval batch differs");
        }
        eff_loader_close(L);
    }
    int bad = 0;
    for (int64_t i = 0; i < ds->n; i++) bad += seen[i] != 1;
    CHECK(bad == 0, "evaluation: %d samples not seen exactly once", bad);
    free(seen);
}

static int same_params(const eff_aug_params *a, const eff_aug_params *b) {
    return a->flip == b->flip && a->angle == b->angle && a->crop_top == b->crop_top && a->crop_left == b->crop_left &&
           memcmp(a->order, b->order, sizeof a->order) == 0 && a->brightness == b->brightness &&
           a->contrast == b->contrast && a->saturation == b->saturation && a->hue == b->hue;
}

static void aug_params(void) {
    eff_aug_config c;
    eff_aug_config_default(&c, 32);
    enum { N = 48000 };
    long orders[24] = {0}, flips = 0, crops[9] = {0};
    double asum = 0, amin = 1e9, amax = -1e9, hmin = 1, hmax = -1, flo = 9, fhi = -9;
    for (int i = 0; i < N; i++) {
        eff_aug_params p, q;
        eff_aug_draw(&c, 31, 2, (uint64_t)i, &p);
        eff_aug_draw(&c, 31, 2, (uint64_t)i, &q);
        CHECK(same_params(&p, &q), "params are a pure function of the key");
        int code = 0, used = 0;
        for (int k = 0; k < 4; k++) {
            used |= 1 << p.order[k];
            code = code * 4 + p.order[k];
        }
        CHECK(used == 15, "jitter order is not a permutation");
        /* rank of the permutation among the 24 */
        int rank = 0, fact[4] = {6, 2, 1, 1};
        for (int k = 0; k < 4; k++) {
            int smaller = 0;
            for (int j = k + 1; j < 4; j++) smaller += p.order[j] < p.order[k];
            rank += smaller * fact[k];
        }
        orders[rank]++;
        flips += p.flip;
        CHECK(p.crop_top >= 0 && p.crop_top <= 8 && p.crop_left >= 0 && p.crop_left <= 8, "crop offsets in 0..8");
        crops[p.crop_top]++;
        asum += p.angle;
        amin = fmin(amin, p.angle); amax = fmax(amax, p.angle);
        hmin = fmin(hmin, p.hue); hmax = fmax(hmax, p.hue);
        double f[3] = {p.brightness, p.contrast, p.saturation};
        for (int k = 0; k < 3; k++) { flo = fmin(flo, f[k]); fhi = fmax(fhi, f[k]); }
        (void)code;
    }
    /* The keys are fixed, so these are deterministic; each bound is set so that a correct sampler with another
     * key fails with probability < 1e-6. Measured values are printed below (this CPU, AMD EPYC, 2026-12-02). */
    double zo = 0, zc = 0; /* the largest |count - N p| / sd over the cells */
    for (int k = 0; k < 24; k++) zo = fmax(zo, fabs(orders[k] - N / 24.0) / sqrt(N * (1 / 24.0) * (23 / 24.0)));
    for (int k = 0; k < 9; k++) zc = fmax(zc, fabs(crops[k] - N / 9.0) / sqrt(N * (1 / 9.0) * (8 / 9.0)));
    /* +-15% of 2000 = 6.8 binomial sd per cell (24 cells: P(false fail) ~ 2e-10); measured max |z| 1.94, 3.5x */
    for (int k = 0; k < 24; k++)
        CHECK(orders[k] > N / 24 * 85 / 100 && orders[k] < N / 24 * 115 / 100, "jitter order %d drawn %ld times of %d", k, orders[k], N);
    /* +-9% of 5333 = 7.0 sd per cell (was +-15% = 11.6 sd); measured max |z| 1.61, 4.3x */
    for (int k = 0; k < 9; k++) CHECK(crops[k] > N / 9 * 91 / 100 && crops[k] < N / 9 * 109 / 100, "crop %d drawn %ld times", k, crops[k]);
    /* 0.016 = 7.0 sd of the flip rate (sd 0.00228; was 0.02 = 8.8 sd); measured 0.4977, z -1.02 */
    CHECK(fabs((double)flips / N - 0.5) < 0.016, "flip rate %.3f", (double)flips / N);
    /* ranges exact; the extremes must come within 0.01 of +-15 (a uniform draw misses that with probability
     * e^-16 = 1e-7 per side; was 0.1: e^-160; measured -14.99876, 14.99744); the mean within 0.2 = 5.1 sd
     * (sd 8.66 / sqrt(N) = 0.0395; measured +0.056, 3.6x) */
    CHECK(amin >= -15 && amax < 15 && amin < -14.99 && amax > 14.99 && fabs(asum / N) < 0.2, "angles %g..%g mean %g", amin, amax, asum / N);
    /* hue extremes within 1e-4 of +-0.1 (miss probability e^-24; was 1e-3: e^-240; measured 2e-6 away) */
    CHECK(hmin >= -0.1 && hmax < 0.1 && hmin < -0.0999 && hmax > 0.0999, "hue %g..%g", hmin, hmax);
    /* factor extremes within 1e-4 of 0.8 / 1.2 over 3 x N draws (miss probability e^-36; was 1e-3: e^-360;
     * measured 1.4e-5 away) */
    CHECK(flo >= 0.8 && fhi < 1.2 && flo < 0.8001 && fhi > 1.1999, "factors %g..%g", flo, fhi);
    printf("aug params over %d keys: jitter orders max |z| %.2f, crops max |z| %.2f, flip rate %.4f (z %+.2f), "
           "angles %.5f..%.5f mean %+.4f, hue %.6f..%.6f, factors %.6f..%.6f\n", N, zo, zc, (double)flips / N,
           ((double)flips / N - 0.5) / sqrt(0.25 / N), amin, amax, asum / N, hmin, hmax, flo, fhi);
    eff_aug_params a, b;
    eff_aug_draw(&c, 31, 2, 5, &a);
    eff_aug_draw(&c, 31, 3, 5, &b);
    CHECK(!same_params(&a, &b), "another epoch gives other parameters");
}

/* The child's abort hook: it must run on the main thread, which set it. */
static pthread_t main_thread;
static void hook_on_main(int code) {
    fprintf(stderr, "abort hook ran on the %s thread (code %d)\n",
            pthread_equal(pthread_self(), main_thread) ? "main" : "WRONG", code);
}

/* A child process opens a 3-thread loader, then makes every new thread's
 * stack impossible to map (pthread_create fails with EAGAIN): within a few
 * batches the prefetch thread cannot start its helpers. */
static void error_handoff(const eff_dataset *ds) {
    int pipefd[2];
    CHECK(pipe(pipefd) == 0, "pipe");
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        main_thread = pthread_self();
        eff_set_abort_hook(hook_on_main);
        eff_loader_config c = {.rank = 0, .world = 1, .batch = 4, .train = 1, .seed = 3, .threads = 3};
        eff_aug_config_default(&c.aug, 32);
        eff_loader *L = eff_loader_open(ds, &c);
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setstacksize(&a, (size_t)1 << 46); /* 64 TiB: no mmap can give it */
        pthread_setattr_default_np(&a);
        for (int i = 0; i < 20; i++) (void)eff_loader_next(L);
        _exit(0); /* not reached when the error is raised */
    }
    close(pipefd[1]);
    char out[4096] = "";
    size_t n = 0;
    ssize_t k;
    while (n + 1 < sizeof out && (k = read(pipefd[0], out + n, sizeof out - 1 - n)) > 0) n += (size_t)k;
    out[n] = '\0';
    close(pipefd[0]);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1, "loader error: the child exits 1 (status 0x%x)", status);
    CHECK(strstr(out, "cannot start augmentation thread") != NULL, "loader error: names the failed thread start");
    CHECK(strstr(out, "abort hook ran on the main thread") != NULL, "loader error: raised on the main thread");
    CHECK(strstr(out, "helper thread") == NULL, "loader error: not raised on the prefetch thread");
    printf("loader error handed to the main thread:\n%s", out);
}

int main(void) {
    eff_dataset ds;
    synthetic(&ds, 100);
    aug_params();
    loader_runs(&ds, 32);
    loader_runs(&ds, 64);
    eval_mode(&ds);
    error_handoff(&ds);
    eff_dataset_free(&ds);
    if (ts.failures) {
        fprintf(stderr, "%d of %d checks failed\n", ts.failures, ts.checks);
        return 1;
    }
    printf("PASS: %d checks\n", ts.checks);
    return 0;
}
