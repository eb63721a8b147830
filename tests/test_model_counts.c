/* test_model_counts.c: parameter, conv and block counts of B0-B7 against the
 * numbers the seed's PyTorch module gives for 10 classes (issue 2), the seed's
 * rounding helpers on hand-computed values, and the fixed dropout schedule;
 * the torchvision variant's counts at 1000 and 10 classes against
 * torchvision 0.14.1's efficientnet_bN, its keys, BN constants and
 * stochastic-depth schedule (tests/check_counts_vs_pytorch.sh asks
 * torchvision itself). */
#include "model.h"
#include "test_util.h"

#include <string.h>

/* torchvision.models.efficientnet_bN(num_classes=K): sum(p.numel() for p in m.parameters()), 0.14.1 */
static void check_torchvision(TestState *ts) {
    static const size_t p1000[8] = {5288548, 7794184, 9109994, 12233232, 19341616, 30389784, 43040704, 66347960};
    static const size_t p10[8] = {4020358, 6525994, 7715084, 10711602, 17566546, 28361274, 40758754, 63812570};
    static const int convs[8] = {81, 115, 115, 130, 160, 194, 224, 273}, heads[8] = {1280, 1280, 1408, 1536, 1792, 2048, 2304, 2560};
    for (int b = 0; b < 8; b++)
        for (int k = 0; k < 2; k++) {
            char name[32];
            snprintf(name, sizeof name, "efficientnet-b%d", b);
            EffModelSpec spec;
            T_CHECK(ts, eff_model_spec(name, &spec) && eff_model_spec_set_variant(&spec, "torchvision"), "no %s", name);
            EffModel m;
            eff_model_build_tables(&m, &spec, k ? 10 : 1000);
            size_t n = 0;
            for (int i = 0; i < m.ptab.count; i++) n += m.ptab.views[i].numel;
            const size_t want = k ? p10[b] : p1000[b];
            T_CHECK(ts, n == want, "torchvision %s, %d classes: %zu params, want %zu", name, m.classes, n, want);
            T_CHECK(ts, m.nconvs == convs[b] && m.head_c == heads[b], "torchvision %s: %d convs (want %d), head %d "
                    "(want %d)", name, m.nconvs, convs[b], m.head_c, heads[b]);
            /* partial(nn.BatchNorm2d, eps=0.001, momentum=0.01) for B5-B7, nn.BatchNorm2d's defaults below */
            T_CHECK(ts, m.bn_eps == (b >= 5 ? 1e-3f : 1e-5f) && m.bn_momentum == (b >= 5 ? 0.01f : 0.1f),
                    "torchvision %s: BN eps %g momentum %g", name, m.bn_eps, m.bn_momentum);
            /* stochastic_depth_prob 0.2 x block_id / total, applied on the residual blocks only; no block dropout */
            for (int i = 0; i < m.nblocks; i++) {
                const float want_sd = m.blk[i].residual ? (float)(0.2 * i / m.nblocks) : 0.0f;
                T_CHECK(ts, m.blk[i].sd == want_sd && m.blk[i].drop == 0.0f, "torchvision %s block %d: stochastic "
                        "depth %g (want %g), dropout %g", name, i, m.blk[i].sd, want_sd, m.blk[i].drop);
                T_CHECK(ts, m.blk[i].cse == (m.blk[i].cin / 4 > 1 ? m.blk[i].cin / 4 : 1), "torchvision %s block %d: "
                        "SE squeeze %d, want max(1, %d // 4)", name, i, m.blk[i].cse, m.blk[i].cin);
            }
            if (k) printf("  torchvision %s: %zu params at 1000 classes, %zu at 10, %d convs, head %d, BN eps %g\n",
                          name, p1000[b], n, m.nconvs, m.head_c, m.bn_eps);
            eff_model_destroy(&m);
        }
    /* state_dict keys, in torchvision's module order (B0: the first block has no expand layer) */
    EffModelSpec spec;
    eff_model_spec("b0", &spec);
    eff_model_spec_set_variant(&spec, "torchvision");
    EffModel m;
    eff_model_build_tables(&m, &spec, 1000);
    const char *keys[] = {"features.0.0.weight", "features.0.1.weight", "features.1.0.block.0.0.weight",
                          "features.1.0.block.1.fc1.bias", "features.1.0.block.2.0.weight",
                          "features.2.0.block.0.0.weight", "features.2.0.block.2.fc2.bias",
                          "features.7.0.block.3.1.bias", "features.8.0.weight", "classifier.1.weight"};
    int last = -1;
    for (int i = 0; i < 10; i++) {
        const EffView *v = eff_table_find(&m.ptab, keys[i]);
        T_CHECK(ts, v != NULL && (int)(v - m.ptab.views) > last, "torchvision key %s missing or out of order", keys[i]);
        if (v) last = (int)(v - m.ptab.views);
    }
    T_CHECK(ts, eff_table_find(&m.btab, "features.4.2.block.3.1.running_var") != NULL, "torchvision BN buffer missing");
    T_CHECK(ts, m.ptab.count == 213 && m.btab.count == 2 * 49, "torchvision B0: %d parameters and %d BN buffers, want "
            "213 and 98 (its state_dict: 360 keys with 49 num_batches_tracked)", m.ptab.count, m.btab.count);
    eff_model_destroy(&m);
}

int main(void) {
    TestState ts = {0};
    check_torchvision(&ts);
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
