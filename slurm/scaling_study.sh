#!/usr/bin/env bash
# Weak and strong scaling study of effnet training: one benchmark run per
# (mode, ranks), submitted with sbatch (or run with mpirun), then a report.
#
#   slurm/scaling_study.sh STUDY_DIR [--ranks "1 2 4 8" | --nodes "1 2 4"] [--modes "weak strong"]
#       [--steps 30] [--batch 32] [--global-batch 64] [--ranks-per-node K]
#       [--cpus-per-task C] [--config configs/bench.ini] [--launcher sbatch|mpirun]
#       [--sbatch-args "..."] [--model comm_model.json] [--set section.key=value ...]
#
# --ranks: rank counts, packed --ranks-per-node K to a node (K = 0, the
#   default: all on one node). --nodes: node counts instead, each submitted
#   with -N n and K ranks per node (K default 1: one rank per node), so the
#   ranks really sit on n hosts (sbatch only).
# --model: an alpha-beta fit from slurm/comm_model.py (bench-comm over the
#   same link); the report then puts the model's all-reduce time and
#   weak-scaling efficiency beside each measurement (docs/scaling.md).
# weak:   fixed per-rank batch (--batch), global batch grows with ranks.
# strong: fixed global batch (--global-batch), per-rank batch = global/ranks.
# Each run trains --steps steps of configs/bench.ini (synthetic-free: the real
# CIFAR-10 shards of data.dir) with output.comm_timing on, so its summary line
# splits compute, load-imbalance wait and all-reduce time. Runs go to
# STUDY_DIR/<mode>-n<ranks>/; slurm/scaling_report.py then writes
# scaling.csv, scaling.md and scaling.png there (docs/scaling.md).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 1 ] || { sed -n 2,27p "$0"; exit 2; }
study=$1; shift
ranks="1 2 4 8" modes="weak strong" steps=30 batch=32 gbatch=64 rpn=0 cpt=1
config=$root/configs/bench.ini launcher=sbatch sbatch_args="" sets=() nodes_list="" rpn_set=0 model=""
while [ $# -gt 0 ]; do
  case $1 in
    --ranks) ranks=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --global-batch) gbatch=$2; shift 2 ;;
    --ranks-per-node) rpn=$2; rpn_set=1; shift 2 ;;
    --nodes) nodes_list=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --cpus-per-task) cpt=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --launcher) launcher=$2; shift 2 ;;
    --sbatch-args) sbatch_args=$2; shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    *) echo "scaling_study: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ -n "$nodes_list" ]; then
  [ "$launcher" = sbatch ] || { echo "scaling_study: --nodes needs --launcher sbatch (mpirun here runs on one host)" >&2; exit 2; }
  [ $rpn_set -eq 1 ] || rpn=1
  [ "$rpn" -ge 1 ] || { echo "scaling_study: --nodes needs --ranks-per-node >= 1" >&2; exit 2; }
  ranks=""
  for k in $nodes_list; do ranks="$ranks $((k * rpn))"; done
fi
[ -z "$model" ] || [ -f "$model" ] || { echo "scaling_study: --model $model: no such file" >&2; exit 2; }
mkdir -p "$study"
study=$(cd "$study" && pwd)
[ -z "$model" ] || cp "$model" "$study/comm_model.json"
for mode in $modes; do
  for n in $ranks; do
    if [ "$mode" = weak ]; then b=$batch; else
      [ $((gbatch % n)) -eq 0 ] || { echo "scaling_study: global batch $gbatch not divisible by $n ranks" >&2; exit 2; }
      b=$((gbatch / n))
    fi
    out=$study/$mode-n$n
    rm -rf "$out"
    args=("$config" --set output.dir="$out" --set train.batch="$b" --set train.max_steps=$((steps + 1))
          --set train.threads="$cpt" --set output.comm_timing=true --set output.log_interval=10 "${sets[@]}")
    if [ "$launcher" = sbatch ]; then
      per=$([ "$rpn" -gt 0 ] && echo "$rpn" || echo "$n")
      nodes=$(( (n + per - 1) / per ))
      echo "scaling_study: $mode scaling, $n rank(s) on $nodes node(s), batch $b per rank"
      # shellcheck disable=SC2086
      sbatch --wait --job-name="scale-$mode-n$n" --nodes=$nodes --ntasks=$n --ntasks-per-node=$((n < per ? n : per)) \
        --cpus-per-task="$cpt" --output="$study/$mode-n$n.out" $sbatch_args \
        "$root/slurm/train-cpu.sbatch" "${args[@]}" > /dev/null \
        || { echo "scaling_study: job for $mode-n$n failed, see $study/$mode-n$n.out" >&2; exit 1; }
    else
      echo "scaling_study: $mode scaling, $n rank(s), batch $b per rank"
      mpi=(mpirun -np "$n" --bind-to none --oversubscribe)
      [ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
      "${mpi[@]}" "$root/build/effnet" train --config "${args[@]}" > "$study/$mode-n$n.out" 2>&1 \
        || { echo "scaling_study: $mode-n$n failed, see $study/$mode-n$n.out" >&2; exit 1; }
    fi
    grep -h "^timing:" "$study/$mode-n$n.out" || true
  done
done
/usr/bin/python3 "$root/slurm/scaling_report.py" "$study"
