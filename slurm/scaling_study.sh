#!/usr/bin/env bash
# Weak and strong scaling study of effnet training: one benchmark run per
# (mode, ranks), submitted with sbatch (or run with mpirun), then a report.
#
#   slurm/scaling_study.sh STUDY_DIR [--ranks "1 2 4 8"] [--modes "weak strong"]
#       [--steps 30] [--batch 32] [--global-batch 64] [--ranks-per-node K]
#       [--cpus-per-task C] [--config configs/bench.ini] [--launcher sbatch|mpirun]
#       [--sbatch-args "..."] [--set section.key=value ...]
#
# weak:   fixed per-rank batch (--batch), global batch grows with ranks.
# strong: fixed global batch (--global-batch), per-rank batch = global/ranks.
# Each run trains --steps steps of configs/bench.ini (synthetic-free: the real
# CIFAR-10 shards of data.dir) with output.comm_timing on, so its summary line
# splits compute, load-imbalance wait and all-reduce time. Runs go to
# STUDY_DIR/<mode>-n<ranks>/; slurm/scaling_report.py then writes
# scaling.csv, scaling.md and scaling.png there (docs/scaling.md).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 1 ] || { sed -n 2,17p "$0"; exit 2; }
study=$1; shift
ranks="1 2 4 8" modes="weak strong" steps=30 batch=32 gbatch=64 rpn=0 cpt=1
config=$root/configs/bench.ini launcher=sbatch sbatch_args="" sets=()
while [ $# -gt 0 ]; do
  case $1 in
    --ranks) ranks=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --global-batch) gbatch=$2; shift 2 ;;
    --ranks-per-node) rpn=$2; shift 2 ;;
    --cpus-per-task) cpt=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --launcher) launcher=$2; shift 2 ;;
    --sbatch-args) sbatch_args=$2; shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    *) echo "scaling_study: unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$study"
study=$(cd "$study" && pwd)
for mode in $modes; do
  for n in $ranks; do
    if [ "$mode" = weak ]; then b=$batch; else
      [ $((gbatch % n)) -eq 0 ] || { echo "scaling_study: global batch $gbatch not divisible by $n ranks" >&2; exit 2; }
      b=$((gbatch / n))
    fi
    out=$study/$mode-n$n
    rm -rf "$out"
    args=("$config" --set output.dir="$out" --set train.batch=$b --set train.max_steps=$((steps + 1))
          --set train.threads="$cpt" --set output.comm_timing=true --set output.log_interval=10 "${sets[@]}")
    echo "scaling_study: $mode scaling, $n rank(s), batch $b per rank"
    if [ "$launcher" = sbatch ]; then
      per=$([ "$rpn" -gt 0 ] && echo "$rpn" || echo "$n")
      nodes=$(( (n + per - 1) / per ))
      # shellcheck disable=SC2086
      sbatch --wait --job-name="scale-$mode-n$n" --nodes=$nodes --ntasks=$n --ntasks-per-node=$((n < per ? n : per)) \
        --cpus-per-task="$cpt" --output="$study/$mode-n$n.out" $sbatch_args \
        "$root/slurm/train-cpu.sbatch" "${args[@]}" > /dev/null \
        || { echo "scaling_study: job for $mode-n$n failed, see $study/$mode-n$n.out" >&2; exit 1; }
    else
      mpi=(mpirun -np "$n" --bind-to none --oversubscribe)
      [ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
      "${mpi[@]}" "$root/build/effnet" train --config "${args[@]}" > "$study/$mode-n$n.out" 2>&1 \
        || { echo "scaling_study: $mode-n$n failed, see $study/$mode-n$n.out" >&2; exit 1; }
    fi
    grep -h "^timing:" "$study/$mode-n$n.out" || true
  done
done
/usr/bin/python3 "$root/slurm/scaling_report.py" "$study"
