/* trace_overhead.c: the cost of output.trace per training step, measured
 * with the tracer itself: a step's worth of events (the spans the trainer
 * writes, 7 buckets' async start/end pairs) and the per-step flush, repeated.
 * Compare the printed microseconds per step with a step's time
 * (docs/PERFORMANCE.md). Usage: trace_overhead [STEPS] [DIR] */
#define _POSIX_C_SOURCE 200809L
#include "common.h"
#include "train/trace.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    const int steps = argc > 1 ? atoi(argv[1]) : 20000;
    const char *dir = argc > 2 ? argv[2] : "/tmp";
    static const char *const spans[] = {"data wait", "forward", "backward", "gradient reduction", "optimizer"};
    EffTrace *t = eff_trace_open(dir, 0, "bench");
    const double t0 = eff_time();
    for (int s = 0; s < steps; s++) {
        eff_trace_begin(t, "step");
        for (int k = 0; k < 5; k++) {
            eff_trace_begin(t, spans[k]);
            if (k == 2)
                for (int b = 0; b < 7; b++) eff_trace_async(t, "comm", "gradient bucket all-reduce", b, 'b');
            eff_trace_end(t, spans[k]);
        }
        for (int b = 0; b < 7; b++) eff_trace_async(t, "comm", "gradient bucket all-reduce", b, 'e');
        eff_trace_end(t, "step");
        eff_trace_flush(t);
    }
    const double us = 1e6 * (eff_time() - t0) / steps;
    eff_trace_close(t);
    printf("trace_overhead: %d steps of 26 events + a flush: %.2f us per step (%s/trace-rank0.json)\n", steps, us, dir);
    return 0;
}
