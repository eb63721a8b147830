/* signals.h: the preemption signals of `effnet train` (SIGTERM, SIGUSR1,
 * SIGINT) in a multi-threaded rank.
 *
 * A rank runs several threads: main, the loader's prefetch and augmentation
 * threads, libgomp's pool, and Open MPI's and PMIx's progress threads. A
 * process-directed signal with an asynchronous handler lands on any of them.
 * That corrupted the heap (issue 23, docs/fault-soak.md): oneDNN's f32 GEMM
 * kernel (jit_avx512_common_gemm_f32, used by dnnl_sgemm for K > 84) points
 * the stack pointer at a malloc'd workspace while it runs, so a signal frame
 * delivered to that thread (~2.4 KiB of registers, written below the stack
 * pointer) overwrites the heap chunk in front of the workspace. Any
 * asynchronous handler does it, even one that only sets a flag. So:
 *
 *   eff_signals_start   the first thing cmd_train does, before MPI_Init and
 *                       before any other thread exists: blocks the three
 *                       signals in the calling thread (every thread started
 *                       later inherits the mask) and starts one thread,
 *                       named "eff-signals", that takes them with
 *                       sigtimedwait and records the first
 *   eff_signals_caught  the recorded signal, 0 if none (read by the trainer
 *                       at step boundaries and at the end of setup)
 *   eff_signals_stop    joins the waiting thread; the signals stay blocked
 *                       (the process is about to exit)
 *
 * No thread ever runs a handler for them, so no signal frame lands on a
 * compute thread, no call anywhere is interrupted, and a signal that arrives
 * during start-up (even inside MPI_Init) is kept, not fatal: the trainer sees
 * it after setup and exits 75 without writing. tests/train/test_train.sh
 * signal_mask checks the masks of every thread of a running rank;
 * tests/test_signal_gemm.c sends thousands of signals during GEMMs. */
#ifndef EFFNET_TRAIN_SIGNALS_H
#define EFFNET_TRAIN_SIGNALS_H

typedef struct EffSignals EffSignals;

EffSignals *eff_signals_start(void);
int eff_signals_caught(EffSignals *s);
void eff_signals_stop(EffSignals *s);
/* "SIGTERM", "SIGUSR1", "SIGINT" */
const char *eff_signal_name(int sig);

#endif
