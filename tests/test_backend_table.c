/* test_backend_table.c: every backend's op table is complete (issue 12).
 * Each slot that EFF_BACKEND_OPS (src/backend/backend.h) marks required must be
 * non-NULL, and the optional step-capture and fused-forward groups must each
 * be all set or all NULL.
 * The CUDA table is checked without a device (eff_backend_cuda_ops) whenever
 * this build has the CUDA backend, so a missing CUDA entry fails here, on a
 * machine without a GPU, rather than as a NULL call on the first GPU node.
 * backend.h's static asserts make sure the list covers every slot. */
#include "backend/backend.h"
#include "test_util.h"

#include <stdio.h>

static void check_table(TestState *ts, const char *what, const EffBackend *be) {
    int graph_set = 0, graph_n = 0, fused_set = 0, fused_n = 0, slots = 0;
    T_CHECK(ts, be->name != NULL, "%s: name is NULL", what);
    T_CHECK(ts, be->precision == EFF_PREC_FP32 || be->precision == EFF_PREC_BF16 || be->precision == EFF_PREC_FP16,
            "%s: precision %d unknown", what, (int)be->precision);
    T_CHECK(ts, be->act_size == (be->precision == EFF_PREC_FP32 ? 4u : 2u), "%s: act_size %zu for %s", what,
            be->act_size, eff_precision_name(be->precision));
    T_CHECK(ts, be->needs_im2col == 0 || be->needs_im2col == 1, "%s: needs_im2col = %d", what, be->needs_im2col);
#define REQ(op) slots++; T_CHECK(ts, be->op != NULL, "%s: required op %s is NULL", what, #op);
#define GRAPH(op) slots++; graph_n++; graph_set += be->op != NULL;
#define FUSED(op) slots++; fused_n++; fused_set += be->op != NULL;
    EFF_BACKEND_OPS(REQ, GRAPH, FUSED)
#undef REQ
#undef GRAPH
#undef FUSED
    T_CHECK(ts, graph_set == 0 || graph_set == graph_n,
            "%s: %d of the %d graph_* ops are set: a backend has all of them or none", what, graph_set, graph_n);
    T_CHECK(ts, fused_set == 0 || fused_set == fused_n,
            "%s: %d of the %d fused ops are set: a backend has all of them or none", what, fused_set, fused_n);
    T_CHECK(ts, slots == EFF_BACKEND_NOPS, "%s: %d slots visited, %d listed", what, slots, (int)EFF_BACKEND_NOPS);
    printf("%s: %d op slots checked, step capture %s, fused train forward %s\n", what, slots,
           graph_set ? "present" : "absent", fused_set ? "present" : "absent");
}

int main(void) {
    TestState ts = {0, 0};
    check_table(&ts, "cpu", eff_backend_cpu());
    const EffBackend *cuda = eff_backend_cuda_ops();
    if (eff_cuda_available()) {
        T_CHECK(&ts, cuda != NULL, "cuda: built with CUDA but eff_backend_cuda_ops() is NULL");
        if (cuda) check_table(&ts, "cuda", cuda);
    } else {
        T_CHECK(&ts, cuda == NULL, "cuda: a table in a build without CUDA");
        printf("cuda: not in this build, not checked\n");
    }
    return t_finish(&ts, "backend_table");
}
