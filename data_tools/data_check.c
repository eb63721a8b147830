/* effnet-data-check: load a converted shard set the way training does and
 * print what it holds.
 *
 *   effnet-data-check INDEX [--split train|test|all] [--verify-sha256]
 *
 * Exits non-zero, naming the file, on any damage: a missing or resized shard,
 * a chunk that fails its Fletcher-32 checksum, wrong attributes or shapes, or
 * (with --verify-sha256) a file whose SHA-256 differs from the index. */
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "data/shard.h"

int main(int argc, char **argv) {
    const char *index = NULL, *split = "all";
    int flags = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--verify-sha256")) flags |= EFF_LOAD_VERIFY_SHA256;
        else if (!strcmp(argv[i], "--split") && i + 1 < argc) split = argv[++i];
        else if (argv[i][0] != '-' && !index) index = argv[i];
        else {
            fprintf(stderr, "usage: effnet-data-check INDEX [--split train|test|all] [--verify-sha256]\n");
            return 2;
        }
    }
    if (!index) {
        fprintf(stderr, "usage: effnet-data-check INDEX [--split train|test|all] [--verify-sha256]\n");
        return 2;
    }
    EFF_CHECK(!strcmp(split, "all") || eff_split_id(split) >= 0, "unknown --split '%s'\nHINT: use train, test or all", split);
    const char *splits[2] = {"train", "test"};
    for (int s = 0; s < 2; s++) {
        if (strcmp(split, "all") && strcmp(split, splits[s])) continue;
        eff_dataset ds;
        double t0 = eff_time();
        eff_dataset_load_or_die(index, splits[s], flags, &ds);
        long long *count = eff_calloc((size_t)ds.num_classes, sizeof *count, "class counts");
        for (int64_t i = 0; i < ds.n; i++) count[ds.labels[i]]++;
        if (ds.offsets)
            printf("%s: %lld images of their own sizes (ragged, %lld pixel bytes) in %d shard(s), %s, loaded in "
                   "%.2f s\n", splits[s], (long long)ds.n, (long long)ds.offsets[ds.n], ds.n_shards, ds.dataset,
                   eff_time() - t0);
        else
            printf("%s: %lld images %dx%dx%d in %d shard(s), loaded in %.2f s\n", splits[s], (long long)ds.n, ds.height,
                   ds.width, ds.channels, ds.n_shards, eff_time() - t0);
        printf("  train mean %.6f %.6f %.6f  std %.6f %.6f %.6f\n", ds.mean[0], ds.mean[1], ds.mean[2], ds.std[0],
               ds.std[1], ds.std[2]);
        for (int c = 0; c < ds.num_classes; c++) printf("  class %d %-12s %lld\n", c, ds.class_names[c], count[c]);
        eff_free(count);
        eff_dataset_free(&ds);
    }
    return 0;
}
