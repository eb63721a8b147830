/* test_model_counts.c: parameter, conv and block counts of B0-B7 against the
 * numbers the seed's PyTorch module gives for 10 classes (issue 2), the seed's
 * rounding helpers on hand-computed values, and the fixed dropout schedule. */
#include "model.h"
#include "test_util.h"

#include <string.h>

int main(void) {
    TestState ts = {0};
    static const size_t params[8] = {7144458, 12051034, 14265114, 19984322, 33117346, 54070074, 78099114, 123220970};
    static const int convs[8] = {81, 115, 115, 130, 160, 194, 224, 273};
    static const int blocks[8] = {16, 23, 23, 26, 32, 39, 45, 55};
    for (int b = 0; b < 8; b++) {
        char name[32];
        snprintf(name, sizeof name, "efficientnet-b%d", b);
        EffModelSpec spec;
        T_CHECK(&ts, eff_model_spec(name, &spec), "unknown %s", name);
        EffModel m;
        eff_model_create(&m, eff_backend_cpu(), &spec, 10);
        size_t n = 0;
        for (int i = 0; i < m.ptab.count; i++) n += m.ptab.views[i].numel;
        T_CHECK(&ts, n == params[b], "%s: %zu params, want %zu", name, n, params[b]);
        T_CHECK(&ts, m.nconvs == convs[b], "%s: %d convs, want %d", name, m.nconvs, convs[b]);
        T_CHECK(&ts, m.nblocks == blocks[b], "%s: %d blocks, want %d", name, m.nblocks, blocks[b]);
        /* Fixed dropout schedule: rate * i / blocks_of_this_model, always < rate < 1. 1e-7 (~1-2 float ulps at
         * 0.2-0.5): measured difference 0 for B0-B7 (the same double expression rounded once to float, this CPU,
         * 2026-12-02); a schedule off by one block is rate / blocks >= 8.7e-3 off. */
        float last = m.blk[m.nblocks - 1].drop;
        T_CHECK(&ts, fabsf(last - (float)(spec.dropout * (m.nblocks - 1) / m.nblocks)) < 1e-7f && last < 1.0f,
                "%s: last block dropout %.4f", name, last);
        /* BN buffers: 2 per BN layer; parameter views are 64-byte aligned. */
        for (int i = 0; i < m.ptab.count; i++)
            T_CHECK(&ts, m.ptab.views[i].offset % 16 == 0, "%s: view %s misaligned", name, m.ptab.views[i].name);
        printf("  %s: %zu params, %d convs, %d blocks, last block dropout %.4f\n", name, n, m.nconvs, m.nblocks, last);
        eff_model_destroy(&m);
    }
    /* _round_filters by hand: 32*1.1 = 35.2 -> int(39.2)//8*8 = 32 (>= 0.9*35.2); 40*1.1 = 44 -> 48//8*8 = 48;
     * 16*1.4 = 22.4 -> 24; 1280*1.1 = 1408; 112*1.2 = 134.4 -> 136; tiny widths clamp to 8. */
    T_CHECK(&ts, eff_round_filters(32, 1.1) == 32, "round_filters(32, 1.1) = %d", eff_round_filters(32, 1.1));
    T_CHECK(&ts, eff_round_filters(40, 1.1) == 48, "round_filters(40, 1.1) = %d", eff_round_filters(40, 1.1));
    T_CHECK(&ts, eff_round_filters(16, 1.4) == 24, "round_filters(16, 1.4) = %d", eff_round_filters(16, 1.4));
    T_CHECK(&ts, eff_round_filters(1280, 1.1) == 1408, "round_filters(1280, 1.1) = %d", eff_round_filters(1280, 1.1));
    T_CHECK(&ts, eff_round_filters(112, 1.2) == 136, "round_filters(112, 1.2) = %d", eff_round_filters(112, 1.2));
    T_CHECK(&ts, eff_round_filters(4, 1.0) == 8, "round_filters(4, 1.0) = %d", eff_round_filters(4, 1.0));
    /* _round_repeats: ceil(1.1*2) = 3 (2.2000000000000002), ceil(3.1*1) = 4, ceil(1.0*3) = 3. */
    T_CHECK(&ts, eff_round_repeats(2, 1.1) == 3, "round_repeats(2, 1.1)");
    T_CHECK(&ts, eff_round_repeats(1, 3.1) == 4, "round_repeats(1, 3.1)");
    T_CHECK(&ts, eff_round_repeats(3, 1.0) == 3, "round_repeats(3, 1.0)");
    /* Names are PyTorch state_dict keys. */
    EffModelSpec spec;
    eff_model_spec("b0", &spec);
    EffModel m;
    eff_model_create(&m, eff_backend_cpu(), &spec, 10);
    const char *keys[] = {"stem.0.weight", "blocks.block_3.se.fc1.weight", "classifier.1.bias", "head.1.weight"};
    for (int i = 0; i < 4; i++) T_CHECK(&ts, eff_table_find(&m.ptab, keys[i]) != NULL, "missing parameter %s", keys[i]);
    T_CHECK(&ts, eff_table_find(&m.btab, "blocks.block_3.project_bn.running_var") != NULL, "missing BN buffer");
    T_CHECK(&ts, eff_table_find(&m.ptab, "blocks.block_0.expand_conv.weight") == NULL, "block 0 must not expand");
    eff_model_destroy(&m);
    return t_finish(&ts, "test_model_counts");
}
