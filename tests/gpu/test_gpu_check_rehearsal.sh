#!/usr/bin/env bash
# Keep the one-command GPU check working between GPU loans: build the bundle
# from this build directory and run tests/gpu/device_check.sh --rehearse on it
# in a clean environment (env -i), inside a network namespace with no network
# at all (unshare -n: not even loopback; the MPI singleton, effnet train and
# PyTorch must still run). On a machine without a GPU the GPU tests must report
# "skipped" and the check must still finish with exit 0; with a GPU it runs the
# real check (at the rehearsal's tiny shape). Every run's $OUT is checked
# against what the device machine hands back: at most 8 files, at most two
# folders down, at most 16 MiB each, plain names; and summary.md must sit
# whole in the last 12,000 characters of the output.
#
# Phases: 0. make_bundle.sh refuses a native (-march=native) build without
# --allow-native; 1. env_check.sh alone against fake versions (cuDNN older in
# the same major: warn and go on; another major: FAIL) and a non-portable
# bundle outside --rehearse (FAIL); 2. a faked driver mismatch (an nvidia-smi
# that reports driver 535 / CUDA 12.2 for this CUDA 13 bundle) stops within
# seconds, exit 3, with the table -- and the PyTorch half still runs; 3. the
# rehearsal itself; 4. the hard deadline (CHECK_HARD_S) and 5. a SIGTERM from
# outside stop the check early, and what was done still comes back.
#   test_gpu_check_rehearsal.sh BUILD_DIR SRC_DIR
set -uo pipefail
build=$1 src=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/effnet-gpucheck.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# check_out OUT LOG WHAT: $OUT as the device machine would hand it back
check_out() {
    local out=$1 log=$2 what=$3 n
    n=$(find "$out" -type f | wc -l)
    [ "$n" -ge 1 ] && [ "$n" -le 8 ] || fail "$what: $n files under \$OUT (the device machine returns at most 8)"
    [ -z "$(find "$out" -mindepth 4 -type f)" ] || fail "$what: files more than two folders down: $(find "$out" -mindepth 4 -type f | head -3)"
    [ -z "$(find "$out" -type f -size +16M)" ] || fail "$what: a file over 16 MiB: $(find "$out" -type f -size +16M)"
    [ -z "$(find "$out" -mindepth 1 | sed "s|^$out/||" | tr '/' '\n' | grep -v -E '^[A-Za-z0-9._-]+$')" ] ||
        fail "$what: a name with characters other than letters, digits, '.', '_' and '-'"
    [ -f "$out/summary.md" ] && [ -f "$out/device-check.tar.gz" ] || fail "$what: no summary.md or device-check.tar.gz in \$OUT"
    tar -tzf "$out/device-check.tar.gz" > "$work/list" 2>&1 || fail "$what: the archive does not unpack"
    grep -q '^device-check/summary.md$' "$work/list" && grep -q '^device-check/logs/' "$work/list" ||
        fail "$what: the archive lacks summary.md or logs/"
    /usr/bin/python3 - "$out/summary.md" "$log" <<'PY' || fail "$what: summary.md is not whole in the last 12,000 characters of the output"
import sys
summary = open(sys.argv[1], errors='replace').read().strip()
tail = open(sys.argv[2], errors='replace').read()[-12000:]
sys.exit(0 if summary and summary in tail else 1)
PY
    echo "$what: \$OUT ok ($n files, $(du -sk "$out" | cut -f1) KiB; the summary ($(wc -c < "$out/summary.md") chars) is in the output's last 12,000)"
}

# 0. the bundle: portable, or --allow-native for this machine only
native=$(awk -F= '/^EFFNET_NATIVE:/ {print $2}' "$build/CMakeCache.txt")
allow=()
if [ "$native" != OFF ]; then
    bash "$src/tests/gpu/make_bundle.sh" "$build" "$work/refused" --tar > "$work/refused.log" 2>&1 &&
        fail "make_bundle.sh made a bundle from an EFFNET_NATIVE=$native build without --allow-native"
    grep -q 'DEFFNET_NATIVE=OFF' "$work/refused.log" || fail "the refusal does not name the fix: $(tail -1 "$work/refused.log")"
    echo "make_bundle.sh refuses a native build: $(grep -o 'configured with EFFNET_NATIVE=[A-Z]*' "$work/refused.log")"
    allow=(--allow-native)
fi
bash "$src/tests/gpu/make_bundle.sh" "$build" "$work/bundle" --tar ${allow[@]+"${allow[@]}"} > "$work/bundle.log" 2>&1 \
    || { cat "$work/bundle.log"; fail "make_bundle.sh"; }
tail -3 "$work/bundle.log"
size=$(stat -c %s "$work/bundle.tar.gz")
echo "bundle: $((size / 1048576)) MiB ($size bytes)"
[ "$size" -lt $((60 * 1048576)) ] || fail "the bundle is over 60 MiB"

