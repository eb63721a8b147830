#!/usr/bin/python3
"""Join effnet's per-rank timelines (output.trace: OUTPUT_DIR/trace-rankR.json)
into one Chrome trace with a row per rank and host, for Perfetto or
chrome://tracing; --check validates them; --png draws a few steps as a Gantt
chart (one row per rank).

    trace_merge.py RUN_DIR [-o RUN_DIR/trace.json] [--check] [--png FILE --steps 3]

--check verifies, per file and merged: every event's phase is one effnet
writes (M, B, E, b, e); B/E pairs balance and nest per thread, each span
inside the parent the step gives it; async b/e pairs balance per id;
timestamps never go backwards within a thread; each file holds one pid, its
rank. Exit 1 with the first violation.
"""
import argparse
import glob
import json
import os
import re
import sys

PHASES = {"M", "B", "E", "b", "e"}
# span -> the spans it may sit in (None: top level)
PARENTS = {
    "step": {None},
    "data wait": {"step"}, "forward": {"step"}, "backward": {"step"},
    "forward+backward (CUDA graph)": {"step"},
    "gradient reduction": {"step"}, "optimizer": {"step"}, "parameter all-gather": {"step", "forward", "checkpoint", None},
    "evaluation": {None}, "checkpoint": {None, "signal: checkpoint"}, "signal: checkpoint": {None},
}


def load_rank_files(run_dir):
    files = sorted(glob.glob(os.path.join(run_dir, "trace-rank*.json")),
                   key=lambda p: int(re.search(r"rank(\d+)", p).group(1)))
    if not files:
        sys.exit(f"trace_merge: no trace-rank*.json in {run_dir} (run with --set output.trace=true)")
    return [(int(re.search(r"rank(\d+)", f).group(1)), f, json.load(open(f))) for f in files]


def check(events, where):
    """Raise ValueError at the first violation."""
    stacks, last_ts, open_async = {}, {}, {}
    for i, e in enumerate(events):
        ph = e.get("ph")
        if ph not in PHASES:
            raise ValueError(f"{where}: event {i}: phase {ph!r} is not one of {sorted(PHASES)}")
        if ph == "M":
            continue
        key = (e["pid"], e["tid"])
        if e["ts"] < last_ts.get(key, float("-inf")):
            raise ValueError(f"{where}: event {i} ({e['name']}): time goes backwards on pid {key[0]} tid {key[1]}")
        last_ts[key] = e["ts"]
        if ph in "be":
            akey = (e["pid"], e.get("cat"), e["id"])
            if ph == "b":
                if akey in open_async:
                    raise ValueError(f"{where}: event {i}: async {e['name']} id {e['id']} started twice")
                open_async[akey] = e
            elif open_async.pop(akey, None) is None:
                raise ValueError(f"{where}: event {i}: async {e['name']} id {e['id']} ends without a start")
            continue
        stack = stacks.setdefault(key, [])
        if ph == "B":
            parent = stack[-1] if stack else None
            if parent not in PARENTS.get(e["name"], {parent}):
                raise ValueError(f"{where}: event {i}: span {e['name']!r} inside {parent!r}; "
                                 f"expected inside one of {sorted(map(str, PARENTS[e['name']]))}")
            stack.append(e["name"])
        else:
            if not stack or stack[-1] != e["name"]:
                raise ValueError(f"{where}: event {i}: end of {e['name']!r} but the open span is "
                                 f"{stack[-1] if stack else None!r}")
            stack.pop()
    unclosed = {k: v for k, v in stacks.items() if v}
    if unclosed or open_async:
        raise ValueError(f"{where}: unbalanced at the end: open spans {unclosed}, open async {list(open_async)[:5]}")


def gantt(events, path, steps):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colors = {"data wait": "#bbbbbb", "forward": "#4c72b0", "backward": "#55a868", "gradient reduction": "#c44e52",
              "optimizer": "#8172b2", "parameter all-gather": "#937860", "comm": "#dd8452"}
    names = {e["pid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e["name"] == "process_name"}
    pids = sorted(names)
    t_first = {p: [e["ts"] for e in events if e.get("pid") == p and e.get("ph") == "B" and e["name"] == "step"]
               for p in pids}
    starts = sorted(t_first[pids[0]])
    t0, t1 = starts[1], starts[min(1 + steps, len(starts) - 1)]  # skip the first step (warm-up)
    fig, ax = plt.subplots(figsize=(12, 1.4 + 1.0 * len(pids)))
    for row, p in enumerate(pids):
        open_b, open_a = {}, {}
        for e in (x for x in events if x.get("pid") == p and x.get("ph") in "BEbe"):
            if e["ph"] == "B":
                open_b[e["name"]] = e["ts"]
            elif e["ph"] == "E" and e["name"] in colors:
                s = open_b.pop(e["name"])
                if s >= t0 and e["ts"] <= t1:
                    ax.barh(row + 0.15, (e["ts"] - s) / 1e3, left=(s - t0) / 1e3, height=0.5, color=colors[e["name"]])
            elif e["ph"] == "b":
                open_a[e["id"]] = e["ts"]
            elif e["ph"] == "e" and e["id"] in open_a:
                s = open_a.pop(e["id"])
                if s >= t0 and e["ts"] <= t1:
                    ax.barh(row - 0.3, (e["ts"] - s) / 1e3, left=(s - t0) / 1e3, height=0.25, color=colors["comm"],
                            alpha=0.6, edgecolor="k", linewidth=0.3)
    ax.set_yticks(range(len(pids)), [names[p] for p in pids])
    ax.invert_yaxis()
    ax.set_xlabel("ms")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
    ax.legend(handles, [k if k != "comm" else "bucket all-reduce in flight" for k in colors],
              fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"effnet train: {steps} steps, one row per rank")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("-o", "--output")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--png")
    ap.add_argument("--steps", type=int, default=3)
    a = ap.parse_args()
    ranks = load_rank_files(a.run_dir)
    merged = []
    try:
        for rank, path, events in ranks:
            pids = {e["pid"] for e in events}
            if a.check and pids != {rank}:
                raise ValueError(f"{path}: pids {sorted(pids)}, expected only {rank}")
            if a.check:
                check(events, path)
            merged += events
        if a.check and len({e["pid"] for e in merged}) != len(ranks):
            raise ValueError("merged: not one pid per rank")
    except ValueError as err:
        sys.exit(f"trace_merge: FAIL: {err}")
    out = a.output or os.path.join(a.run_dir, "trace.json")
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(merged, f)
    os.replace(tmp, out)
    n_steps = sum(1 for e in merged if e.get("ph") == "B" and e["name"] == "step")
    print(f"trace_merge: {len(ranks)} ranks, {len(merged)} events, {n_steps} step spans -> {out}"
          + ("; checked: valid" if a.check else ""))
    if a.png:
        gantt(merged, a.png, a.steps)
        print(f"trace_merge: {a.png}")


if __name__ == "__main__":
    main()
