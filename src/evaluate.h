/* evaluate.h: test-set evaluation (eval-mode BN, no dropout) over a loader,
 * returning local sums so MPI ranks can share the work and reduce. */
#ifndef EFFNET_EVALUATE_H
#define EFFNET_EVALUATE_H

#include "data/loader.h"
#include "model.h"

#include <stdint.h>

typedef struct EffEvalSums {
    double loss_sum; /* sum of per-sample cross-entropy */
    double correct;  /* argmax == label */
    double total;    /* real (non-padding) samples */
} EffEvalSums;

/* Run `steps` batches of L (a train == 0 loader) through m; accumulates into *s. */
void eff_evaluate(EffModel *m, eff_loader *L, int64_t steps, EffEvalSums *s);

#endif