# 1. env_check.sh alone: fake versions, a non-portable bundle
probe() { # a gpu_runner --probe answer with cuDNN $1 (built 91900)
    printf 'echo cuda_runtime=13000; echo cuda_runtime_built=13000; echo cuda_driver=13000; echo cudnn=%s; echo cudnn_built=91900; echo nccl=22809; echo nccl_built=22809; echo devices=1; echo "verdict=1 CUDA device(s)"; exit 0' "$1"
}
env -i PATH=/usr/bin:/bin HOME="$work" ENV_CHECK_PROBE="$(probe 91000)" \
    bash "$src/tests/gpu/env_check.sh" --rehearse "$work/bundle" "$work/env-old" > "$work/env-old.log" 2>&1
rc=$?
[ $rc = 0 ] || { cat "$work/env-old.log"; fail "an older cuDNN of the same major must not stop the check (exit $rc)"; }
grep -q '^| cuDNN version | >= 91900 (built) | 91000 | warn |' "$work/env-old/env_check.md" || fail "no cuDNN warn row for 91000 < 91900"
env -i PATH=/usr/bin:/bin HOME="$work" ENV_CHECK_PROBE="$(probe 80900)" \
    bash "$src/tests/gpu/env_check.sh" --rehearse "$work/bundle" "$work/env-major" > "$work/env-major.log" 2>&1
rc=$?
[ $rc = 3 ] && grep -q '^| cuDNN version | .* | 80900 | FAIL |' "$work/env-major/env_check.md" || fail "cuDNN 8 for a cuDNN 9 build must FAIL (exit $rc)"
echo "cuDNN 9.10 for a 9.19 build: warn, the check goes on; cuDNN 8.9: FAIL"
if [ "$native" != OFF ]; then
    env -i PATH=/usr/bin:/bin HOME="$work" bash "$src/tests/gpu/env_check.sh" "$work/bundle" "$work/env-native" > "$work/env-native.log" 2>&1
    [ $? = 3 ] && grep -q '^| portable build | EFFNET_NATIVE=OFF | ON | FAIL |' "$work/env-native/env_check.md" ||
        fail "a bundle made with --allow-native must FAIL the environment check outside --rehearse"
    echo "a non-portable bundle fails the environment check outside --rehearse"
fi

# The rehearsal runs without any network when this machine allows it.
NONET=()
if unshare -n true 2> /dev/null; then NONET=(unshare -n)
elif unshare -rn true 2> /dev/null; then NONET=(unshare -rn)
else echo "NOTE: unshare -n is not permitted here: the check is rehearsed WITH the network"; fi
dc() { # dc OUTDIR LOG [ENV=V...] -- ARGS: device_check.sh in a clean environment
    local out=$1 log=$2; shift 2
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    (cd "$src" && ${NONET[@]+"${NONET[@]}"} env -i PATH=/usr/bin:/bin HOME="$work" OUT="$out" ${envs[@]+"${envs[@]}"} \
        bash tests/gpu/device_check.sh "$@") > "$log" 2>&1
}

# 2. a faked driver mismatch: stops in seconds with the table; the PyTorch half still runs
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
dc "$work/out-mismatch" "$work/mismatch.log" ENV_CHECK_NVIDIA_SMI="$work/fake/nvidia-smi" -- --rehearse "$work/bundle.tar.gz"
rc=$? secs=$(($(date +%s) - t0))
cat "$work/out-mismatch/summary.md"
[ $rc -eq 3 ] || { tail -20 "$work/mismatch.log"; fail "a driver mismatch must exit 3, got $rc"; }
[ $secs -le 45 ] || fail "the mismatch took ${secs}s to stop (want seconds, and the PyTorch half)"
S=$work/out-mismatch/summary.md
grep -q '^| NVIDIA driver | >= 580 (CUDA 13.0) | 535.104.05 (CUDA 12.2) | FAIL | driver >= 580' "$S" || fail "summary.md has no driver FAIL row"
grep -q 'STOPPED at the environment check' "$S" || fail "no STOPPED line"
grep -q '^| torch_b0 | pass |' "$S" || fail "the PyTorch half did not run on a mismatch"
tar -tzf "$work/out-mismatch/device-check.tar.gz" > "$work/mismatch.list" || fail "the mismatch archive does not unpack"
grep -q runner_results "$work/mismatch.list" && fail "tests ran after the mismatch"
check_out "$work/out-mismatch" "$work/mismatch.log" mismatch
echo "mismatch: stopped after ${secs}s with exit 3, the PyTorch half ran"

