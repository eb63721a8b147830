#!/usr/bin/env bash
# The fault soak (issue 23): every fault scenario N times, then one table --
# scenario, runs, passes, median and worst time to detect and to exit, and
# whether anything was lost. Not in CI (it runs for hours); CI runs each
# scenario once as a ctest test (the same scripts).
#
#   bash tests/soak/soak.sh [--runs N] [--scenarios "preempt stall ..."] [--build DIR] [--out DIR] [--fuzz-cases N]
#
# Scenarios (each is a case of tests/train/test_train.sh, 2-3 ranks under
# mpirun on this host, or of tests/slurm/test_multinode.sh, 2 Slurm nodes in
# network namespaces; run as root):
#   preempt       scancel --signal=USR1 across two nodes, requeue, resume: bit-exact
#   nodedeath     a node's link cut for good; resubmitted on the survivor, same global batch
#   flap          a node's link down for 5 s mid-run: finishes, or fails cleanly
#   stall         SIGSTOP of one of 3 ranks: named, job ends, last.h5 intact, resume
#   sigkill       SIGKILL of a rank: job ends, last.h5 intact, resume
#   sigterm       SIGTERM of a rank: checkpoint, exit 75, resume
#   startup       SIGUSR1 while the job starts: exit 75, last.h5 untouched
#   ckpt_sigterm  SIGTERM / SIGKILL of rank 0 while it writes last.h5: last.h5
#   ckpt_sigkill    as logged, the unfinished file removed, resume bit-exact
#   nan           a non-finite loss: exit 3, checkpoints untouched
#   damaged       last.h5 damaged before a requeue: refused; resume_fallback=best works
#   dirlock       a second job on the same output directory: refused naming the
#                 holder; a SIGKILLed job's lock does not block the next
#   fuzz          N seeded mutations (--fuzz-cases, 200) of a checkpoint (with and without its
#                 checksum header) and of the shards through every reader: no crash
# Each run's log is kept in OUT/logs; OUT/soak.jsonl has one row per run and
# OUT/table.md the table. "lost" means: the checkpoint on disk does not load,
# or its SHA-256 is not the one the run logged for it, or the resumed run is
# not bit-identical where the project promises that (tests/soak/check_lost.py).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
runs=20 fuzz_cases=200 build=$root/build out=${TMPDIR:-/tmp}/effnet-soak-$(date +%Y%m%d-%H%M%S)
scenarios="preempt nodedeath flap stall sigkill sigterm startup ckpt_sigterm ckpt_sigkill nan damaged dirlock fuzz"
while [ $# -gt 0 ]; do
    case $1 in
        --runs) runs=$2; shift 2 ;;
        --scenarios) scenarios=$2; shift 2 ;;
        --build) build=$(cd "$2" && pwd); shift 2 ;;
        --out) out=$2; shift 2 ;;
        --fuzz-cases) fuzz_cases=$2; shift 2 ;;
        *) echo "soak.sh: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
    esac
done
py=/usr/bin/python3
[ -x "$build/effnet" ] || { echo "soak.sh: no $build/effnet: build first (cmake --build build)" >&2; exit 2; }
mkdir -p "$out/logs" || exit 2
echo "soak: $runs runs of: $scenarios; build $build; logs in $out/logs"
echo "soak: $(date -u +%FT%TZ), $(uname -n), $(nproc) CPUs, effnet $("$build/effnet" --version | head -n 1)"

command_for() { # cmd := the command of one run of scenario $1, run number $2 (empty: unknown scenario)
    local t=$root/tests/train/test_train.sh
    case $1 in
        preempt|nodedeath|flap) cmd=(bash "$root/tests/slurm/test_multinode.sh" "$1" "$build" "$root" "$py") ;;
        sigkill) cmd=(bash "$t" kill "$build" "$root" "$py") ;;
        sigterm) cmd=(bash "$t" signal "$build" "$root" "$py") ;;
        startup) cmd=(bash "$t" signal_startup "$build" "$root" "$py") ;;
        stall|ckpt_sigterm|ckpt_sigkill|nan|damaged|dirlock) cmd=(bash "$t" "$1" "$build" "$root" "$py") ;;
        fuzz) cmd=("$py" "$root/tests/fuzz/fuzz_readers.py" "$build/tests/ckpt-fixture" --effnet "$build/effnet"
                   --data-check "$build/data_tools/effnet-data-check" --cases "$fuzz_cases" --seed "$((1000 + $2))") ;;
        *) cmd=() ;;
    esac
}

