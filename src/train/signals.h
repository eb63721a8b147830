/* signals.h: the preemption signals of `effnet train` (SIGTERM, SIGUSR1,
 * SIGINT) in a multi-threaded rank.
 *
 * A rank runs several threads: main, the loader's prefetch and augmentation
 * threads, libgomp's pool, and Open MPI's and PMIx's progress threads. A
 * process-directed signal with an asynchronous handler lands on any of them
 * and makes whatever blocking call that thread was in return EINTR. So:
 *
 *   eff_signals_start   the first thing cmd_train does, before MPI_Init and
 *                       before any other thread exists: blocks the three
 *                       signals in the calling thread (every thread started
 *                       later inherits the mask) and starts one thread that
 *                       takes them with sigtimedwait and records the first
 *   eff_signals_caught  the recorded signal, 0 if none (read by the trainer
 *                       at step boundaries and at the end of setup)
 *   eff_signals_stop    joins the waiting thread; the signals stay blocked
 *                       (the process is about to exit)
 *
 * No thread ever runs a handler, so no call anywhere is interrupted, and a
 * signal that arrives during start-up (even inside MPI_Init) is kept, not
 * fatal: the trainer sees it after setup and exits 75 without writing. */
#ifndef EFFNET_TRAIN_SIGNALS_H
#define EFFNET_TRAIN_SIGNALS_H

typedef struct EffSignals EffSignals;

EffSignals *eff_signals_start(void);
int eff_signals_caught(EffSignals *s);
void eff_signals_stop(EffSignals *s);
/* "SIGTERM", "SIGUSR1", "SIGINT" */
const char *eff_signal_name(int sig);

#endif
