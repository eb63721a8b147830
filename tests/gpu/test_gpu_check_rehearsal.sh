#!/usr/bin/env bash
# Keep the one-command GPU check working between GPU loans: build the bundle
# from this build directory and run tests/gpu/device_check.sh --rehearse on it
# in a clean environment (env -i). On a machine without a GPU the GPU tests
# must report "skipped" and the check must still finish with exit 0; with a GPU
# it runs the real check (at the rehearsal's tiny shape). Then a faked
# mismatch (an nvidia-smi that reports driver 535 / CUDA 12.2 for this CUDA 13
# bundle) must stop the check within seconds, exit 3, with the table.
#   test_gpu_check_rehearsal.sh BUILD_DIR SRC_DIR
set -uo pipefail
build=$1 src=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/effnet-gpucheck.XXXXXX")
trap 'rm -rf "$work"' EXIT
bash "$src/tests/gpu/make_bundle.sh" "$build" "$work/bundle" --tar > "$work/bundle.log" 2>&1 \
    || { cat "$work/bundle.log"; echo "FAIL: make_bundle.sh"; exit 1; }
tail -3 "$work/bundle.log"
size=$(stat -c %s "$work/bundle.tar.gz")
echo "bundle: $((size / 1048576)) MiB ($size bytes)"
[ "$size" -lt $((60 * 1048576)) ] || { echo "FAIL: the bundle is over 60 MiB"; exit 1; }

# 1. a faked driver mismatch: stops in seconds with the table
mkdir -p "$work/fake"
cat > "$work/fake/nvidia-smi" <<'SMI'
#!/bin/sh
case "$*" in
    *--query-gpu*) echo "NVIDIA H200, 535.104.05, 143771" ;;
    -L) echo "GPU 0: NVIDIA H200 (UUID: GPU-fake)" ;;
    *) echo "| NVIDIA-SMI 535.104.05   Driver Version: 535.104.05   CUDA Version: 12.2 |" ;;
esac
SMI
chmod +x "$work/fake/nvidia-smi"
t0=$(date +%s)
cd "$src" && env -i PATH=/usr/bin:/bin HOME="$work" OUT="$work/out-mismatch" ENV_CHECK_NVIDIA_SMI="$work/fake/nvidia-smi" \
    bash tests/gpu/device_check.sh "$work/bundle.tar.gz" > "$work/mismatch.log" 2>&1
rc=$? secs=$(($(date +%s) - t0))
cat "$work/out-mismatch/summary.md"
[ $rc -eq 3 ] || { tail -20 "$work/mismatch.log"; echo "FAIL: a driver mismatch must exit 3, got $rc"; exit 1; }
[ $secs -le 30 ] || { echo "FAIL: the mismatch took ${secs}s to stop (want seconds)"; exit 1; }
grep -q '^| NVIDIA driver | >= 580 (CUDA 13.0) | 535.104.05 (CUDA 12.2) | FAIL | driver >= 580' "$work/out-mismatch/summary.md" ||
    { echo "FAIL: summary.md has no driver FAIL row"; exit 1; }
grep -q 'STOPPED at the environment check' "$work/out-mismatch/summary.md" || { echo "FAIL: no STOPPED line"; exit 1; }
[ ! -e "$work/out-mismatch/runner_results.tsv" ] || { echo "FAIL: tests ran after the mismatch"; exit 1; }
echo "mismatch: stopped after ${secs}s with exit 3"

# 2. the rehearsal itself
t0=$(date +%s)
cd "$src" && env -i PATH=/usr/bin:/bin HOME="$work" OUT="$work/out" \
    bash tests/gpu/device_check.sh --rehearse "$work/bundle.tar.gz" > "$work/check.log" 2>&1
rc=$?
tail -25 "$work/check.log"
echo "rehearsal: $(($(date +%s) - t0))s wall"
[ $rc -eq 0 ] || { echo "FAIL: device_check.sh --rehearse exited $rc"; exit 1; }
grep -q "no test failed" "$work/check.log" || { echo "FAIL: the check did not report 'no test failed'"; exit 1; }
grep -q "^| gpu_train_smoke_cpu_half | test | pass" "$work/check.log" || { echo "FAIL: the bundle's CPU smoke run did not pass"; exit 1; }
grep -q "^| gpu_model_fp32 | test | skip" "$work/check.log" || { echo "FAIL: gpu_model_fp32 did not run in gpu_runner"; exit 1; }
grep -q "^| B0 | 32 | 2 | " "$work/check.log" && grep -q "^| B7 (largest batch) | 32 | " "$work/check.log" ||
    { echo "FAIL: summary.md has no B0/B7 comparison rows"; exit 1; }
echo "PASS: GPU check rehearsal"