if [[ " $scenarios " = *" fuzz "* ]] && [ ! -f "$build/tests/ckpt-fixture/run/last.h5" ]; then
    echo "soak: making the checkpoint fixture for fuzz (ctest -R ckpt_setup)"
    ctest --test-dir "$build" -R '^ckpt_setup$' > "$out/logs/ckpt_setup.log" 2>&1 || { echo "soak: ckpt_setup failed"; exit 1; }
fi

for s in $scenarios; do
    command_for "$s" 1
    [ ${#cmd[@]} -gt 0 ] || { echo "soak: unknown scenario '$s'" >&2; exit 2; }
    for i in $(seq 1 "$runs"); do
        log=$out/logs/$s-$i.log
        t0=$(date +%s.%N)
        command_for "$s" "$i"
        "${cmd[@]}" > "$log" 2>&1
        rc=$?
        wall=$("$py" -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$t0")
        line=$(grep -m1 '^SOAK ' "$log" || true)
        "$py" - "$s" "$i" "$rc" "$wall" "$line" "$log" >> "$out/soak.jsonl" <<'PY'
import json, re, sys
s, i, rc, wall, line, log = sys.argv[1:]
kv = dict(re.findall(r"(\w+)=(\S+)", line))
row = {"scenario": s, "run": int(i), "rc": int(rc), "pass": rc == "0" or rc == "77", "skipped": rc == "77",
       "wall_s": float(wall), "log": log}
for k in ("detect_s", "exit_s"):
    if kv.get(k, "-") not in ("-", ""):
        row[k] = float(kv[k])
row["lost"] = None if rc != "0" else int(kv.get("lost", "0"))
if s == "fuzz":  # its own verdict: 0 failures over the cases
    text = open(log, errors="replace").read()
    m = re.search(r"(\d+) failure\(s\)", text)
    row["lost"] = 0 if m and m.group(1) == "0" and rc == "0" else None
print(json.dumps(row))
PY
        printf 'soak: %-12s run %2d/%d: %s (%s s)%s\n' "$s" "$i" "$runs" "$([ $rc -eq 0 ] && echo pass || echo "FAIL rc=$rc")" \
            "$wall" "$([ $rc -eq 0 ] || echo ", log $log")"
    done
done

"$py" - "$out/soak.jsonl" "$out/table.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
order = list(dict.fromkeys(r["scenario"] for r in rows))
def span(v):
    return f"{statistics.median(v):.1f} / {max(v):.1f}" if v else "-"
lines = ["| scenario | runs | passes | detect s (median / worst) | exit s (median / worst) | lost |",
         "|---|---:|---:|---|---|---|"]
for s in order:
    rs = [r for r in rows if r["scenario"] == s]
    ok = [r for r in rs if r["pass"]]
    lost = sum(1 for r in rs if r["lost"] == 1)
    unknown = sum(1 for r in rs if r["lost"] is None)
    lines.append(f"| {s} | {len(rs)} | {len(ok)} | {span([r['detect_s'] for r in ok if 'detect_s' in r])} | "
                 f"{span([r['exit_s'] for r in ok if 'exit_s' in r])} | "
                 f"{'none' if not lost and not unknown else f'{lost} lost, {unknown} not checked (failed runs)'} |")
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
bad = sum(1 for r in rows if not r["pass"])
print(f"\nsoak: {len(rows)} runs, {bad} failed; table in {sys.argv[2]}")
sys.exit(1 if bad else 0)
PY
