#!/usr/bin/python3
"""Fit the alpha-beta all-reduce model of docs/scaling.md to `effnet bench-comm
--json` sweeps taken at several node counts over one kind of link.

    slurm/comm_model.py BENCH.json... [--form auto|ring|binomial] [--link NAME] [--out comm_model.json]

The model: an all-reduce of S bytes over N ranks takes

    T(N, S) = k_lat(N) * a  +  k_bw(N) * S / B

with a the per-hop latency and B the per-rank link bandwidth. The factors
depend on the algorithm MPI runs:
  ring      k_lat = 2(N-1),        k_bw = 2(N-1)/N  (docs/scaling.md; bandwidth-optimal)
  binomial  k_lat = 2 ceil(log2 N), k_bw = 2 ceil(log2 N)  (a binomial-tree reduce to
            one rank, then a binomial broadcast: every hop carries all S bytes)
`auto` takes binomial for the in-place MPI_Iallreduce (Open MPI 4.1's libnbc
uses the binomial tree for every in-place MPI_Iallreduce, and for any below
4 ranks; coll_libnbc_iallreduce_algorithm overrides it) and ring for the rest.

a and B are fitted per call by least squares on the relative error, over every
size of every sweep with N >= 2 (one rank has nothing to send). Printed: the
fit, its relative errors per node count, the per-node-count free fit
(t = c0 + c1 S: what the data says without the model's N-dependence), and a
table of measured against modelled times. --out writes the fit as JSON for
slurm/scaling_report.py (`calls` -> form, alpha_us, bandwidth_gbs)."""
import argparse
import json
import math
import os
import statistics
import sys

TRAINER_CALL = "MPI_Iallreduce in-place + watchdog"  # what effnet train runs on the CPU backend


def factors(form, n):
    if n < 2:
        return 0.0, 0.0
    if form == "ring":
        return 2.0 * (n - 1), 2.0 * (n - 1) / n
    if form == "binomial":
        h = 2.0 * math.ceil(math.log2(n))
        return h, h
    raise ValueError(form)


def model_time_s(form, alpha_s, bw_bps, n, nbytes, calls=1):
    """The model's time for `calls` all-reduces totalling nbytes over n ranks (each call pays the latency)."""
    kl, kb = factors(form, n)
    return calls * kl * alpha_s + kb * nbytes / bw_bps


def auto_form(call):
    return "binomial" if ("Iallreduce" in call and "in-place" in call) else "ring"


def lsq2(rows):
    """Least squares for y ~ p*x1 + q*x2 over rows (x1, x2, y): the 2x2 normal equations."""
    s11 = sum(r[0] * r[0] for r in rows)
    s12 = sum(r[0] * r[1] for r in rows)
    s22 = sum(r[1] * r[1] for r in rows)
    b1 = sum(r[0] * r[2] for r in rows)
    b2 = sum(r[1] * r[2] for r in rows)
    det = s11 * s22 - s12 * s12
    if abs(det) < 1e-300:
        raise ValueError("degenerate fit (need two sizes and N >= 2)")
    return (b1 * s22 - b2 * s12) / det, (s11 * b2 - s12 * b1) / det


def fit(points, form):
    """points: (n, bytes, t_s). Minimise sum ((model - t) / t)^2 over alpha >= 0 and 1/B > 0."""
    rows = []
    for n, s, t in points:
        kl, kb = factors(form, n)
        rows.append((kl / t, kb * s / t, 1.0))
    alpha, inv_b = lsq2(rows)
    if alpha < 0:  # latency below resolution: fit the bandwidth alone
        alpha = 0.0
        inv_b = sum(r[1] for r in rows) / sum(r[1] * r[1] for r in rows)
    return alpha, 1.0 / inv_b


def free_fit(points):
    """Per node count: t = c0 + c1 * S, relative least squares."""
    c0, c1 = lsq2([(1.0 / t, s / t, 1.0) for _, s, t in points])
    return c0, c1


