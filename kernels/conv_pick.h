/* conv_pick.h: which of cuDNN's convolution algorithms the stem conv uses
 * (kernels/conv2d.cu), as plain host C so that the rule is unit-tested
 * without a GPU (tests/gpu/test_cuda_host.c).
 *
 * cuDNN's heuristics (cudnnGet*Algorithm_v7) list candidates fastest first.
 * A candidate is usable when it ran (status success) and the workspace that
 * cudnnGet*WorkspaceSize reports for it -- not the heuristic's own memory
 * estimate -- fits the cap. With determinism asked for, the first usable
 * deterministic candidate wins; when there is none (plausible for bf16/fp16
 * NHWC with 3 input channels) the fastest usable one is taken instead and
 * the caller warns: a run that stops is worse than last-bit differences in
 * the stem conv's gradients. Plain C99, also valid C++. */
#ifndef EFFNET_CONV_PICK_H
#define EFFNET_CONV_PICK_H

#include <stddef.h>

#define EFF_CONV_MAX_WORKSPACE ((size_t)256 << 20)

typedef struct EffAlgoCand {
    int algo;          /* the cudnnConvolution*Algo_t value */
    int ok;            /* status success, and its workspace size query succeeded */
    int deterministic; /* determinism == CUDNN_DETERMINISTIC */
    size_t workspace;  /* bytes, from cudnnGet*WorkspaceSize */
} EffAlgoCand;

/* Index of the chosen candidate, or -1 when none is usable. *fell_back = 1
 * when determinism was asked for but the choice is nondeterministic. */
static inline int eff_conv_pick(const EffAlgoCand *c, int n, int deterministic, size_t max_workspace,
                                int *fell_back) {
    int fastest = -1;
    *fell_back = 0;
    for (int i = 0; i < n; i++) {
        if (!c[i].ok || c[i].workspace > max_workspace) continue;
        if (fastest < 0) fastest = i;
        if (!deterministic || c[i].deterministic) return i;
    }
    if (fastest >= 0 && deterministic) *fell_back = 1;
    return fastest;
}

/* Which directions of the stem conv run a nondeterministic algorithm
 * (bits of eff_cuda_conv_algorithms' *flags). */
enum { EFF_CONV_NONDET_FWD = 1, EFF_CONV_NONDET_BWD_FILTER = 2, EFF_CONV_NONDET_BWD_DATA = 4 };

#ifdef __cplusplus
extern "C" {
#endif
struct EffBackend;
/* For a CUDA backend (backend_cuda.c): the stem conv algorithms its cached
 * plans chose so far, one line per plan into buf, naming each direction's
 * algorithm and whether cuDNN reports it deterministic; *flags gets the
 * EFF_CONV_NONDET_* bits. Returns the number of nondeterministic choices:
 * where it is not 0, results of that direction may differ run to run in the
 * last bits (test_cuda_graph then compares the stem with a bound). */
int eff_cuda_conv_algorithms(const struct EffBackend *be, char *buf, size_t n, int *flags);
#ifdef __cplusplus
}
#endif

#endif
