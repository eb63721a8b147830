#!/usr/bin/env python3
"""compare_runs.py REF_DIR RESUMED_DIR FIRST LAST TOL

Checks a resumed run against an uninterrupted one (both with
debug.dump_indices = 1 and output.log_interval = 1):
  - the global sample order of every step (the indices-rank*.txt lines of all
    ranks, sorted by (epoch, step, micro-batch index k)) is identical, and no
    sample repeats within an epoch;
  - the loss of steps FIRST..LAST (metrics.jsonl "train" rows) agrees within
    relative TOL. Prints the worst relative difference."""
import collections
import glob
import json
import sys


def order(d):
    steps = collections.defaultdict(list)
    for f in glob.glob(f"{d}/indices-rank*.txt"):
        for line in open(f):
            v = [int(x) for x in line.split()]
            steps[(v[0], v[1])].append((v[2], v[3:]))
    out = {}
    for key, parts in steps.items():
        ks = sorted(k for k, _ in parts)
        assert ks == list(range(len(ks))), f"{d}: step {key}: micro-batches {ks} (missing or repeated)"
        out[key] = [i for _, idx in sorted(parts) for i in idx]
    return out


def losses(d):
    return {r["step"]: r["loss"] for r in map(json.loads, open(f"{d}/metrics.jsonl")) if r["type"] == "train"}


ref, res, first, last, tol = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
a, b = order(ref), order(res)
assert a.keys() == b.keys(), f"steps differ: {sorted(set(a) ^ set(b))}"
assert a == b, "sample order differs at steps " + str([k for k in sorted(a) if a[k] != b[k]][:5])
epochs = collections.defaultdict(list)
for (e, _), idx in b.items():
    epochs[e] += idx
for e, idx in epochs.items():
    assert len(idx) == len(set(idx)), f"epoch {e}: {len(idx) - len(set(idx))} samples repeated"
la, lb = losses(ref), losses(res)
worst, at = 0.0, None
for s in range(first, last + 1):
    d = abs(la[s] - lb[s]) / abs(la[s])
    if d >= worst:
        worst, at = d, s
print(f"{len(a)} steps: sample order identical; loss of steps {first}-{last}: worst relative difference "
      f"{worst:.2e} (step {at}), tolerance {tol:g}")
sys.exit(0 if worst <= tol else 1)
