/* signals.c: see signals.h. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "train/signals.h"

#include "common.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

struct EffSignals {
    sigset_t set;        /* SIGTERM, SIGUSR1, SIGINT */
    atomic_int first;    /* the first signal taken, 0 until then */
    atomic_int stop;     /* eff_signals_stop asks the thread to return */
    pthread_t thread;
};

/* Takes the blocked signals synchronously; wakes every 100 ms to see `stop`. */
static void *wait_signals(void *arg) {
    EffSignals *s = arg;
    const struct timespec tick = {0, 100000000L};
    while (!atomic_load(&s->stop)) {
        const int sig = sigtimedwait(&s->set, NULL, &tick);
        if (sig <= 0) continue; /* EAGAIN: the tick; EINTR: another signal (SIGALRM's default ends the process) */
        int none = 0;
        atomic_compare_exchange_strong(&s->first, &none, sig);
    }
    return NULL;
}

EffSignals *eff_signals_start(void) {
    EffSignals *s = eff_calloc(1, sizeof *s, "signal state");
    atomic_init(&s->first, 0);
    atomic_init(&s->stop, 0);
    EFF_CHECK(sigemptyset(&s->set) == 0 && sigaddset(&s->set, SIGTERM) == 0 && sigaddset(&s->set, SIGUSR1) == 0 &&
              sigaddset(&s->set, SIGINT) == 0, "building the signal set failed: %s", strerror(errno));
    const int rc = pthread_sigmask(SIG_BLOCK, &s->set, NULL);
    EFF_CHECK(rc == 0, "blocking SIGTERM/SIGUSR1/SIGINT failed: %s", strerror(rc));
    const int rt = pthread_create(&s->thread, NULL, wait_signals, s);
    EFF_CHECK(rt == 0, "cannot start the signal thread: %s", strerror(rt));
    const int rn = pthread_setname_np(s->thread, "eff-signals"); /* tests and debuggers find it by name */
    EFF_CHECK(rn == 0, "naming the signal thread failed: %s", strerror(rn));
    return s;
}

int eff_signals_caught(EffSignals *s) { return s ? atomic_load(&s->first) : 0; }

const char *eff_signal_name(int sig) {
    return sig == SIGTERM ? "SIGTERM" : sig == SIGUSR1 ? "SIGUSR1" : sig == SIGINT ? "SIGINT" : "a signal";
}

void eff_signals_stop(EffSignals *s) {
    if (!s) return;
    atomic_store(&s->stop, 1);
    const int rc = pthread_join(s->thread, NULL);
    EFF_CHECK(rc == 0, "joining the signal thread failed: %s", strerror(rc));
    eff_free(s);
}
