/* test_exchange_table.c: every gradient-exchange transport's table is
 * complete (issue 27), as test_backend_table checks the op tables: the MPI
 * and the NCCL table (the latter is compiled in every build: without CUDA its
 * calls go to comm_nccl_stub.c), and eff_exchange_check itself refuses a
 * table with a required slot missing or the parameter-wait pair half set. */
#include "comm/exchange.h"
#include "test_util.h"

#include <stdio.h>
#include <string.h>

static void check_table(TestState *ts, const char *what, const EffExchangeOps *ops, int sharded_ok, int graphs) {
    char err[256] = "";
    T_CHECK(ts, eff_exchange_check(ops, err, sizeof err) == 0, "%s: %s", what, err);
    T_CHECK(ts, ops->grad_ready != NULL, "%s: no grad_ready: its buckets could not overlap backward", what);
    T_CHECK(ts, !sharded_ok || ops->gather_params != NULL, "%s: ZeRO-1 needs gather_params", what);
    T_CHECK(ts, !graphs == !ops->graph_hooks, "%s: graph_hooks %s", what, ops->graph_hooks ? "set" : "missing");
    printf("%s: complete (host-side parameter waits %s, progress %s, CUDA graph hooks %s)\n", what,
           ops->wait_params ? "yes" : "no", ops->progress ? "yes" : "no", ops->graph_hooks ? "yes" : "no");
}

/* The check must fail when a slot goes missing. */
static void check_refusals(TestState *ts) {
    char err[256];
    EffExchangeOps t = eff_exchange_mpi_ops;
    t.finish = NULL;
    T_CHECK(ts, eff_exchange_check(&t, err, sizeof err) != 0 && strstr(err, "'finish'"), "missing finish accepted");
    t = eff_exchange_mpi_ops;
    t.wait_params = NULL;
    T_CHECK(ts, eff_exchange_check(&t, err, sizeof err) != 0 && strstr(err, "'wait_params'"),
            "params_pending without wait_params accepted");
    t = eff_exchange_mpi_ops;
    t.gather_params = NULL;
    T_CHECK(ts, eff_exchange_check(&t, err, sizeof err) != 0 && strstr(err, "'gather_params'"),
            "parameter waits without gather_params accepted");
}

int main(void) {
    TestState ts = {0, 0};
    check_table(&ts, "MPI", &eff_exchange_mpi_ops, 1, 0);
    check_table(&ts, "NCCL", &eff_exchange_nccl_ops, 1, 1);
    check_refusals(&ts);
    return t_finish(&ts, "test_exchange_table");
}
