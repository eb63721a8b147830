#!/usr/bin/env bash
# Keep the one-command GPU check working between GPU loans: build the bundle
# from this build directory and run tests/gpu/device_check.sh --rehearse on it
# in a clean environment. On a machine without a GPU the GPU tests must report
# "skipped" and the check must still finish with exit 0; with a GPU it runs the
# real check (at the rehearsal's tiny shape).
#   test_gpu_check_rehearsal.sh BUILD_DIR SRC_DIR
set -uo pipefail
build=$1 src=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/effnet-gpucheck.XXXXXX")
trap 'rm -rf "$work"' EXIT
bash "$src/tests/gpu/make_bundle.sh" "$build" "$work/bundle" --tar > "$work/bundle.log" 2>&1 \
    || { cat "$work/bundle.log"; echo "FAIL: make_bundle.sh"; exit 1; }
tail -3 "$work/bundle.log"
cd "$src" && env -i PATH=/usr/bin:/bin HOME="$work" OUT="$work/out" \
    bash tests/gpu/device_check.sh --rehearse "$work/bundle.tar.gz" > "$work/check.log" 2>&1
rc=$?
tail -25 "$work/check.log"
[ $rc -eq 0 ] || { echo "FAIL: device_check.sh --rehearse exited $rc"; exit 1; }
grep -q "no test failed" "$work/check.log" || { echo "FAIL: the check did not report 'no test failed'"; exit 1; }
grep -q "^| gpu_train_smoke_cpu_half | pass" "$work/check.log" || { echo "FAIL: the bundle's CPU smoke run did not pass"; exit 1; }
echo "PASS: GPU check rehearsal"
