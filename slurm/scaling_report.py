#!/usr/bin/python3
"""Turn scaling-study runs into a CSV, a Markdown table with efficiencies, and
PNG plots of throughput and efficiency against ranks.

    slurm/scaling_report.py STUDY_DIR [--out DIR]

STUDY_DIR holds one directory per run, named <weak|strong>-n<ranks>, each with
the metrics.jsonl that `effnet train` writes; the last "summary" line of each
is used. Efficiency: weak T1/TN (step times at fixed per-rank batch), strong
T1/(N*TN) where T is the time per global batch. matplotlib is optional: without
it the CSV and Markdown are still written and a message says why no PNG."""
import argparse
import csv
import json
import os
import re
import sys


def load(study):
    rows = []
    for name in sorted(os.listdir(study)):
        m = re.fullmatch(r"(weak|strong)-n(\d+)", name)
        path = os.path.join(study, name, "metrics.jsonl")
        if not m or not os.path.isfile(path):
            continue
        summ = [json.loads(l) for l in open(path) if '"summary"' in l]
        if not summ:
            sys.exit(f"scaling_report: {path} has no summary line (did the run finish?)")
        s = summ[-1]
        if s["ranks"] != int(m.group(2)):
            sys.exit(f"scaling_report: {path}: ranks {s['ranks']} != directory name {name}")
        s["mode"] = m.group(1)
        rows.append(s)
    if not rows:
        sys.exit(f"scaling_report: no <weak|strong>-n<ranks>/metrics.jsonl under {study}")
    return rows


def efficiency(rows):
    for mode in ("weak", "strong"):
        rs = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["ranks"])
        if not rs:
            continue
        base = rs[0]
        for r in rs:
            n = r["ranks"] / base["ranks"]
            if mode == "weak":  # same work per rank: ideal step time is constant
                r["efficiency"] = base["step_ms"] / r["step_ms"]
            else:  # same global batch: ideal step time falls as 1/N
                r["efficiency"] = base["step_ms"] / (n * r["step_ms"])
    return rows


COLS = ["mode", "ranks", "global_batch", "batch_per_rank", "img_per_s", "img_per_s_per_rank", "step_ms",
        "compute_ms", "wait_ms", "allreduce_ms", "optimizer_ms", "allreduce_bytes_per_step", "efficiency"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("study")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    out = a.out or a.study
    os.makedirs(out, exist_ok=True)
    rows = efficiency(load(a.study))
    rows.sort(key=lambda r: (r["mode"], r["ranks"]))
    with open(os.path.join(out, "scaling.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    md = ["| mode | ranks | global batch | img/s | img/s/rank | step ms | compute | wait | all-reduce | optimizer | MB/step | efficiency |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['mode']} | {r['ranks']} | {r['global_batch']:.0f} | {r['img_per_s']:.1f} | {r['img_per_s_per_rank']:.1f} | "
                  f"{r['step_ms']:.1f} | {r['compute_ms']:.1f} | {r['wait_ms']:.1f} | {r['allreduce_ms']:.1f} | "
                  f"{r['optimizer_ms']:.1f} | {r['allreduce_bytes_per_step'] / 1e6:.1f} | {r['efficiency']:.2f} |")
    with open(os.path.join(out, "scaling.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("scaling_report: matplotlib missing (apt-get install python3-matplotlib): no PNG plots", file=sys.stderr)
        return
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for mode, mk in (("weak", "o-"), ("strong", "s-")):
        rs = [r for r in rows if r["mode"] == mode]
        if not rs:
            continue
        n = [r["ranks"] for r in rs]
        ax[0].plot(n, [r["img_per_s"] for r in rs], mk, label=f"{mode} scaling")
        ax[1].plot(n, [r["efficiency"] for r in rs], mk, label=f"{mode} scaling")
    ax[0].set(xlabel="ranks", ylabel="images/s (total)", title="Throughput")
    ax[1].set(xlabel="ranks", ylabel="efficiency", title="Parallel efficiency", ylim=(0, 1.1))
    for x in ax:
        x.grid(alpha=0.3)
        x.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "scaling.png"), dpi=100)
    print(f"scaling_report: wrote {out}/scaling.csv, scaling.md, scaling.png")


if __name__ == "__main__":
    main()
