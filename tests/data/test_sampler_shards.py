#!/usr/bin/python3
"""The samples a rank sees do not depend on the shard count: convert one
synthetic CIFAR-format input into 1, 2 and 3 shards and let test_sampler
compare the loaded data and every rank's batches.

usage: test_sampler_shards.py CIFAR10_TO_H5 TEST_SAMPLER
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

CONV, SAMPLER = sys.argv[1], sys.argv[2]
R = 100
with tempfile.TemporaryDirectory() as t:
    rng = np.random.default_rng(11)
    inp = os.path.join(t, "in")
    os.makedirs(inp)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rec = rng.integers(0, 256, (R, 3073), dtype=np.uint8)
        rec[:, 0] = rng.integers(0, 10, R)
        rec.tofile(os.path.join(inp, name))
    with open(os.path.join(inp, "batches.meta.txt"), "w") as f:
        f.write("\n".join("c%d" % i for i in range(10)) + "\n")
    idx = []
    for shards in (1, 2, 3):
        out = os.path.join(t, f"s{shards}")
        subprocess.run([CONV, "--input", inp, "--output", out, "--shards", str(shards), "--records-per-file", str(R),
                        "--chunk-images", "64", "--quiet"], check=True)
        idx.append(os.path.join(out, "index.txt"))
    sys.exit(subprocess.run([SAMPLER] + idx).returncode)
