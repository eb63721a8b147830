#!/usr/bin/env bash
# All-reduce sweeps across node counts, then the alpha-beta fit.
#
#   slurm/comm_study.sh OUT_DIR [--nodes "1 2 4"] [--label NAME] [--sbatch-args "..."] [bench-comm options]
#
# Submits `sbatch --wait -N n --ntasks-per-node 1 slurm/bench-comm.sbatch
# --json [bench-comm options]` for each n of --nodes (one rank per node) and
# writes OUT_DIR/bench-<label>-n<n>.json (label: default "run"), then runs
# slurm/comm_model.py on all bench-*.json in OUT_DIR (docs/scaling.md). Needs
# SLURM_CONF (or a real cluster) and, on the test bed, OUT_DIR shared with
# the nodes (not under /tmp unless started with --share).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 1 ] || { sed -n 2,12p "$0"; exit 2; }
out=$1; shift
nodes="1 2 4" label=run sbatch_args="" bench=()
while [ $# -gt 0 ]; do
    case $1 in
        --nodes) nodes=$2; shift 2 ;;
        --label) label=$2; shift 2 ;;
        --sbatch-args) sbatch_args=$2; shift 2 ;;
        *) bench+=("$1"); shift ;;
    esac
done
export EFFNET_ROOT=${EFFNET_ROOT:-$root}   # the batch script finds build/effnet there
mkdir -p "$out"
out=$(cd "$out" && pwd)
for n in $nodes; do
    f=$out/bench-$label-n$n.json
    echo "comm_study: $n node(s) x 1 rank: $f"
    # shellcheck disable=SC2086
    sbatch --wait --job-name="bench-comm-$label-n$n" --nodes="$n" --ntasks-per-node=1 --cpus-per-task=1 \
        --output="$out/bench-$label-n$n.out" $sbatch_args \
        "$root/slurm/bench-comm.sbatch" --out "$f" --json "${bench[@]}" > /dev/null \
        || { echo "comm_study: the job for $n node(s) failed, see $out/bench-$label-n$n.out" >&2; cat "$out/bench-$label-n$n.out" >&2; exit 1; }
done
/usr/bin/python3 "$root/slurm/comm_model.py" "$out"/bench-*.json --out "$out/comm_model.json"