# 3. the rehearsal itself (OMP_NUM_THREADS=3: the tests' own "2" must not override it)
t0=$(date +%s)
dc "$work/out" "$work/check.log" OMP_NUM_THREADS=3 -- --rehearse "$work/bundle.tar.gz"
rc=$?
tail -25 "$work/check.log"
echo "rehearsal: $(($(date +%s) - t0))s wall"
S=$work/out/summary.md
[ $rc -eq 0 ] || fail "device_check.sh --rehearse exited $rc"
grep -q "no test failed" "$S" || fail "the check did not report 'no test failed'"
grep -q "^| gpu_train_smoke_cpu_half | pass" "$S" || fail "the bundle's CPU smoke run (effnet train, an MPI singleton) did not pass"
grep -q "^| mpi_singleton | pass" "$S" || fail "the MPI singleton probe did not pass"
grep -q "^| gpu_model_fp32 | skip" "$S" || fail "gpu_model_fp32 did not run in gpu_runner"
grep -q "^| gpu_ops_bf16_conv2d | skip" "$S" && grep -q "^| gpu_ops_fp16_optim | skip" "$S" || fail "the op groups did not run one test each"
grep -q "^| B0 | 32 | 2 | " "$S" && grep -q "^| B7 (largest batch) | 32 | " "$S" || fail "summary.md has no B0/B7 comparison rows"
for f in 'stem conv' '1x1 conv' depthwise 'batchnorm+swish' squeeze-excite dropout/add head/loss optimizer; do
    grep -q -E "^\| $(printf '%s' "$f" | sed 's/[+.]/\\&/g')( \| [0-9.]+){6} \|" "$S" || fail "the per-op table has no numbers for '$f' on both sides"
done
mkdir -p "$work/x" && tar -xzf "$work/out/device-check.tar.gz" -C "$work/x" || fail "cannot unpack the archive"
grep -q 'OMP_NUM_THREADS=3$' "$work/x/device-check/logs/gpu_ops_bf16_dwconv.log" ||
    fail "the runner's tests did not keep the check's OMP_NUM_THREADS=3: $(head -1 "$work/x/device-check/logs/gpu_ops_bf16_dwconv.log")"
grep -q OMP_NUM_THREADS "$work/x/device-check/runner_spec.tsv" && fail "GPU_TESTS.tsv's OMP_NUM_THREADS reached the runner"
if [ ${#NONET[@]} -gt 0 ]; then
    grep -q '^== network interfaces: lo$' "$work/x/device-check/env.txt" || fail "the check did not run without network: $(grep network "$work/x/device-check/env.txt")"
    echo "rehearsed without any network (${NONET[*]}: loopback only, and down): $(grep '^== network' "$work/x/device-check/env.txt")"
fi
check_out "$work/out" "$work/check.log" rehearsal

# 4. the hard deadline stops the check in the middle of its tests; what was done comes back
t0=$(date +%s)
dc "$work/out-hard" "$work/hard.log" CHECK_HARD_S=14 -- --rehearse "$work/bundle.tar.gz"
rc=$? secs=$(($(date +%s) - t0))
[ $rc = 124 ] || { tail -20 "$work/hard.log"; fail "the hard deadline must stop the check with exit 124, got $rc"; }
[ $secs -le 30 ] || fail "the hard deadline (14 s) took ${secs}s to stop the check"
grep -q 'STOPPED EARLY (the hard deadline, 14 s)' "$work/out-hard/summary.md" || fail "no 'STOPPED EARLY (the hard deadline' in summary.md"
grep -q '^| env_check | pass' "$work/out-hard/summary.md" || fail "the early summary lost the steps done before the deadline"
check_out "$work/out-hard" "$work/hard.log" "hard deadline"
echo "hard deadline: stopped after ${secs}s with exit 124, partial results back"

# 5. a SIGTERM from outside (as a time-out of the run would send) during the GPU tests
(cd "$src" && ${NONET[@]+"${NONET[@]}"} env -i PATH=/usr/bin:/bin HOME="$work" OUT="$work/out-term" \
    bash tests/gpu/device_check.sh --rehearse "$work/bundle.tar.gz" > "$work/term.log" 2>&1) &
pid=$!
for _ in $(seq 1 120); do grep -q 'gpu_runner: running' "$work/term.log" 2> /dev/null && break; sleep 0.5; done
sleep 1
t0=$(date +%s)
dcpid=$(sed -n 's/^device_check: pid \([0-9]*\),.*/\1/p' "$work/term.log" | head -1)
[ -n "$dcpid" ] || fail "device_check.sh did not print its pid"
kill -TERM "$dcpid"
wait "$pid"
rc=$? secs=$(($(date +%s) - t0))
[ $rc = 124 ] || { tail -20 "$work/term.log"; fail "SIGTERM must stop the check with exit 124, got $rc"; }
[ $secs -le 15 ] || fail "SIGTERM took ${secs}s to stop the check"
grep -q 'STOPPED EARLY (SIGTERM)' "$work/out-term/summary.md" || fail "no 'STOPPED EARLY (SIGTERM)' in summary.md"
tar -tzf "$work/out-term/device-check.tar.gz" > "$work/term.list" || fail "the SIGTERM archive does not unpack"
grep -q 'device-check/logs/gpu_runner.log' "$work/term.list" || fail "the archive lacks the interrupted step's log"
check_out "$work/out-term" "$work/term.log" SIGTERM
echo "SIGTERM: stopped after ${secs}s with exit 124, partial results back"
echo "PASS: GPU check rehearsal"
