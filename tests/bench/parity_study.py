#!/usr/bin/python3
"""Accuracy parity of effnet with PyTorch, with statistics (issue 14, part 2).

Runs from the README's built tree (build/effnet, after `cmake --build build`):

    /usr/bin/python3 tests/bench/parity_study.py [--seeds 1,2,3] [--epochs 3] [--long]
    /usr/bin/python3 tests/bench/parity_study.py --report-only     # tables and plot from saved JSON lines

In this order (each run skipped when its results already exist, so a killed
study continues where it stopped; an interrupted effnet run resumes from its
last.h5, a PyTorch run from its per-epoch checkpoint):
  1. effnet, one run per seed: `mpirun -np 2 build/effnet train --config configs/cpu-b0-32.ini
     --set train.seed=S ...` (the seed's recipe: Adam 1e-3, wd 1e-4, 2 ranks x 32, 3 epochs)
  2. PyTorch, one run per seed: `tests/bench/train_pytorch.py --channels-last --threads 2 --seed S`
     (the same recipe, one process, batch 64)
  3. with --long: effnet with configs/cpu-b0-32-long.ini (30 epochs, cosine with warmup)
  4. with --long: PyTorch with the same epochs, lr, schedule, warmup and min_lr, read from that config
     (--pytorch-augment batched: the same augmentation on whole batches, 155-180 s per epoch alone here)
  --long-ranks 1 runs effnet's long run as one process x 64 (BN over 64 images, as PyTorch's one
  process has it) into effnet-long-1x64 instead of the config's 2 ranks x 32
Then the report: --docs (default docs/parity/) gets parity.md (per epoch mean and
standard deviation of the test accuracy per framework, and the parity test: is
|mean_effnet - mean_pytorch| <= 2 SE, SE = sqrt(s1^2/n1 + s2^2/n2)), runs/<run>/
with each run's raw JSON lines, and long-run.png (the long-run test-accuracy
curves side by side).

Data: CIFAR-10 binary files from --cifar, else $CIFAR10_DIR, else made by
../shared/data/prepare_cifar10.sh into data/cifar-10-batches-bin; HDF5 shards
from --h5, else $EFFNET_H5_DIR, else data/cifar10-h5 (converted with
build/data_tools/cifar10-to-h5 when missing). Run the whole study under
`nice -n 19` on a shared machine; every child inherits it.
"""
import argparse
import configparser
import datetime
import json
import math
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PY = "/usr/bin/python3"


