#!/usr/bin/python3
"""Test-accuracy and test-loss curves of training runs, from their metrics.jsonl.

    /usr/bin/python3 tests/bench/plot_curves.py OUT.png "LABEL=runs/a/metrics.jsonl" ... [--title T]

Each argument after OUT.png is LABEL=PATH (effnet's metrics.jsonl, or the
metrics file of tests/bench/train_pytorch.py: the same "eval" lines). Prints,
per run, the accuracy after each epoch, the best, and the summary line's
step time when there is one; writes the two plots side by side.
"""
import argparse
import json
import sys


def read_run(path):
    evals, summary = {}, None
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("type") == "eval":
                evals[int(rec["epoch"])] = (float(rec["accuracy"]), float(rec["loss"]))
            elif rec.get("type") == "summary":
                summary = rec
    if not evals:
        sys.exit(f"plot_curves.py: {path} has no \"eval\" lines (is it a metrics.jsonl of a run that evaluated?)")
    return evals, summary


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="the PNG to write")
    ap.add_argument("runs", nargs="+", help="LABEL=PATH to a metrics.jsonl")
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    runs = []
    for spec in a.runs:
        label, sep, path = spec.partition("=")
        if not sep or not path:
            sys.exit(f"plot_curves.py: '{spec}' is not LABEL=PATH")
        runs.append((label, *read_run(path)))
    for label, evals, summary in runs:
        best = max(evals, key=lambda e: evals[e][0])
        last = max(evals)
        print(f"{label}: {len(evals)} epochs; final {evals[last][0]:.2f}% (loss {evals[last][1]:.4f}); "
              f"best {evals[best][0]:.2f}% at epoch {best}"
              + (f"; step {summary['step_ms']:.1f} ms, {summary['img_per_s']:.1f} img/s" if summary else ""))
        print("  " + ", ".join(f"{e}: {evals[e][0]:.2f}" for e in sorted(evals)))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, evals, _ in runs:
        es = sorted(evals)
        ax[0].plot(es, [evals[e][0] for e in es], "o-", ms=3, label=label)
        ax[1].plot(es, [evals[e][1] for e in es], "o-", ms=3, label=label)
    ax[0].set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy")
    ax[1].set(xlabel="epoch", ylabel="test loss", title="test loss")
    for x in ax:
        x.grid(alpha=0.3)
        x.legend(fontsize=8)
    if a.title:
        fig.suptitle(a.title, fontsize=9)
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(f"plot_curves.py: wrote {a.out}")


if __name__ == "__main__":
    main()
