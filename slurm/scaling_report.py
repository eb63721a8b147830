#!/usr/bin/python3
"""Turn scaling-study runs into a CSV, a Markdown table with efficiencies, and
PNG plots of throughput and efficiency against ranks.

    slurm/scaling_report.py STUDY_DIR [--out DIR] [--model comm_model.json]

STUDY_DIR holds one directory per run, named <weak|strong>-n<ranks>, each with
the metrics.jsonl that `effnet train` writes; the last "summary" line of each
is used. Efficiency: weak T1/TN (step times at fixed per-rank batch), strong
T1/(N*TN) where T is the time per global batch. matplotlib is optional: without
it the CSV and Markdown are still written and a message says why no PNG.

With an alpha-beta model (--model, or STUDY_DIR/comm_model.json; written by
slurm/comm_model.py from bench-comm sweeps over the same link) each row also
gets the model's all-reduce time per step (the trainer's call: gradients, BN
statistics and the loss, three all-reduces of allreduce_bytes_per_step in
all), measured/model, and two efficiencies beside the measured one, both from
the 1-rank run's times (T1, and compute C1 and optimizer O1 for strong
scaling) with only the all-reduce changed:
  predicted:                weak T1/(T1 + A),  strong T1/(N (C1/N + O1 + A)),  A = the model's time
  from measured all-reduce: the same with A = the run's measured all-reduce.
The second uses only the communication column, which oversubscribed nodes
(more ranks than cores) leave trustworthy, unlike compute."""
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


def load_model(path):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import comm_model  # noqa: E402  (slurm/comm_model.py: the model's formula)
    m = json.load(open(path))
    call = m.get("trainer_call")
    if call not in m.get("calls", {}):
        sys.exit(f"scaling_report: {path} has no fit for the trainer's call '{call}'")
    c = m["calls"][call]

    def allreduce_ms(n, nbytes):
        if n < 2:
            return 0.0
        return 1e3 * comm_model.model_time_s(c["form"], c["alpha_us"] * 1e-6, c["bandwidth_gbs"] * 1e9, n, nbytes,
                                             calls=3)
    return m, allreduce_ms


def add_model(rows, allreduce_ms):
    for mode in ("weak", "strong"):
        rs = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["ranks"])
        if not rs or rs[0]["ranks"] != 1:
            continue  # the predictions start from a 1-rank run
        t1, c1, o1 = rs[0]["step_ms"], rs[0]["compute_ms"], rs[0]["optimizer_ms"]
        for r in rs:
            n = r["ranks"]
            r["model_allreduce_ms"] = a = allreduce_ms(n, r["allreduce_bytes_per_step"])
            r["allreduce_vs_model"] = r["allreduce_ms"] / a if a > 0 else float("nan")
            meas = r["allreduce_ms"] if n > 1 else 0.0
            if mode == "weak":
                r["efficiency_model"] = t1 / (t1 + a)
                r["efficiency_measured_allreduce"] = t1 / (t1 + meas)
            else:
                r["efficiency_model"] = t1 / (n * (c1 / n + o1 + a))
                r["efficiency_measured_allreduce"] = t1 / (n * (c1 / n + o1 + meas))
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
MODEL_COLS = ["model_allreduce_ms", "allreduce_vs_model", "efficiency_model", "efficiency_measured_allreduce"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("study")
    ap.add_argument("--out", default=None)
    ap.add_argument("--model", default=None, help="alpha-beta fit (slurm/comm_model.py --out); default "
                    "STUDY_DIR/comm_model.json when it exists")
    a = ap.parse_args()
    out = a.out or a.study
    os.makedirs(out, exist_ok=True)
    rows = efficiency(load(a.study))
    rows.sort(key=lambda r: (r["mode"], r["ranks"]))
    model_path = a.model or os.path.join(a.study, "comm_model.json")
    model = None
    if a.model or os.path.isfile(model_path):
        model, allreduce_ms = load_model(model_path)
        add_model(rows, allreduce_ms)
    cols = COLS + (MODEL_COLS if model else [])
    with open(os.path.join(out, "scaling.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    head = "| mode | ranks | global batch | img/s | img/s/rank | step ms | compute | wait | all-reduce | optimizer | MB/step | efficiency |"
    if model:
        head += " model all-reduce | measured / model | efficiency (model) | efficiency (measured all-reduce) |"
    md = [head, "|" + "---|" * (head.count("|") - 1)]
    na = lambda r, k, f: format(r[k], f) if k in r and r[k] == r[k] else "-"  # noqa: E731  (absent or NaN: "-")
    for r in rows:
        line = (f"| {r['mode']} | {r['ranks']} | {r['global_batch']:.0f} | {r['img_per_s']:.1f} | {r['img_per_s_per_rank']:.1f} | "
                f"{r['step_ms']:.1f} | {r['compute_ms']:.1f} | {r['wait_ms']:.1f} | {r['allreduce_ms']:.1f} | "
                f"{r['optimizer_ms']:.1f} | {r['allreduce_bytes_per_step'] / 1e6:.1f} | {r['efficiency']:.2f} |")
        if model:
            line += (f" {na(r, 'model_allreduce_ms', '.1f')} | {na(r, 'allreduce_vs_model', '.2f')} | "
                     f"{na(r, 'efficiency_model', '.2f')} | {na(r, 'efficiency_measured_allreduce', '.2f')} |")
        md.append(line)
    if model:
        c = model["calls"][model["trainer_call"]]
        md.append("")
        md.append(f"Model ({model.get('link') or 'link not named'}; {model['trainer_call']}): {c['form']}, "
                  f"alpha = {c['alpha_us']:.1f} us, B = {c['bandwidth_gbs']:.4f} GB/s; 3 all-reduces per step.")
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
        if model and all("efficiency_model" in r for r in rs):
            ax[1].plot(n, [r["efficiency_model"] for r in rs], mk[0] + ":", label=f"{mode}: alpha-beta model")
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
