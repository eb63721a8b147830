#!/usr/bin/python3
"""The scaling report on the committed example runs (docs/scaling-example):
it must reproduce the committed table, and its efficiencies must equal
T1/TN (weak) and T1/(N*TN) (strong) recomputed here from the raw summaries.
    test_scaling_report.py SRC_DIR WORK_DIR"""
import csv
import json
import os
import shutil
import subprocess
import sys

src, work = sys.argv[1], sys.argv[2]
example = os.path.join(src, "docs", "scaling-example")
out = os.path.join(work, "scaling-report-test")
shutil.rmtree(out, ignore_errors=True)
r = subprocess.run([sys.executable, os.path.join(src, "slurm", "scaling_report.py"), example, "--out", out],
                   capture_output=True, text=True)
assert r.returncode == 0, r.stderr
rows = list(csv.DictReader(open(os.path.join(out, "scaling.csv"))))
assert len(rows) == 4, rows
step = {}
for mode in ("weak", "strong"):
    for n in (1, 2):
        s = [json.loads(l) for l in open(os.path.join(example, f"{mode}-n{n}", "metrics.jsonl")) if '"summary"' in l][-1]
        step[mode, n] = s["step_ms"]
for row in rows:
    mode, n, eff = row["mode"], int(row["ranks"]), float(row["efficiency"])
    want = step[mode, 1] / step[mode, n] if mode == "weak" else step[mode, 1] / (n * step[mode, n])
    assert abs(eff - want) < 1e-9, (row, want)
    print(f"{mode} n={n}: efficiency {eff:.3f} (recomputed {want:.3f})")
assert open(os.path.join(out, "scaling.md")).read() == open(os.path.join(example, "scaling.md")).read(), \
    "report differs from the committed docs/scaling-example/scaling.md"
try:
    import matplotlib  # noqa: F401
    assert os.path.getsize(os.path.join(out, "scaling.png")) > 1000, "no PNG"
except ImportError:
    print("matplotlib missing: PNG not checked")
# a run directory without a summary line is an error, not a silent skip
bad = os.path.join(work, "scaling-report-bad")
shutil.rmtree(bad, ignore_errors=True)
os.makedirs(os.path.join(bad, "weak-n1"))
open(os.path.join(bad, "weak-n1", "metrics.jsonl"), "w").write('{"type": "train", "step": 1}\n')
r = subprocess.run([sys.executable, os.path.join(src, "slurm", "scaling_report.py"), bad], capture_output=True, text=True)
assert r.returncode != 0 and "no summary line" in (r.stderr + r.stdout), r
print("scaling report: OK")
