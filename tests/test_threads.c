/* test_threads: the thread count for train.threads = 0 (src/train/threads.h),
 * on hand-made hosts and affinity masks: unbound ranks share a node's cores,
 * ranks bound to a core or a socket share nothing or their socket, other
 * hosts never count, and the count never drops below 1. The live case (2
 * unbound ranks under mpirun, and OMP_NUM_THREADS deciding when set) is in
 * tests/train/test_train.sh config. Exit 0 pass, 1 fail. */
#include "test_util.h"
#include "train/threads.h"

#include <stdlib.h>
#include <string.h>

static TestState ts;

/* masks[r] gets cores lo[r] .. hi[r] (inclusive) */
static unsigned char *masks_of(int world, const int *lo, const int *hi, size_t mb) {
    unsigned char *m = calloc((size_t)world, mb);
    for (int r = 0; r < world; r++)
        for (int c = lo[r]; c <= hi[r]; c++) m[(size_t)r * mb + (size_t)c / 8] |= (unsigned char)(1u << (c % 8));
    return m;
}

static void expect(const char *what, int world, const char *const *hosts, const int *lo, const int *hi,
                   const int *want) {
    const size_t mb = eff_threads_mask_bytes();
    unsigned char *m = masks_of(world, lo, hi, mb);
    for (int r = 0; r < world; r++) {
        char why[300];
        const int got = eff_threads_auto(r, world, hosts, m, mb, why, sizeof why);
        T_CHECK(&ts, got == want[r], "%s: rank %d got %d threads, want %d (%s)", what, r, got, want[r], why);
        if (r == 0) printf("%s: rank 0 -> %d (%s)\n", what, got, why);
    }
    free(m);
}

int main(void) {
    const char *one[] = {"a", "a", "a", "a"}, *two[] = {"a", "a", "b", "b"};
    expect("2 unbound ranks, 2 cores", 2, one, (int[]){0, 0}, (int[]){1, 1}, (int[]){1, 1});
    expect("2 unbound ranks, 16 cores", 2, one, (int[]){0, 0}, (int[]){15, 15}, (int[]){8, 8});
    expect("3 unbound ranks, 2 cores: at least 1", 3, one, (int[]){0, 0, 0}, (int[]){1, 1, 1}, (int[]){1, 1, 1});
    expect("1 rank, 64 cores", 1, one, (int[]){0}, (int[]){63}, (int[]){64});
    expect("4 ranks bound to a core each", 4, one, (int[]){0, 1, 2, 3}, (int[]){0, 1, 2, 3}, (int[]){1, 1, 1, 1});
    expect("4 ranks, 2 per 4-core socket", 4, one, (int[]){0, 0, 4, 4}, (int[]){3, 3, 7, 7}, (int[]){2, 2, 2, 2});
    expect("2 hosts x 2 unbound ranks, 8 cores", 4, two, (int[]){0, 0, 0, 0}, (int[]){7, 7, 7, 7},
           (int[]){4, 4, 4, 4});
    expect("2 hosts x 1 rank, same mask", 2, (const char *[]){"a", "b"}, (int[]){0, 0}, (int[]){5, 5},
           (int[]){6, 6});
    expect("uneven: one rank on 0-5, one on 4-7", 2, one, (int[]){0, 4}, (int[]){5, 7}, (int[]){3, 2});
    /* the real mask: at least one core, and the call works */
    unsigned char *mine = calloc(1, eff_threads_mask_bytes());
    T_CHECK(&ts, eff_threads_mask(mine) == 0, "sched_getaffinity failed");
    char why[300];
    const char *h[] = {"here"};
    const int n = eff_threads_auto(0, 1, h, mine, eff_threads_mask_bytes(), why, sizeof why);
    T_CHECK(&ts, n >= 1, "this process: %d threads (%s)", n, why);
    printf("this process alone: %d (%s)\n", n, why);
    free(mine);
    return t_finish(&ts, "test_threads");
}