def log(msg):
    print(f"[{datetime.datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def now_iso():
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


# ---------------------------------------------------------------- data

def cifar_dir(a):
    d = a.cifar or os.environ.get("CIFAR10_DIR")
    if d:
        if not os.path.isfile(os.path.join(d, "test_batch.bin")):
            sys.exit(f"parity_study: {d} has no test_batch.bin (CIFAR-10 binary layout expected)")
        return os.path.abspath(d)
    prep = os.path.join(ROOT, "..", "shared", "data", "prepare_cifar10.sh")
    if not os.path.exists(prep):
        sys.exit("parity_study: no CIFAR-10: pass --cifar DIR or set CIFAR10_DIR (official binary layout)")
    out = os.path.join(ROOT, "data", "cifar-10-batches-bin")
    log(f"data: {prep} {out}")
    return subprocess.run(["bash", prep, out], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]


def h5_dir(a, cifar):
    d = os.path.abspath(a.h5 or os.environ.get("EFFNET_H5_DIR") or os.path.join(ROOT, "data", "cifar10-h5"))
    if not os.path.isfile(os.path.join(d, "index.txt")):
        conv = os.path.join(a.build, "data_tools", "cifar10-to-h5")
        log(f"data: converting {cifar} to HDF5 shards in {d}")
        subprocess.run([conv, "--input", cifar, "--output", d, "--shards", "4"], check=True)
    return d


# ---------------------------------------------------------------- runs

def read_jsonl(path):
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass  # a line cut by a kill
    return rows


def accuracies(framework, metrics_path):
    """{epoch: test accuracy (%)} from a run's JSON lines; a repeated epoch (a
    resume after a kill between the evaluation and the checkpoint) keeps the last."""
    acc = {}
    for r in read_jsonl(metrics_path):
        if framework == "effnet" and r.get("type") != "eval":
            continue
        if "accuracy" in r and "epoch" in r:
            acc[int(r["epoch"])] = float(r["accuracy"])
    return acc


def test_losses(framework, metrics_path):
    out = {}
    for r in read_jsonl(metrics_path):
        if framework == "effnet" and r.get("type") != "eval":
            continue
        if "epoch" in r and ("loss" in r or "test_loss" in r):
            out[int(r["epoch"])] = float(r["test_loss"] if framework == "pytorch" else r["loss"])
    return out


def mpirun(np_):
    cmd = ["mpirun", "-np", str(np_), "--bind-to", "none"]
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    if np_ > (os.cpu_count() or 1):
        cmd.append("--oversubscribe")
    return cmd


def git_commit():
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return ""


def run_one(name, framework, cmd, rundir, epochs):
    """Run `cmd`, its output to rundir/train.log, the wall time of each "Test set:" line to
    rundir/times.jsonl, a progress line per epoch; rundir/run.json when it succeeded."""
    metrics = os.path.join(rundir, "metrics.jsonl")
    done = os.path.join(rundir, "run.json")
    if os.path.exists(done):
        have = accuracies(framework, metrics)
        log(f"{name}: skip (done: {len(have)} epochs in {metrics})")
        if len(have) < epochs:
            log(f"{name}: WARNING: {epochs} epochs asked; remove {done} to extend the run (it resumes)")
        return
    os.makedirs(rundir, exist_ok=True)
    t0, start = time.time(), now_iso()
    load0 = os.getloadavg()
    if len(accuracies(framework, metrics)) >= epochs:  # finished, but killed before run.json
        log(f"{name}: all {epochs} epochs already in {metrics}; marking it done")
        rc = 0
        cmd = cmd + ["# (completed earlier; run.json written afterwards)"]
    else:
        log(f"{name}: start: {' '.join(cmd)}")
        rc = run_child(framework, cmd, rundir, metrics, name, epochs, t0, start)
    wall = time.time() - t0
    _finish(name, framework, cmd, rundir, metrics, done, epochs, rc, wall, start, load0)


def run_child(framework, cmd, rundir, metrics, name, epochs, t0, start):
    last_t = t0
    ep = len(accuracies(framework, metrics))  # epochs done before a resume; one more per "Test set" line
    with open(os.path.join(rundir, "train.log"), "a") as lf, open(os.path.join(rundir, "times.jsonl"), "a") as tf:
        lf.write(f"# {start} {' '.join(cmd)}\n")
        lf.flush()
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in p.stdout:
            lf.write(line)
            lf.flush()
            if line.startswith("Test set:"):
                t = time.time()
                ep += 1
                tf.write(json.dumps({"epoch": ep, "wall_s": round(t - t0, 1), "epoch_s": round(t - last_t, 1),
                                     "at": now_iso(), "load1": round(os.getloadavg()[0], 2)}) + "\n")
                tf.flush()
                pct = line.strip().rsplit("(", 1)[-1].rstrip(")")
                log(f"{name}: epoch {ep}/{epochs}: test accuracy {pct} ({t - last_t:.0f} s since the last, "
                    f"load {os.getloadavg()[0]:.2f})")
                last_t = t
        return p.wait()


def _finish(name, framework, cmd, rundir, metrics, done, epochs, rc, wall, start, load0):
    if rc != 0:
        log(f"{name}: FAILED with exit {rc} after {wall:.0f} s (log: {rundir}/train.log); a rerun continues it")
        sys.exit(1)
    acc = accuracies(framework, metrics)
    if len(acc) < epochs:
        log(f"{name}: FAILED: {len(acc)} of {epochs} epochs in {metrics}")
        sys.exit(1)
    with open(done, "w") as f:
        json.dump({"name": name, "framework": framework, "command": cmd, "start": start, "end": now_iso(),
                   "wall_s": round(wall, 1), "epochs": epochs, "host": socket.gethostname(), "nproc": os.cpu_count(),
                   "load_at_start": [round(x, 2) for x in load0], "git_commit": git_commit(),
                   "python": platform.python_version()}, f, indent=1)
        f.write("\n")
    log(f"{name}: done in {wall:.0f} s: " + ", ".join(f"{acc[e]:.2f}" for e in sorted(acc)))


def effnet_cmd(a, config, rundir, seed, epochs, h5, layout=None):
    """layout (ranks, batch per rank) overrides -np and train.batch; train.threads=0 then shares the cores."""
    np_ = layout[0] if layout else a.np
    cmd = mpirun(np_) + [os.path.join(a.build, "effnet"), "train", "--config", config,
                         "--set", f"train.seed={seed}", "--set", f"train.epochs={epochs}",
                         "--set", f"output.dir={rundir}", "--set", f"data.dir={h5}"]
    if layout:
        cmd += ["--set", f"train.batch={layout[1]}", "--set", "train.threads=0"]
    if a.train_subset:
        cmd += ["--set", f"data.train_subset={a.train_subset}"]
    if a.test_subset:
        cmd += ["--set", f"data.test_subset={a.test_subset}"]
    if os.path.exists(os.path.join(rundir, "last.h5")):
        cmd.append("--resume")
    return cmd


def pytorch_cmd(a, rundir, seed, epochs, cifar, recipe):
    cmd = [PY, os.path.join(ROOT, "tests", "bench", "train_pytorch.py"), "--data", cifar, "--model", recipe["model"],
           "--resolution", str(recipe["resolution"]), "--batch", str(recipe["global_batch"]), "--epochs", str(epochs),
           "--threads", str(a.threads), "--seed", str(seed), "--channels-last", "--lr", str(recipe["lr"]),
           "--weight-decay", str(recipe["weight_decay"]), "--schedule", recipe["schedule"],
           "--warmup-steps", str(recipe["warmup_steps"]), "--min-lr", str(recipe["min_lr"]),
           "--metrics", os.path.join(rundir, "metrics.jsonl"), "--checkpoint", os.path.join(rundir, "ckpt.pt"),
           "--augment", a.pytorch_augment]
    if a.train_subset:
        cmd += ["--train-subset", str(a.train_subset)]
    if a.test_subset:
        cmd += ["--test-subset", str(a.test_subset)]
    return cmd


def recipe_of(config, np_):
    """The recipe in an effnet config, for the PyTorch side (effnet's defaults where a key is absent)."""
    cp = configparser.ConfigParser(inline_comment_prefixes=(";", "#"))
    cp.read(config)
    g = lambda s, k, d: cp.get(s, k, fallback=d)  # noqa: E731
    if g("optim", "name", "adam") != "adam" or int(g("train", "accum", "1")) != 1:
        sys.exit(f"parity_study: {config}: the PyTorch side knows only Adam without accumulation")
    return {"model": g("model", "name", "efficientnet-b0"), "resolution": int(g("model", "resolution", "32")),
            "epochs": int(g("train", "epochs", "40")), "global_batch": np_ * int(g("train", "batch", "32")),
            "lr": float(g("optim", "lr", "0.001")), "weight_decay": float(g("optim", "weight_decay", "0.0001")),
            "schedule": g("schedule", "name", "constant"), "warmup_steps": int(g("schedule", "warmup_steps", "0")),
            "min_lr": float(g("schedule", "min_lr", "0")), "seed": int(g("train", "seed", "1"))}


def study(a):
    cifar = cifar_dir(a)
    h5 = h5_dir(a, cifar)
    log(f"study: CIFAR-10 {cifar}, shards {h5}, runs in {a.out}, seeds {a.seeds}, {a.epochs} epochs"
        + (f", long run {a.long_config}" if a.long else ""))
    short_cfg = os.path.join(ROOT, a.config)
    short = recipe_of(short_cfg, a.np)
    plan = []
    for s in a.seeds:
        d = os.path.join(a.out, f"effnet-s{s}")
        plan.append((f"effnet seed {s}", "effnet", d, a.epochs, lambda d=d, s=s: effnet_cmd(a, short_cfg, d, s, a.epochs, h5)))
    for s in a.seeds:
        d = os.path.join(a.out, f"pytorch-s{s}")
        plan.append((f"pytorch seed {s}", "pytorch", d, a.epochs,
                     lambda d=d, s=s: pytorch_cmd(a, d, s, a.epochs, cifar, short)))
    if a.long:
        long_cfg = os.path.join(ROOT, a.long_config)
        lr = recipe_of(long_cfg, a.np)
        ep = a.long_epochs or lr["epochs"]
        layout = None
        if a.long_ranks and a.long_ranks != a.np:  # the same global batch on another number of ranks
            assert lr["global_batch"] % a.long_ranks == 0, "--long-ranks must divide the global batch"
            layout = (a.long_ranks, lr["global_batch"] // a.long_ranks)
        d = os.path.join(a.out, "effnet-long" + (f"-{layout[0]}x{layout[1]}" if layout else ""))
        plan.append(("effnet long", "effnet", d, ep,
                     lambda d=d: effnet_cmd(a, long_cfg, d, lr["seed"], ep, h5, layout)))
        if not a.no_long_pytorch:
            d = os.path.join(a.out, "pytorch-long")
            plan.append(("pytorch long", "pytorch", d, ep, lambda d=d: pytorch_cmd(a, d, lr["seed"], ep, cifar, lr)))
    for name, fw, d, ep, mk in plan:
        run_one(name, fw, mk(), d, ep)
        report(a)  # the table so far, after every run
    log("study: all runs done")


# ---------------------------------------------------------------- report

def mean_sd(xs):
    m = statistics.fmean(xs) if xs else float("nan")
    sd = statistics.stdev(xs) if len(xs) > 1 else float("nan")
    return m, sd


def f2(x, nd=2):
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def load_runs(src):
    """{run name: (framework, {epoch: acc}, {epoch: loss}, run.json or None, [times rows])} from src/<run>/."""
    runs = {}
    if not os.path.isdir(src):
        return runs
    for name in sorted(os.listdir(src)):
        d = os.path.join(src, name)
        fw = name.split("-")[0]
        if fw not in ("effnet", "pytorch") or not os.path.isdir(d):
            continue
        m = os.path.join(d, "metrics.jsonl")
        info = None
        if os.path.exists(os.path.join(d, "run.json")):
            with open(os.path.join(d, "run.json")) as f:
                info = json.load(f)
        runs[name] = (fw, accuracies(fw, m), test_losses(fw, m), info, read_jsonl(os.path.join(d, "times.jsonl")))
    return runs


def median_epoch_s(times):
    xs = [t["epoch_s"] for t in times if t.get("epoch_s")]
    return statistics.median(xs) if xs else float("nan")


def report(a):
    docs = os.path.join(ROOT, a.docs)
    raw = os.path.join(docs, "runs")
    if not a.report_only:  # copy the small files of every run into docs/ (never the checkpoints or logs)
        for name in sorted(os.listdir(a.out)) if os.path.isdir(a.out) else []:
            if name.split("-")[0] not in ("effnet", "pytorch"):
                continue
            os.makedirs(os.path.join(raw, name), exist_ok=True)
            for fn in ("metrics.jsonl", "run.json", "times.jsonl"):
                p = os.path.join(a.out, name, fn)
                if os.path.exists(p):
                    shutil.copyfile(p, os.path.join(raw, name, fn))
    runs = load_runs(raw)
    os.makedirs(docs, exist_ok=True)
    L = ["# Accuracy parity of effnet with PyTorch (issue 14)", "",
         "Generated by `tests/bench/parity_study.py` from the JSON lines in `runs/` "
         "(regenerate with `/usr/bin/python3 tests/bench/parity_study.py --report-only`); do not edit by hand.", ""]
    # -- the seeds at the short recipe
    seeds = {fw: {n: r for n, r in runs.items() if r[0] == fw and n.split("-")[1].startswith("s")}
             for fw in ("effnet", "pytorch")}
    epochs = sorted({e for fw in seeds for r in seeds[fw].values() for e in r[1]})
    L += ["## Several seeds, the seed's recipe", "",
          "B0 at 32x32, Adam 1e-3, weight decay 1e-4, global batch 64, the seed's augmentation, constant lr. "
          "effnet: `mpirun -np 2 build/effnet train --config configs/cpu-b0-32.ini --set train.seed=S` (2 ranks x 32); "
          "PyTorch: `tests/bench/train_pytorch.py --channels-last --threads 2 --batch 64 --seed S` (one process). "
          "Test accuracy (%) after each epoch: mean ± sample standard deviation over n seeds; "
          "diff = effnet − PyTorch; SE = sqrt(s_e²/n_e + s_p²/n_p); parity holds at an epoch when |diff| ≤ 2 SE. "
          "The interval diff ± 2 SE is what the data allow for the true gap.", "",
          "| epoch | effnet mean ± sd (n) | PyTorch mean ± sd (n) | diff | SE | \\|diff\\| / SE | within 2 SE | diff ± 2 SE |",
          "|---|---|---|---|---|---|---|---|"]
    for e in epochs:
        xe = [r[1][e] for r in seeds["effnet"].values() if e in r[1]]
        xp = [r[1][e] for r in seeds["pytorch"].values() if e in r[1]]
        me, se_ = mean_sd(xe)
        mp, sp = mean_sd(xp)
        if len(xe) > 1 and len(xp) > 1:
            diff = me - mp
            se = math.sqrt(se_ ** 2 / len(xe) + sp ** 2 / len(xp))
            z = abs(diff) / se if se > 0 else float("inf")
            ok = "yes" if abs(diff) <= 2 * se else "**no**"
            ci = f"[{diff - 2 * se:+.2f}, {diff + 2 * se:+.2f}]"
        else:
            diff = me - mp if xe and xp else float("nan")
            se, z, ok, ci = float("nan"), float("nan"), "– (n < 2)", "–"
        L.append(f"| {e} | {f2(me)} ± {f2(se_)} ({len(xe)}) | {f2(mp)} ± {f2(sp)} ({len(xp)}) | "
                 f"{'–' if math.isnan(diff) else f'{diff:+.2f}'} | {f2(se)} | {f2(z)} | {ok} | {ci} |")
    L += ["", "Per seed (test accuracy %, after epochs 1, 2, ...; median seconds per epoch, wall clock on the "
          "study's machine, including the evaluation):", "",
          "| run | accuracy per epoch | s/epoch | complete |", "|---|---|---|---|"]
    for fw in ("effnet", "pytorch"):
        for n, r in seeds[fw].items():
            L.append(f"| {n} | {', '.join(f2(r[1][e]) for e in sorted(r[1]))} | {f2(median_epoch_s(r[4]), 0)} | "
                     f"{'yes' if r[3] else 'no (running or stopped)'} |")
    # -- the long run
    longs = {n: r for n, r in runs.items() if n.split("-")[1:2] == ["long"]}
    if longs:
        L += long_section(longs, docs)
    cmds = [(n, r[3]) for n, r in runs.items() if r[3]]
    if cmds:
        L += ["", "## Commands that ran", ""]
        for n, info in cmds:
            cmd = " ".join(info["command"]).replace(ROOT + "/", "")
            L.append(f"- {n} ({info['start']}, {info['wall_s']:.0f} s, load at start {info['load_at_start'][0]}): "
                     f"`{cmd}`")
    with open(os.path.join(docs, "parity.md"), "w") as f:
        f.write("\n".join(L) + "\n")
    log(f"report: wrote {os.path.join(docs, 'parity.md')} ({len(runs)} runs)")


def augment_of(info):
    """The PyTorch run's augmentation, from the command in its run.json (pil before the flag existed)."""
    if info is None:
        return None  # running or stopped: no run.json yet
    cmd = info.get("command", [])
    return cmd[cmd.index("--augment") + 1] if "--augment" in cmd[:-1] else "pil"


def long_label(name, info):
    """effnet-long -> 'effnet 2 ranks x 32' (from its command), pytorch-long -> 'PyTorch 1 process x 64'."""
    cmd = (info or {}).get("command", [])
    if name.startswith("pytorch"):
        batch = cmd[cmd.index("--batch") + 1] if "--batch" in cmd[:-1] else "?"
        return f"PyTorch 1 process x {batch}"
    np_ = cmd[cmd.index("-np") + 1] if "-np" in cmd[:-1] else "?"
    batch = next((c.split("=", 1)[1] for c in cmd if c.startswith("train.batch=")), "32")
    return f"effnet {np_} rank{'s' if np_ != '1' else ''} x {batch}"


def long_section(longs, docs):
    """The long runs (docs/runs/{effnet,pytorch}-long*): summary, per-epoch accuracy and test loss, the plot."""
    names = sorted(longs, key=lambda n: (not n.startswith("effnet"), n))
    labels = {n: long_label(n, longs[n][3]) for n in names}
    L = ["", "## The long run", "",
         "`configs/cpu-b0-32-long.ini`: the same recipe for 30 epochs with a cosine schedule "
         "(linear warmup over the first epoch, then cosine to min_lr); the PyTorch run takes the epochs, lr, "
         "weight decay, warmup and min_lr from that config and applies effnet's schedule step by step "
         "(`train_pytorch.py --schedule cosine`). One seed each. BatchNorm normalises each rank's micro-batch "
         "(as DDP does), so 2 ranks x 32 differs from one process x 64 in that.", "",
         "| run | epochs run | final accuracy % | best accuracy % (epoch) | worst test loss (epoch) "
         "| s/epoch (median) | complete |",
         "|---|---|---|---|---|---|---|"]
    for n in names:
        r = longs[n]
        acc, loss = r[1], r[2]
        if acc:
            last = max(acc)
            be = max(acc, key=lambda e: (acc[e], -e))
            we = max(loss, key=lambda e: loss[e]) if loss else None
            worst = f"{loss[we]:.3g} ({we})" if we else "–"
            L.append(f"| {labels[n]} | {last} | {acc[last]:.2f} | {acc[be]:.2f} ({be}) | {worst} | "
                     f"{f2(median_epoch_s(r[4]), 0)} | {'yes' if r[3] else 'no (running or stopped)'} |")
    for n in names:
        if n.startswith("pytorch"):
            aug = augment_of(longs[n][3])
            L += ["", f"{labels[n]}, augmentation: " + (
                "the seed's transforms on whole batches (`--augment batched`, the same draws and pixels as the "
                "per-image PIL path, `tests/bench/test_batched_augment.py`)." if aug == "batched"
                else "the seed's per-image PIL pipeline." if aug == "pil" else "not known until the run completes.")]
    L += ["", "Per epoch: test accuracy % / test loss (plain cross-entropy on the 10,000 test images).", "",
          "| epoch | " + " | ".join(labels[n] for n in names) + " |", "|---|" + "---|" * len(names)]
    for e in sorted({e for r in longs.values() for e in r[1]}):
        cells = [f"{longs[n][1][e]:.2f} / {longs[n][2][e]:.3g}" if e in longs[n][1] and e in longs[n][2] else "–"
                 for n in names]
        L.append(f"| {e} | " + " | ".join(cells) + " |")
    L += ["", "![long-run test accuracy and loss](long-run.png)"]
    plot_long({labels[n]: longs[n] for n in names}, os.path.join(docs, "long-run.png"))
    return L


def plot_long(longs, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, r in longs.items():
        es = sorted(r[1])
        ax[0].plot(es, [r[1][e] for e in es], "o-", ms=3, label=label)
        ls = sorted(r[2])
        ax[1].plot(ls, [r[2][e] for e in ls], "o-", ms=3, label=label)
    ax[0].set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy")
    ax[1].set(xlabel="epoch", ylabel="test loss", title="test loss (log scale: the spikes)", yscale="log")
    for x in ax:
        x.grid(alpha=0.3)
        x.legend()
    fig.suptitle("EfficientNet-B0, CIFAR-10 at 32x32, Adam 1e-3, cosine with 1 epoch warmup (configs/cpu-b0-32-long.ini)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="1,2,3", help="comma-separated seeds of the short runs (default 1,2,3)")
    ap.add_argument("--epochs", type=int, default=3, help="epochs of the short runs (default 3)")
    ap.add_argument("--config", default="configs/cpu-b0-32.ini", help="effnet config of the short runs")
    ap.add_argument("--long", action="store_true", help="also the long run, effnet then PyTorch")
    ap.add_argument("--long-config", default="configs/cpu-b0-32-long.ini")
    ap.add_argument("--long-epochs", type=int, default=0, help="override the long config's epochs (smoke tests)")
    ap.add_argument("--no-long-pytorch", action="store_true", help="the long run for effnet only")
    ap.add_argument("--long-ranks", type=int, default=0,
                    help="effnet's long run on this many ranks, same global batch (1: one process x 64, as "
                         "PyTorch runs it; BN then sees 64 images, not 32); its run is effnet-long-RxB")
    ap.add_argument("--out", default="parity-runs", help="run directories (logs, checkpoints; default parity-runs/)")
    ap.add_argument("--docs", default="docs/parity", help="where parity.md, long-run.png and runs/ go")
    ap.add_argument("--report-only", action="store_true", help="only the report, from DOCS/runs/")
    ap.add_argument("--cifar", help="CIFAR-10 binary directory (default $CIFAR10_DIR)")
    ap.add_argument("--h5", help="effnet's HDF5 shards (default $EFFNET_H5_DIR, else data/cifar10-h5)")
    ap.add_argument("--build", default="build", help="the build tree with effnet (default build/)")
    ap.add_argument("--np", type=int, default=2, help="effnet ranks (default 2)")
    ap.add_argument("--threads", type=int, default=2, help="PyTorch threads (default 2)")
    ap.add_argument("--pytorch-augment", choices=["pil", "batched"], default="pil",
                    help="PyTorch's augmentation: the seed's per-image PIL pipeline (default) or the same "
                         "transforms on whole batches (train_pytorch.py --augment batched: 168 s per epoch alone "
                         "on the 2-core VM of docs/parity/, where the PIL runs took 800-865 s sharing it 3 ways)")
    ap.add_argument("--train-subset", type=int, default=0, help="smoke tests: first N train images")
    ap.add_argument("--test-subset", type=int, default=0, help="smoke tests: first N test images")
    a = ap.parse_args()
    a.seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    a.out = os.path.abspath(os.path.join(ROOT, a.out))
    a.build = os.path.abspath(os.path.join(ROOT, a.build))
    if a.report_only:
        report(a)
        return
    if not os.access(os.path.join(a.build, "effnet"), os.X_OK):
        sys.exit(f"parity_study: no {a.build}/effnet: build first (cmake -S . -B build && cmake --build build)")
    study(a)


if __name__ == "__main__":
    main()
