#!/usr/bin/python3
"""Write a tiny CIFAR-10-format data set (official binary layout) for the
training tests: learnable, not random noise -- each class is a coloured
pattern plus noise, so a few steps of training lower the loss.
    make_tiny_data.py OUT_DIR RECORDS_PER_FILE"""
import os
import sys

import numpy as np

out, n = sys.argv[1], int(sys.argv[2])
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
yy, xx = np.mgrid[0:32, 0:32]


def records(count):
    labels = rng.integers(0, 10, count, dtype=np.uint8)
    recs = np.empty((count, 3073), np.uint8)
    for i, c in enumerate(labels):
        base = np.stack([(np.sin(xx * (c + 1) / 5.0) + 1) * 100,
                         (np.cos(yy * (c + 2) / 7.0) + 1) * 100,
                         np.full((32, 32), c * 25.0)])
        img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        recs[i, 0] = c
        recs[i, 1:] = img.reshape(-1)
    return recs


for k in range(1, 6):
    records(n).tofile(os.path.join(out, f"data_batch_{k}.bin"))
records(n).tofile(os.path.join(out, "test_batch.bin"))
with open(os.path.join(out, "batches.meta.txt"), "w") as f:
    f.write("\n".join(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]) + "\n")
