#!/usr/bin/env bash
# 50 training steps of B0 in bf16 on the CUDA backend, on the tiny synthetic
# CIFAR-10 of the training tests: the run must finish and the loss must fall
# (mean of the last 10 logged steps below the mean of the first 10). A criterion, not a tolerance: the CPU fp32
# run measured 2.415 -> 1.575 (this CPU, AMD EPYC, 2026-12-02); bf16 on a GPU: not measured, no GPU here.
#   test_train_smoke.sh BUILD_DIR SRC_DIR PYTHON [PRECISION [BACKEND]]
# Exit 77 ("no CUDA device: skipped") when no device is usable. BACKEND=cpu
# runs the same script on the CPU backend (fp32): its CPU half, which checks
# the data, the run and the loss criterion everywhere.
set -uo pipefail
build=$1 src=$2 py=$3 prec=${4:-bf16} backend=${5:-cuda}
effnet=$build/effnet
info=$("$effnet" info --devices) || { echo "FAIL: effnet info --devices failed"; exit 1; }
n=$(awk '/^cuda devices/ {print $3}' <<<"$info")
[ -n "$n" ] || { echo "FAIL: no device count in: $info"; exit 1; }
if [ "$backend" = cuda ] && [ "$n" -lt 1 ]; then echo "no CUDA device: skipped"; exit 77; fi
work=$(mktemp -d "${TMPDIR:-/tmp}/effnet-gpu-smoke.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
"$py" "$src/tests/train/make_tiny_data.py" "$work/bin" 400 || fail "making tiny data"
"$build/data_tools/cifar10-to-h5" --input "$work/bin" --output "$work/data" --shards 2 \
    --records-per-file 400 --quiet || fail "converting tiny data"
# an MPI singleton: no mpirun needed (one rank, one GPU)
"$effnet" train --config "$src/configs/cpu-b0-32.ini" --set data.dir="$work/data" --set train.backend="$backend" \
    --set train.precision="$prec" --set train.batch=32 --set train.max_steps=50 --set train.epochs=100 \
    --set output.log_interval=1 --set output.dir="$work/run" --set output.eval_interval=100 \
    > "$work/log" 2>&1 || { cat "$work/log"; fail "effnet train exited $?"; }
grep -E "topology|backend" "$work/log" | head -5
"$py" - "$work/run/metrics.jsonl" <<'PY' || fail "loss did not fall"
import json, sys
rows = [r for r in map(json.loads, open(sys.argv[1])) if r["type"] == "train"]
loss = [r["loss"] for r in rows]
assert len(loss) >= 50, f"only {len(loss)} logged steps"
first, last = sum(loss[:10]) / 10, sum(loss[-10:]) / 10
print(f"smoke: {len(loss)} steps, mean loss first 10 {first:.4f} -> last 10 {last:.4f}, "
      f"{rows[-1]['img_per_s']:.0f} img/s")
sys.exit(0 if last < first else 1)
PY
echo "PASS: $backend $prec smoke"