def human(nbytes):
    for unit, k in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= k and nbytes % k == 0:
            return f"{nbytes // k} {unit}"
    return f"{nbytes} B"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bench", nargs="+")
    ap.add_argument("--form", default="auto", choices=["auto", "ring", "binomial"])
    ap.add_argument("--link", default=None, help="a name for the link in the output (e.g. '1 Gbit/s')")
    ap.add_argument("--out", default=None)
    ap.add_argument("--sizes", default="8,1024,65536,1048576,4194304,16777216,33554432,67108864,268435456",
                    help="sizes (bytes) in the printed table")
    a = ap.parse_args()
    docs = []
    for f in a.bench:
        d = json.load(open(f))
        if d.get("benchmark") != "bench-comm":
            sys.exit(f"comm_model: {f} is not an effnet bench-comm --json document")
        if d.get("wrong_total", 1) != 0:
            sys.exit(f"comm_model: {f} has {d.get('wrong_total')} wrong elements: not fitting a broken run")
        docs.append((f, d))
    docs.sort(key=lambda fd: fd[1]["ranks"])
    calls = []
    for _, d in docs:
        for c in d["calls"]:
            if c not in calls:
                calls.append(c)
    out = {"link": a.link, "files": [os.path.basename(f) for f, _ in docs], "trainer_call": TRAINER_CALL,
           "model": "T(N, S) = k_lat(N) * alpha + k_bw(N) * S / B", "calls": {}}
    show = [int(x) for x in a.sizes.split(",")]
    link = f" over {a.link}" if a.link else ""
    runs = ", ".join("%d rank(s) (%s)" % (d["ranks"], os.path.basename(f)) for f, d in docs)
    print(f"# alpha-beta fit{link}: {runs}\n")
    for call in calls:
        form = auto_form(call) if a.form == "auto" else a.form
        pts = [(d["ranks"], r["bytes"], r["time_us"] * 1e-6) for _, d in docs for r in d["results"]
               if r["call"] == call]
        multi = [p for p in pts if p[0] >= 2]
        if len({p[0] for p in multi}) < 1 or len(multi) < 2:
            print(f"{call}: fewer than two measurements with N >= 2: no fit\n")
            continue
        alpha, bw = fit(multi, form)
        entry = {"form": form, "alpha_us": alpha * 1e6, "bandwidth_gbs": bw / 1e9, "per_nodes": {}}
        print(f"## {call}: {form} model, alpha = {alpha * 1e6:.1f} us, B = {bw / 1e9:.4f} GB/s "
              f"({bw * 8 / 1e9:.3f} Gbit/s)\n")
        print("| N | model k_lat, k_bw | median / max abs. error of the model | free fit per N: c0 (us), S/c1 "
              "(GB/s) |\n|---|---|---|---|")
        for n in sorted({p[0] for p in multi}):
            pn = [p for p in multi if p[0] == n]
            errs = [abs(model_time_s(form, alpha, bw, n, s) - t) / t for _, s, t in pn]
            c0, c1 = free_fit(pn) if len(pn) >= 2 else (float("nan"), float("nan"))
            kl, kb = factors(form, n)
            entry["per_nodes"][str(n)] = {"median_rel_err": statistics.median(errs), "max_rel_err": max(errs),
                                          "free_c0_us": c0 * 1e6, "free_bw_gbs": 1 / c1 / 1e9 if c1 > 0 else None}
            print(f"| {n} | {kl:g}, {kb:.3g} | {100 * statistics.median(errs):.0f}% / {100 * max(errs):.0f}% | "
                  f"{c0 * 1e6:.1f}, {1 / c1 / 1e9 if c1 > 0 else float('nan'):.4f} |")
        print()
        ns = sorted({p[0] for p in pts})
        print("| size | " + " | ".join(f"N={n} measured ms | model ms | busbw GB/s" for n in ns) + " |")
        print("|---|" + "---|---|---|" * len(ns))
        for s in show:
            cells = []
            for n in ns:
                m = [r for _, d in docs if d["ranks"] == n for r in d["results"] if r["call"] == call and r["bytes"] == s]
                if not m:
                    cells.append("- | - | -")
                    continue
                r = m[0]
                cells.append(f"{r['time_us'] / 1e3:.3f} | {model_time_s(form, alpha, bw, n, s) * 1e3:.3f} | "
                             f"{r['busbw_gbs']:.4f}")
            if any(c != "- | - | -" for c in cells):
                print(f"| {human(s)} | " + " | ".join(cells) + " |")
        print()
        out["calls"][call] = entry
    if a.out:
        with open(a.out, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
        print(f"comm_model: wrote {a.out}")


if __name__ == "__main__":
    main()
