/* trace.h: output.trace -- a per-rank timeline in Chrome's trace event format
 * (JSON array), OUTPUT_DIR/trace-rankR.json, loadable in Perfetto or
 * chrome://tracing; slurm/trace_merge.py joins the ranks into one file with a
 * row per rank and host. Spans (B/E) on the main thread nest as the step does:
 * step > data wait, forward, backward, gradient reduction, optimizer; and
 * evaluation, checkpoint, signal. Each gradient bucket's all-reduce is an
 * async span (b/e) from its start to the test call that saw it complete.
 *
 * Timestamps are CLOCK_REALTIME microseconds, so ranks on NTP-synchronised
 * hosts line up. Events are buffered and written at each flush (once a step),
 * after which the file is complete, valid JSON: the closing bracket is
 * rewritten each time, so a run killed by a signal or a crash leaves a file
 * that parses, holding every step up to the last flush.
 *
 * Every function accepts NULL (tracing off) and then does nothing. */
#ifndef EFFNET_TRAIN_TRACE_H
#define EFFNET_TRAIN_TRACE_H

typedef struct EffTrace EffTrace;

EffTrace *eff_trace_open(const char *dir, int rank, const char *host);
void eff_trace_begin(EffTrace *t, const char *name);
void eff_trace_end(EffTrace *t, const char *name);
/* async span: phase 'b' (start) or 'e' (end) of item id in category cat */
void eff_trace_async(EffTrace *t, const char *cat, const char *name, int id, char phase);
void eff_trace_flush(EffTrace *t);
void eff_trace_close(EffTrace *t);

#endif
