/* dirlock.h: one job per output directory.
 *
 * Two jobs writing the same last.h5 (a resubmission by mistake, a requeue
 * that overlaps the old run's slow teardown) would each overwrite the
 * other's checkpoints. Rank 0 therefore holds an exclusive POSIX record lock
 * (fcntl F_SETLK) on OUTPUT_DIR/effnet.lock for the whole run; the file
 * names the holder (host, PID, Slurm job and start time). The kernel (or the
 * NFS lock manager) drops the lock when its process dies, however it dies,
 * so a lock left by a dead job never blocks the next one. */
#ifndef EFFNET_TRAIN_DIRLOCK_H
#define EFFNET_TRAIN_DIRLOCK_H

#include <stddef.h>

enum { EFF_DIRLOCK_NAME_MAX = 512 };

/* Lock dir (which must exist), retrying for up to wait_s seconds. Returns the
 * lock's file descriptor (>= 0). -1: another live process holds it, and
 * holder says who (from the file and F_GETLK); -2: this file system does not
 * support locks (holder says why; the caller warns and runs unlocked); -3:
 * the lock file cannot be created (holder says why). */
int eff_dirlock_acquire(const char *dir, double wait_s, char *holder, size_t cap);
void eff_dirlock_release(int fd);

#endif
