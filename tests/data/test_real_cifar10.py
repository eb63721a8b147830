#!/usr/bin/python3
"""The real CIFAR-10, when CIFAR10_DIR points at the binary version
(/work/shared/data/prepare_cifar10.sh DIR makes it); skipped (exit 77) otherwise.

Converts the full copy into 4 train shards, then checks: 5,000 train and
1,000 test images per class; every pixel and label in the shards equals the
binary input (decoded independently with numpy); the C reader loads both
splits with SHA-256 verification and counts the same classes.

usage: test_real_cifar10.py CIFAR10_TO_H5 EFFNET_DATA_CHECK
"""
import os
import subprocess
import sys
import tempfile
import time

CONV, CHECK = sys.argv[1], sys.argv[2]
src = os.environ.get("CIFAR10_DIR", "")
if not src:
    print("SKIP: CIFAR10_DIR is not set; set it to a directory made by "
          "/work/shared/data/prepare_cifar10.sh DIR (the CIFAR-10 binary version) to run this test")
    sys.exit(77)
if not os.path.isfile(os.path.join(src, "test_batch.bin")):
    print(f"FAIL: CIFAR10_DIR={src} has no test_batch.bin", file=sys.stderr)
    sys.exit(1)

import h5py  # noqa: E402
import numpy as np  # noqa: E402

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


with tempfile.TemporaryDirectory() as t:
    out = os.path.join(t, "cifar10-h5")
    t0 = time.time()
    res = subprocess.run([CONV, "--input", src, "--output", out, "--shards", "4"], capture_output=True, text=True)
    dt = time.time() - t0
    print(res.stderr.strip())
    check(res.returncode == 0, f"conversion failed: {res.stderr}")
    print(f"full conversion: {dt:.2f} s")
    for split, files, per_class in (("train", [f"data_batch_{i}.bin" for i in range(1, 6)], 5000),
                                    ("test", ["test_batch.bin"], 1000)):
        raw = np.concatenate([np.fromfile(os.path.join(src, f), np.uint8).reshape(-1, 3073) for f in files])
        want_x = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        want_y = raw[:, 0]
        names = sorted(n for n in os.listdir(out) if n.startswith(split + "-"))
        xs, ys = [], []
        for n in names:
            with h5py.File(os.path.join(out, n), "r") as f:
                xs.append(f["images"][()])
                ys.append(f["labels"][()])
        x, y = np.concatenate(xs), np.concatenate(ys)
        counts = np.bincount(y, minlength=10)
        check(len(y) == 10 * per_class and (counts == per_class).all(), f"{split}: class counts {counts.tolist()}")
        check(x.shape == want_x.shape and np.array_equal(x, want_x), f"{split}: pixels differ from the binary input")
        check(np.array_equal(y, want_y), f"{split}: labels differ from the binary input")
        print(f"  {split}: {len(y)} images, {per_class} per class, every pixel equal to {', '.join(files)}")
    res = subprocess.run([CHECK, os.path.join(out, "index.txt"), "--verify-sha256"], capture_output=True, text=True)
    check(res.returncode == 0, f"C reader: {res.stderr}")
    lines = res.stdout.split("\n")
    c_train = [l for l in lines if l.strip().startswith("class") and l.strip().endswith(" 5000")]
    c_test = [l for l in lines if l.strip().startswith("class") and l.strip().endswith(" 1000")]
    check(len(c_train) == 10 and len(c_test) == 10, f"C reader class counts:\n{res.stdout}")

if failures:
    sys.exit(1)
print("PASS: real CIFAR-10 converted and verified")
