/* exchange.c: the completeness check of a transport's table (exchange.h). */
#include "comm/exchange.h"

#include <stdio.h>

int eff_exchange_check(const EffExchangeOps *ops, char *err, size_t errlen) {
    const char *missing = !ops->begin ? "begin" : !ops->finish ? "finish" : !ops->average ? "average"
                        : !ops->destroy ? "destroy" : NULL;
    if (!missing && !ops->params_pending != !ops->wait_params) missing = ops->params_pending ? "wait_params"
                                                                                            : "params_pending";
    if (!missing && ops->params_pending && !ops->gather_params) missing = "gather_params";
    if (missing) {
        snprintf(err, errlen, "gradient exchange table: '%s' is missing (src/comm/exchange.h lists what a transport "
                 "provides)", missing);
        return -1;
    }
    return 0;
}

void eff_exchange_destroy(EffExchange *x) {
    if (x) x->ops->destroy(x);
}
