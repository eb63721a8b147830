#!/usr/bin/env bash
# The sanitizer pass (issue 12; run_all.sh runs it after the main ctest):
# build the C code once more with AddressSanitizer + UndefinedBehaviorSanitizer
# (-DEFFNET_SANITIZE=ON, CPU only) in its own build directory, run the tests
# below against that build, and fail on any test failure or sanitizer report.
#   bash tests/run_sanitized.sh [BUILD_DIR]      (default: build-sanitize)
#   EFFNET_SANITIZE_TESTS=REGEX bash tests/run_sanitized.sh   (other tests, for a quick local run)
# The normal Release build in build/ is not touched.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${1:-build-sanitize}

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEFFNET_SANITIZE=ON -DEFFNET_CUDA=OFF
cmake --build "$build" -j"$(nproc)"

# The C unit tests, the Python checks that drive our binaries, and the
# multi-rank effnet train/ckpt tests (real mpirun, 2 ranks); the fixtures
# they need (reference_fixture_b0, ckpt_setup) are added by ctest. Left out
# for time: train_equivalence and train_retention (the slowest train tests:
# so the SGD and accum > 1 steps and checkpoint pruning run unsanitized),
# reference_b1/b2 (bigger shapes of the ops reference_b0 runs), ckpt_pytorch,
# ckpt_plots, data_real_cifar10 and model_counts_vs_pytorch (mostly Python
# and data volume; test_model_counts builds every model),
# scaling_report and data_fetch_script (no C of ours), and the slurm_* tests
# (their timings assume an unloaded machine).
tests=(
  backend_table model_counts amp_loss_scaler half_conversions half_vs_pytorch dropout
  gradcheck overfit reference_b0 checkpoint checkpoint_pytorch
  data_sampler data_loader data_converter data_sampler_shards data_augment_torchvision data_images_generated
  train_config train_baddata train_kill train_eval train_nan train_resume train_signal
  ckpt_commands ckpt_badinput fuzz_readers json_output
  kernel_index bucket_layout recompute_1thread dwconv_isa freeze
)
known=$(ctest --test-dir "$build" -N)
for t in "${tests[@]}"; do # a renamed test must not drop out of the pass silently
  grep -q ": $t\$" <<<"$known" || { echo "run_sanitized.sh: no test named $t in $build"; exit 1; }
done
regex=${EFFNET_SANITIZE_TESTS:-"^($(IFS='|'; echo "${tests[*]}"))\$"}

# Every report is fatal and goes to a file (log_path: one per process), so a
# report from a process whose failure a test expects, or whose output it
# hides, still fails the pass. libasan and libubsan each carry a copy of the
# sanitizer runtime and UBSan's log_path ends up setting ASan's copy, so both
# get the same path; UBSan's own message goes to stderr, and handle_abort=1
# turns its abort into an ASan report (with the stack) in that file.
# fast_unwind_on_malloc=0 gives leak stacks through Open MPI's libraries
# (built without frame pointers) for the suppressions in tests/lsan.supp.
logs=$(mktemp -d "${TMPDIR:-/tmp}/effnet-sanitize.XXXXXX")
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:handle_abort=1:detect_leaks=1:fast_unwind_on_malloc=0:log_path=$logs/report"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:log_path=$logs/report"
export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp:print_suppressions=0"

# One kind of report is the point of the code that meets it: src/h5probe.c
# reads an unverified checkpoint in a forked child so that HDF5 1.10's faults
# on a damaged file kill the child, not effnet, and ckpt_badinput makes HDF5
# read out of bounds there on purpose (chunkdim.h5). A report counts as that
# only if its first stack, after the sanitizer's own frames, faults inside
# libhdf5 and runs in the probe's child(); it is listed, not failed. Any other
# report, in that child or anywhere, fails the pass.
probe_child_fault() {
  awk '/ERROR: AddressSanitizer/ {on = 1; next} on && /^$/ {exit} on && /^ *#[0-9]+ / {print}' "$1" > "$logs/stack"
  grep -v -E 'in __(interceptor|asan|sanitizer)_|/libsanitizer/' "$logs/stack" | head -1 | grep -q 'libhdf5' &&
    grep -q -E ' in child .*/src/h5probe\.c:[0-9]+' "$logs/stack"
}

rc=0
ctest --test-dir "$build" --output-on-failure -j1 -R "$regex" || rc=1
shopt -s nullglob
reports=() probe=()
for f in "$logs"/report.*; do
  if probe_child_fault "$f"; then probe+=("$f"); else reports+=("$f"); fi
done
for f in ${probe[@]+"${probe[@]}"}; do
  echo "run_sanitized.sh: expected: $(basename "$f"): HDF5 faulted inside src/h5probe.c's test-read child ($(grep -m1 -o 'AddressSanitizer: [a-z-]*' "$f"))"
done
for f in ${reports[@]+"${reports[@]}"}; do
  echo "==== sanitizer report $f"
  cat "$f"
done
if [ ${#reports[@]} -gt 0 ]; then
  echo "run_sanitized.sh: ${#reports[@]} sanitizer report(s) above (kept in $logs)"
  rc=1
elif [ $rc -eq 0 ]; then
  rm -rf "$logs"
fi
[ $rc -eq 0 ] && echo "run_sanitized.sh: clean under ASan + UBSan + LSan (tests: $regex)"
exit $rc
