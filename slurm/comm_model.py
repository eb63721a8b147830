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
4 ranks), ring where the sweep's environment (bench-comm records it) forced
libnbc's ring (OMPI_MCA_coll_libnbc_iallreduce_algorithm=1), and ring for
the rest.

a and B are fitted per call over every sweep with N >= 2 (one rank has
nothing to send), each in the regime where it dominates: a as a median over
the small messages (<= --alpha-max-bytes, 4 KiB), B by least squares on the
relative error over the sizes >= --fit-min-bytes (4 MiB), alternating until
both settle. Printed: the fit,
its relative errors per node count (in the fitted range and over all sizes),
a free fit per node count (t = c0 + S/b: what the data says without the
model's N-dependence), and a table of measured against modelled times. --out writes the fit as JSON for
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


def auto_form(call, env):
    """The algorithm behind a call, from Open MPI 4.1's choice (and its override in the run's environment)."""
    if "Iallreduce" in call:
        alg = env.get("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "0")
        if alg == "1":
            return "ring"
        if alg == "2" or "in-place" in call:
            return "binomial"
    return "ring"


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


def fit(points, form, min_bytes, alpha_max_bytes):
    """points: (n, bytes, t_s) with n >= 2. The two regimes of the model, each
    where it dominates: alpha as the median, over the sizes <= alpha_max_bytes
    of every node count, of (t - k_bw S / B) / k_lat (a median: single small
    messages are at the mercy of the scheduler); B by least squares on the
    relative error of t - k_lat * alpha against k_bw * S over the sizes >=
    min_bytes. Alternated until both settle (a few rounds)."""
    small = [p for p in points if p[1] <= alpha_max_bytes]
    large = [p for p in points if p[1] >= min_bytes]
    if not small or not large:
        raise ValueError(f"need sizes <= {alpha_max_bytes} and >= {min_bytes} bytes to fit alpha and B")
    inv_b = 0.0
    for _ in range(20):
        alpha = statistics.median((t - factors(form, n)[1] * s * inv_b) / factors(form, n)[0] for n, s, t in small)
        alpha = max(alpha, 0.0)
        num = den = 0.0
        for n, s, t in large:
            kl, kb = factors(form, n)
            x = kb * s / t
            num += x * (t - kl * alpha) / t
            den += x * x
        inv_b = num / den
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
    ap.add_argument("--fit-min-bytes", type=int, default=4 << 20,
                    help="B is fitted over the sizes from this up (default 4 MiB: on a tbf-shaped link the first "
                         "~0.5 MB of a burst pass at line rate)")
    ap.add_argument("--alpha-max-bytes", type=int, default=4096,
                    help="alpha is the median over the sizes up to this (default 4 KiB)")
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
        envs = {json.dumps(d.get("environment", {}).get("OMPI_MCA_coll_libnbc_iallreduce_algorithm")) for _, d in docs}
        if a.form == "auto" and len(envs) > 1:
            sys.exit("comm_model: the sweeps ran with different coll_libnbc_iallreduce_algorithm settings: fit them apart")
        form = auto_form(call, docs[-1][1].get("environment", {})) if a.form == "auto" else a.form
        pts = [(d["ranks"], r["bytes"], r["time_us"] * 1e-6) for _, d in docs for r in d["results"]
               if r["call"] == call]
        multi = [p for p in pts if p[0] >= 2]
        if len({p[0] for p in multi}) < 1 or len(multi) < 2:
            print(f"{call}: fewer than two measurements with N >= 2: no fit\n")
            continue
        try:
            alpha, bw = fit(multi, form, a.fit_min_bytes, a.alpha_max_bytes)
        except ValueError as e:
            sys.exit(f"comm_model: {call}: {e} (--alpha-max-bytes, --fit-min-bytes)")
        entry = {"form": form, "alpha_us": alpha * 1e6, "bandwidth_gbs": bw / 1e9, "fit_min_bytes": a.fit_min_bytes,
                 "alpha_max_bytes": a.alpha_max_bytes, "per_nodes": {}}
        print(f"## {call}: {form} model, alpha = {alpha * 1e6:.1f} us, B = {bw / 1e9:.4f} GB/s "
              f"({bw * 8 / 1e9:.3f} Gbit/s)\n")
        print(f"| N | k_lat, k_bw | model error, sizes >= {human(a.fit_min_bytes)}: median / max | all sizes: median / max "
              f"| free fit t = c0 + S/b per N (b: algbw), sizes >= {human(a.fit_min_bytes)}: c0 (us), b (GB/s) |\n|---|---|---|---|---|")
        for n in sorted({p[0] for p in multi}):
            pn = [p for p in multi if p[0] == n]
            errs = [abs(model_time_s(form, alpha, bw, n, s) - t) / t for _, s, t in pn]
            errl = [abs(model_time_s(form, alpha, bw, n, s) - t) / t for _, s, t in pn if s >= a.fit_min_bytes]
            pl = [p for p in pn if p[1] >= a.fit_min_bytes]
            c0, c1 = free_fit(pl) if len(pl) >= 2 else (float("nan"), float("nan"))
            kl, kb = factors(form, n)
            entry["per_nodes"][str(n)] = {"median_rel_err": statistics.median(errs), "max_rel_err": max(errs),
                                          "median_rel_err_large": statistics.median(errl) if errl else None,
                                          "max_rel_err_large": max(errl) if errl else None,
                                          "free_c0_us": c0 * 1e6, "free_bw_gbs": 1 / c1 / 1e9 if c1 > 0 else None}
            fl = lambda e: f"{100 * statistics.median(e):.0f}% / {100 * max(e):.0f}%" if e else "-"  # noqa: E731
            print(f"| {n} | {kl:g}, {kb:.3g} | {fl(errl)} | {fl(errs)} | "
                  f"{c0 * 1e6:.0f}, {1 / c1 / 1e9 if c1 > 0 else float('nan'):.4f} |")
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
