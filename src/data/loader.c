/* loader.c: see loader.h. */
#define _POSIX_C_SOURCE 200809L
#include "data/loader.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "data/sampler.h"

enum { SLOT_FREE, SLOT_READY, SLOT_HELD };

struct eff_loader {
    const eff_dataset *ds;
    eff_loader_config cfg;
    eff_sampler sampler;
    eff_augmenter *aug;        /* one per thread */
    eff_batch slot[2];
    int state[2];
    int prod, cons, held;      /* next slot to fill, next to hand out, the one handed out (-1) */
    int64_t epoch, step;       /* next position to produce */
    int stop;
    char error[512];           /* the prefetch thread's error, raised by the main thread in eff_loader_next */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

typedef struct {
    eff_loader *L;
    eff_batch *b;
    int t;
} work;

/* Sample g into dst (S x S x 3 floats) through the configured pipeline. */
static void augment_one(const eff_loader *L, eff_augmenter *A, int64_t epoch, int64_t g, float *dst) {
    int h, w;
    const uint8_t *src = eff_dataset_image(L->ds, g, &h, &w);
    const int train = L->cfg.train && !L->cfg.no_augment;
    if (L->cfg.aug.pipeline == EFF_PIPE_IMAGENET) {
        if (!train) {
            eff_augment_center(A, src, h, w, dst, NULL);
            return;
        }
        eff_rrc_params p;
        eff_rrc_draw(&L->cfg.aug, L->cfg.seed, (uint64_t)epoch, (uint64_t)g, h, w, &p);
        eff_augment_rrc(A, src, h, w, &p, dst, NULL);
    } else if (train) {
        eff_aug_params p;
        eff_aug_draw(&L->cfg.aug, L->cfg.seed, (uint64_t)epoch, (uint64_t)g, &p);
        eff_augment_train(A, src, &p, dst, NULL);
    } else {
        eff_augment_test(A, src, dst, NULL);
    }
}

static void *augment_part(void *arg) {
    work *w = arg;
    eff_loader *L = w->L;
    size_t out_px = (size_t)L->cfg.aug.size * L->cfg.aug.size * 3;
    for (int k = w->t; k < w->b->n; k += L->cfg.threads) {
        int64_t g = w->b->index[k];
        w->b->y[k] = L->ds->labels[g];
        if (!L->cfg.indices_only) augment_one(L, &L->aug[w->t], w->b->epoch, g, w->b->x + (size_t)k * out_px);
    }
    return NULL;
}

/* Fill batch b with (epoch, step); 0, or -1 with err set. Runs on the
 * prefetch thread, which must not exit the process: errors go back to
 * eff_loader_next on the main thread. */
static int fill(eff_loader *L, eff_batch *b, int64_t epoch, int64_t step, char *err, size_t cap) {
    if (epoch < 0 || step < 0 || step >= L->sampler.steps_per_epoch) {
        snprintf(err, cap, "loader: position (epoch %lld, step %lld) is outside 0..%lld steps per epoch (internal "
                 "error)", (long long)epoch, (long long)step, (long long)L->sampler.steps_per_epoch - 1);
        return -1;
    }
    b->epoch = epoch;
    b->step = step;
    b->n_valid = eff_sampler_batch(&L->sampler, epoch, step, b->index);
    int T = L->cfg.threads, started = 1, rc = 0;
    work w[64];
    pthread_t th[64];
    for (int t = 0; t < T; t++) w[t] = (work){L, b, t};
    for (; started < T; started++) {
        rc = pthread_create(&th[started], NULL, augment_part, &w[started]);
        if (rc) break;
    }
    if (!rc) augment_part(&w[0]);
    for (int t = 1; t < started; t++) pthread_join(th[t], NULL);
    if (rc)
        snprintf(err, cap, "loader: cannot start augmentation thread %d of %d: %s\nHINT: lower data.loader_threads",
                 started, T, strerror(rc));
    return rc ? -1 : 0;
}

static void *producer(void *arg) {
    eff_loader *L = arg;
    char err[sizeof L->error];
    pthread_mutex_lock(&L->mu);
    for (;;) {
        while (!L->stop && L->state[L->prod] != SLOT_FREE) pthread_cond_wait(&L->cv, &L->mu);
        if (L->stop) break;
        int s = L->prod;
        int64_t e = L->epoch, st = L->step;
        pthread_mutex_unlock(&L->mu);
        const int rc = fill(L, &L->slot[s], e, st, err, sizeof err);
        pthread_mutex_lock(&L->mu);
        if (rc) { /* the main thread raises it at its next eff_loader_next */
            snprintf(L->error, sizeof L->error, "%s", err);
            pthread_cond_broadcast(&L->cv);
            break;
        }
        L->state[s] = SLOT_READY;
        L->prod ^= 1;
        if (++L->step == L->sampler.steps_per_epoch) {
            L->step = 0;
            L->epoch++;
        }
        pthread_cond_broadcast(&L->cv);
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

eff_loader *eff_loader_open(const eff_dataset *ds, const eff_loader_config *cfg) {
    EFF_CHECK(ds && ds->n > 0 && ds->images, "loader: the data set is not loaded");
    EFF_CHECK(ds->channels == 3, "loader: images have %d channels, expected 3", ds->channels);
    EFF_CHECK(cfg->threads >= 1 && cfg->threads <= 64, "loader: %d threads is outside 1..64", cfg->threads);
    EFF_CHECK(cfg->aug.pipeline == EFF_PIPE_IMAGENET || !ds->offsets, "loader: the seed's pipeline needs images of "
              "one size; this data set's are ragged\nHINT: use the imagenet pipeline (data.pipeline)");
    eff_loader *L = eff_calloc(1, sizeof *L, "loader");
    L->ds = ds;
    L->cfg = *cfg;
    eff_sampler_init(&L->sampler, ds->n, cfg->rank, cfg->world, cfg->batch, cfg->seed, cfg->train, cfg->train);
    EFF_CHECK(cfg->start_epoch >= 0 && cfg->start_step >= 0 && cfg->start_step < L->sampler.steps_per_epoch,
              "loader: resume position (epoch %lld, step %lld) is outside 0..%lld steps per epoch\nHINT: resume with the same world size and batch size as the checkpoint",
              (long long)cfg->start_epoch, (long long)cfg->start_step, (long long)L->sampler.steps_per_epoch - 1);
    L->epoch = cfg->start_epoch;
    L->step = cfg->start_step;
    L->aug = eff_calloc((size_t)cfg->threads, sizeof *L->aug, "loader augmenters");
    if (!cfg->indices_only)
        for (int t = 0; t < cfg->threads; t++) eff_augmenter_init(&L->aug[t], &cfg->aug, ds->height, ds->width);
    size_t S = (size_t)cfg->aug.size;
    for (int s = 0; s < 2; s++) {
        eff_batch *b = &L->slot[s];
        b->n = cfg->batch;
        b->x = cfg->indices_only ? NULL
                                 : eff_alloc_aligned((size_t)cfg->batch * S * S * 3 * sizeof(float), "loader batch images");
        b->y = eff_malloc((size_t)cfg->batch * sizeof *b->y, "loader batch labels");
        b->index = eff_malloc((size_t)cfg->batch * sizeof *b->index, "loader batch indices");
    }
    L->held = -1;
    EFF_CHECK(pthread_mutex_init(&L->mu, NULL) == 0 && pthread_cond_init(&L->cv, NULL) == 0, "loader: cannot create its lock");
    int rc = pthread_create(&L->thread, NULL, producer, L);
    EFF_CHECK(rc == 0, "loader: cannot start the prefetch thread: %s", strerror(rc));
    return L;
}

const eff_batch *eff_loader_next(eff_loader *L) {
    pthread_mutex_lock(&L->mu);
    if (L->held >= 0) {
        L->state[L->held] = SLOT_FREE;
        L->held = -1;
        pthread_cond_broadcast(&L->cv);
    }
    while (L->state[L->cons] != SLOT_READY && !L->error[0]) pthread_cond_wait(&L->cv, &L->mu);
    if (L->state[L->cons] != SLOT_READY) {
        char err[sizeof L->error];
        snprintf(err, sizeof err, "%s", L->error);
        pthread_mutex_unlock(&L->mu);
        EFF_FATAL("%s", err);
    }
    L->state[L->cons] = SLOT_HELD;
    L->held = L->cons;
    L->cons ^= 1;
    const eff_batch *b = &L->slot[L->held];
    pthread_mutex_unlock(&L->mu);
    return b;
}

int64_t eff_loader_steps_per_epoch(const eff_loader *L) { return L->sampler.steps_per_epoch; }

int eff_loader_ready(eff_loader *L, double timeout_s) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    double t = (double)until.tv_sec + 1e-9 * until.tv_nsec + (timeout_s > 0 ? timeout_s : 0);
    until.tv_sec = (time_t)t;
    until.tv_nsec = (long)((t - (double)until.tv_sec) * 1e9);
    pthread_mutex_lock(&L->mu);
    while (timeout_s > 0 && L->state[L->cons] != SLOT_READY && !L->error[0])
        if (pthread_cond_timedwait(&L->cv, &L->mu, &until) == ETIMEDOUT) break;
    int ready = L->state[L->cons] == SLOT_READY;
    pthread_mutex_unlock(&L->mu);
    return ready;
}

void eff_loader_close(eff_loader *L) {
    if (!L) return;
    pthread_mutex_lock(&L->mu);
    L->stop = 1;
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
    pthread_join(L->thread, NULL);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->cv);
    for (int s = 0; s < 2; s++) {
        eff_free(L->slot[s].x);
        eff_free(L->slot[s].y);
        eff_free(L->slot[s].index);
    }
    if (!L->cfg.indices_only)
        for (int t = 0; t < L->cfg.threads; t++) eff_augmenter_free(&L->aug[t]);
    eff_free(L->aug);
    eff_sampler_free(&L->sampler);
    eff_free(L);
}
