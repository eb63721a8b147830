#!/usr/bin/env bash
# device_check.sh [--rehearse] [BUNDLE]   (run from the repository root)
#
# The one-command GPU check, planned within CHECK_BUDGET_S (250) seconds and
# stopped at CHECK_HARD_S (budget + 20) whatever happens:
#  1. environment (tests/gpu/env_check.sh): driver, GPU, CUDA runtime vs
#     driver, cuBLAS, cuDNN, NCCL, glibc, a portable bundle, PyTorch; on a
#     mismatch it runs only the PyTorch half (when torch sees a GPU) and
#     stops (exit 3) with a needed/found/fix table in summary.md;
#  2. the GPU op, model, graph, augmentation and NCCL tests in ONE process
#     (gpu_runner: one CUDA/cuDNN start-up, a cap per test, a fresh worker
#     after a test that ended its process), then the training smoke tests;
#  3. the Open MPI singleton probe;
#  4. effnet vs PyTorch eager (AMP bf16, channels_last): B0 224 batch 256;
#     per op family, effnet bench --profile against PyTorch's profiler on the
#     same shapes (ms, TFLOP/s, GB/s against the device's roofs); B7 600 at
#     the largest batch of a descending list (B7_BATCHES) that fits.
#
# BUNDLE: a directory made by tests/gpu/make_bundle.sh, or its .tar.gz.
# Without it: build from source when nvcc, cmake, MPI and HDF5 are all here,
# else gpu-bundle/ or gpu-bundle.tar.gz (in the repository root).
# --rehearse: tiny shapes (batch 2, 32x32, 1 step), on the CPU when no GPU
# is visible -- to rehearse the script on a machine without a GPU.
#
# What comes back (the device machine returns at most 8 files from $OUT, two
# folders down at most, 16 MiB each, and the last 12,000 characters of the
# output): ${OUT:-./device-check-out}/ gets exactly three files, rewritten
# after every step so that a kill still leaves the last snapshot:
#   device-check.tar.gz  everything: summary.md, results.tsv, env.txt, *.json, logs/
#   summary.md           the result (also printed LAST, under 11,000 characters)
#   results.tsv          every test and step: status, rc, seconds, note
# The working files live in a temporary directory, removed at the end.
# Exit status: 0 when no test failed, 1 when some did (see summary.md), 2
# when there is nothing to run, 3 when the environment does not match the
# bundle, 124 when stopped early (a signal, or the hard deadline).
# TEST_TIMEOUT_S (45): the cap of any one test. TORCH_COMPILE=1: also B0
# under torch.compile (not in the budget: compiling takes minutes).
set -u
T0=$(date +%s)
# PyTorch runs with the environment it came with: the CUDA directories added
# below for effnet (cuDNN/NCCL sonames are the same across CUDA majors) and the
# bundle's Open MPI settings are not for it.
if [ -n "${LD_LIBRARY_PATH+x}" ]; then TORCH_ENV=(env "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"); else TORCH_ENV=(env -u LD_LIBRARY_PATH); fi
BUDGET=${CHECK_BUDGET_S:-250}
HARD=${CHECK_HARD_S:-$((BUDGET + 20))}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
REHEARSE=0 BUNDLE_ARG=
for a in "$@"; do
    case $a in
        --rehearse) REHEARSE=1 ;;
        -h|--help) sed -n '2,40p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "device_check: unknown option $a" >&2; exit 2 ;;
        *) BUNDLE_ARG=$a ;;
    esac
done
OUTDIR=${OUT:-./device-check-out}
mkdir -p "$OUTDIR" || { echo "device_check: cannot create $OUTDIR" >&2; exit 2; }
OUTDIR=$(cd "$OUTDIR" && pwd)
WORKROOT=$(mktemp -d "${TMPDIR:-/tmp}/effnet-devcheck.XXXXXX") || { echo "device_check: mktemp failed in ${TMPDIR:-/tmp}" >&2; exit 2; }
D=$WORKROOT/device-check  # the archive's one folder
mkdir -p "$D/logs" || exit 2
RES=$D/results.tsv ENVF=$D/env.txt SUMMARY=$D/summary.md ARCHIVE=$OUTDIR/device-check.tar.gz
printf 'name\tkind\tstatus\trc\tseconds\tnote\n' > "$RES"
: > "$ENVF"
PACK_MAX=$((15 * 1048576))  # under the 16 MiB a returned file may have

say() { echo "[device_check $(($(date +%s) - T0))s] $*"; }
echo "device_check: pid $$, results to $OUTDIR (budget ${BUDGET} s, hard stop at ${HARD} s)"
elapsed() { echo $(($(date +%s) - T0)); }
# plan CAP RESERVE: seconds for the next step, at most CAP, leaving RESERVE
# seconds of the budget for the steps after it; 0 when fewer than 10 are left.
plan() {
    local left=$((BUDGET - $(elapsed) - $2))
    [ "$left" -gt "$1" ] && left=$1
    [ "$left" -lt 10 ] && left=0
    echo "$left"
}
record() { # record NAME KIND STATUS RC SECONDS [NOTE]
    local note=${6:-}
    note=${note//$'\t'/ }
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$note" >> "$RES"
    say "$1: $3 (rc $4, ${5}s)${note:+ -- $note}"
}
# why RC LOG: a name for a non-zero exit status
why() {
    local rc=$1 log=$2
    if grep -q 'error while loading shared libraries' "$log" 2>/dev/null; then
        echo "cannot load $(grep -m1 -o 'shared libraries: [^:]*' "$log" | sed 's/shared libraries: //') (error while loading shared libraries)"
        return
    fi
    if grep -q "not found (required by" "$log" 2>/dev/null; then
        grep -m1 "not found (required by" "$log"; return
    fi
    case $rc in
        124|137) echo "timed out" ;;
        126) echo "not executable" ;;
        127) echo "command or library not found" ;;
        132) echo "SIGILL: illegal instruction (built with -march=native for another CPU? see BUNDLE_MANIFEST.txt)" ;;
        134) echo "SIGABRT: aborted" ;;
        135) echo "SIGBUS" ;;
        136) echo "SIGFPE" ;;
        139) echo "SIGSEGV: segmentation fault" ;;
        *) if [ "$rc" -gt 128 ] 2>/dev/null; then echo "killed by signal $((rc - 128))"
           elif grep -q -i -E 'error|fail|abort' "$log" 2>/dev/null; then
               grep -i -E 'error|fail|abort' "$log" | tail -n 1 | cut -c1-200
           else tail -n 1 "$log" 2>/dev/null | cut -c1-200; fi ;;
    esac
}

# ---- what comes back: the archive, summary.md and results.tsv in OUTDIR ------------
HAVE_GPU=0 FAILED=0 PY='' TORCH_CUDA=0 LD_ADD='' GPU_NAME='' ENV_SECS=0  # (and GPU_MEM_MIB: env_check.env)
write_summary() { # write_summary STATE [REASON]: summary.md (dc_summary.py; raw without python)
    local py=${PYANY:-$(command -v python3 || true)} args=()
    [ "$REHEARSE" = 1 ] && args+=(--rehearse)
    [ "$HAVE_GPU" = 1 ] && args+=(--gpu)
    if [ -n "$py" ] && "$py" "$REPO/tests/gpu/dc_summary.py" "$D" --state "$1" --reason "${2:-}" --gpu-name "${GPU_NAME:-none}" \
        --secs "$(elapsed)" --budget "$BUDGET" ${args[@]+"${args[@]}"} > "$SUMMARY.tmp" 2> "$D/logs/dc_summary.log"; then
        mv "$SUMMARY.tmp" "$SUMMARY"
    else
        { echo "# effnet device check: $1 ${2:-} (no python for the tables; raw results)"; cat "$RES"; } > "$SUMMARY"
    fi
}
# pack STATE [REASON]: write summary.md, then the archive; logs are cut to
# their first and last 100 KiB if the archive would pass PACK_MAX.
pack() {
    write_summary "$@"
    cp "$SUMMARY" "$OUTDIR/summary.md.tmp" && mv "$OUTDIR/summary.md.tmp" "$OUTDIR/summary.md"
    cp "$RES" "$OUTDIR/results.tsv.tmp" && mv "$OUTDIR/results.tsv.tmp" "$OUTDIR/results.tsv"
    tar -C "$WORKROOT" -czf "$OUTDIR/device-check.tar.gz.tmp" device-check 2> /dev/null
    if [ "$(stat -c %s "$OUTDIR/device-check.tar.gz.tmp" 2> /dev/null || echo 0)" -gt "$PACK_MAX" ]; then
        local s=$WORKROOT/small f
        rm -rf "$s"; mkdir -p "$s" && cp -r "$D" "$s/" || return 1
        for f in "$s"/device-check/logs/*; do
            [ "$(stat -c %s "$f")" -gt 204800 ] || continue
            { head -c 102400 "$f"; printf '\n... [cut by device_check: the log was %s bytes] ...\n' "$(stat -c %s "$f")"; tail -c 102400 "$f"; } > "$f.cut" && mv "$f.cut" "$f"
        done
        tar -C "$s" -czf "$OUTDIR/device-check.tar.gz.tmp" device-check 2> /dev/null
        rm -rf "$s"
    fi
    mv "$OUTDIR/device-check.tar.gz.tmp" "$ARCHIVE"
}
snapshot() { pack early "killed before its end: the last snapshot, after ${1:-?} at $(elapsed) s"; }
# finish STATE REASON RC: pack, the tails of what failed, and summary.md LAST
# (the end of the output is what comes back).
finish() {
    FINISHED=1
    trap '' TERM INT
    pack "$1" "$2"
    local r
    for r in $(awk -F'\t' 'NR > 1 && ($3 == "fail" || $3 == "timeout") {print $1}' "$RES" | head -6); do
        [ -f "$D/logs/$r.log" ] || continue
        echo "---- last lines of logs/$r.log"
        tail -n 8 "$D/logs/$r.log" | cut -c1-160
    done
    echo
    say "$([ "$1" = complete ] && echo 'done' || echo STOPPED) in $(elapsed)s, exit $3; $OUTDIR: device-check.tar.gz (everything), summary.md, results.tsv$([ $FAILED = 0 ] || echo '; SOME TESTS FAILED')"
    echo
    cat "$SUMMARY"
}

# ---- stopping: a signal, the hard deadline, or an unexpected exit -------------------
# gpu_runner's results into results.tsv (once: also when the check stops during the runner)
merge_runner_results() {
    [ "$RUNNER_MERGED" = 0 ] && [ -s "$RRES" ] || return 0
    RUNNER_MERGED=1
    local name st rc secs note lg
    while IFS=$'\t' read -r name st rc secs note; do
        [ -n "$name" ] || continue
        lg=$D/logs/$name.log
        case $st in
            pass) note=$(grep -m1 -E '^(PASS|test_)' "$lg" 2>/dev/null | cut -c1-100) ;;
            skip) note=$(grep -m1 -i 'skip' "$lg" 2>/dev/null | cut -c1-100) ;;
            fail) [ -z "$note" ] && note=$(why "$rc" "$lg"); FAILED=1 ;;
            *) FAILED=1 ;;
        esac
        record "$name" test "$st" "$rc" "$secs" "$note"
    done < "$RRES"
}
STEP_PID='' STOP_REASON='' FINISHED=0 UNPACKED='' WATCHDOG='' CUR='' RUNNER_MERGED=0 RRES=''
stop_step() { # end the running step's process group (timeout leads it), TERM then KILL
    [ -n "$STEP_PID" ] || return 0
    kill -TERM -- "-$STEP_PID" 2> /dev/null || kill -TERM "$STEP_PID" 2> /dev/null
    local _
    for _ in 1 2 3 4 5 6; do kill -0 "$STEP_PID" 2> /dev/null || break; sleep 0.5; done
    kill -KILL -- "-$STEP_PID" 2> /dev/null
    STEP_PID=''
}
on_signal() {
    STOP_REASON=$1
    [ -f "$WORKROOT/deadline" ] && STOP_REASON="the hard deadline, ${HARD} s"
    exit 124
}
on_exit() {
    local rc=$?
    trap '' TERM INT
    [ -n "$WATCHDOG" ] && { kill "$WATCHDOG" 2> /dev/null; wait "$WATCHDOG" 2> /dev/null; }
    stop_step
    if [ "$FINISHED" = 0 ]; then
        merge_runner_results
        record stopped setup timeout "$rc" "$(elapsed)" "${STOP_REASON:-exit $rc}${CUR:+ during $CUR}"
        finish early "${STOP_REASON:-exit $rc}" "$rc"
    fi
    [ -n "$UNPACKED" ] && rm -rf "$UNPACKED"
    rm -rf "$WORKROOT"
}
trap on_exit EXIT
trap 'on_signal SIGTERM' TERM
trap 'on_signal SIGINT' INT
# the watchdog: at HARD seconds, stop this script (its trap packs and prints);
# it ends by itself once this script is gone (its parent is no longer $$).
parent_alive() { local st; read -r st < "/proc/$BASHPID/stat" && st=${st##*) } && set -- $st && [ "$2" = "$$" ]; }
( exec > /dev/null 2>&1
  while [ $(($(date +%s) - T0)) -lt "$HARD" ]; do parent_alive || exit 0; sleep 1; done
  parent_alive && { : > "$WORKROOT/deadline"; kill -TERM $$; } ) &
WATCHDOG=$!

# run_step NAME KIND SECONDS CMD... : run with a timeout, in the background so
# that a signal is handled at once; log to logs/NAME.log; sets STEP_RC, STEP_S.
run_step() {
    local name=$1 t=$3; shift 3  # $2: the kind, for the reader
    local log=$D/logs/$name.log s0 s1
    say "$name: running (timeout ${t}s): $*"
    CUR=$name
    s0=$(date +%s.%N)
    ( cd "${STEP_CWD:-.}" && exec timeout -k 5 "$t" "$@" ) > "$log" 2>&1 < /dev/null &
    STEP_PID=$!
    wait "$STEP_PID"
    STEP_RC=$?
    STEP_PID='' CUR=''
    s1=$(date +%s.%N)
    STEP_S=$(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.1f", b - a }')
}

# ---- what to run: a bundle, or a fresh build ----------------------------------
BIN='' TESTDIR='' MODE='' SRCBUILD='' BUNDLE=''
use_bundle() { # use_bundle DIR|TARBALL (.tar.gz)
    local b=$1 c
    if [ -f "$b" ]; then
        say "unpacking $b"
        UNPACKED=$(mktemp -d "${TMPDIR:-/tmp}/effnet-bundle.XXXXXX") || return 1
        tar -xzf "$b" -C "$UNPACKED" || { echo "device_check: cannot unpack $b" >&2; return 1; }
        b=
        for c in "$UNPACKED"/*/ "$UNPACKED/"; do [ -x "$c/bin/effnet" ] && { b=$c; break; }; done
        [ -n "$b" ] || { echo "device_check: $1 holds no */bin/effnet" >&2; return 1; }
    fi
    [ -x "$b/bin/effnet" ] || { echo "device_check: $b/bin/effnet not found" >&2; return 1; }
    BUNDLE=$(cd "$b" && pwd)
    BIN=$BUNDLE/bin TESTDIR=$BUNDLE/bin MODE="bundle $1"
    # shellcheck source=/dev/null
    [ -f "$BIN/bundle-env.sh" ] && source "$BIN/bundle-env.sh"
    return 0
}
try_build() {
    local nvcc t
    nvcc=$(command -v nvcc || { [ -x /usr/local/cuda/bin/nvcc ] && echo /usr/local/cuda/bin/nvcc; })
    [ -n "$nvcc" ] && command -v cmake > /dev/null && command -v mpicc > /dev/null &&
        { command -v h5cc > /dev/null || ls /usr/include/hdf5* /usr/include/*/hdf5* > /dev/null 2>&1; } ||
        { say "no source build: needs nvcc, cmake, mpicc and HDF5 headers"; return 1; }
    local b=$REPO/build-devcheck
    t=$(plan 90 150); [ "$t" -gt 0 ] || return 1
    run_step build_configure setup "$t" cmake -S "$REPO" -B "$b" -DEFFNET_CUDA=ON -DCMAKE_BUILD_TYPE=Release
    [ "$STEP_RC" = 0 ] || { record build_configure setup fail "$STEP_RC" "$STEP_S" "$(why $STEP_RC "$D/logs/build_configure.log")"; return 1; }
    t=$(plan 240 100); [ "$t" -gt 0 ] || return 1
    run_step build setup "$t" cmake --build "$b" -j"$(nproc)"
    [ "$STEP_RC" = 0 ] || { record build setup fail "$STEP_RC" "$STEP_S" "$(why $STEP_RC "$D/logs/build.log")"; return 1; }
    record build setup pass 0 "$STEP_S" "$b"
    BIN=$b TESTDIR=$b/tests/gpu MODE="source build $b" SRCBUILD=$b
}
if [ -n "$BUNDLE_ARG" ]; then
    use_bundle "$BUNDLE_ARG" || { record bundle setup fail 2 "$(elapsed)" "cannot use $BUNDLE_ARG"; finish early "no bundle" 2; exit 2; }
else
    if ! try_build; then
        for c in "$REPO/gpu-bundle" "$REPO/gpu-bundle.tar.gz"; do
            [ -e "$c" ] && { use_bundle "$c" && break; }
        done
    fi
    [ -n "$BIN" ] || { record bundle setup fail 2 "$(elapsed)" "nothing to run: no bundle given or found, and no source build"; finish early "nothing to run" 2; exit 2; }
fi
EFFNET=$BIN/effnet
say "using $MODE"

# ---- section 4's steps (also the PyTorch half on a mismatch) ------------------------
if [ "$REHEARSE" = 1 ]; then
    B0=(--resolution 32 --batch 2 --steps 1 --warmup 1) B0PROF=(--resolution 32 --batch 2 --steps 1 --warmup 1)
    TPROF=1 B7R=32 B7LIST=${B7_BATCHES:-2 1} B7STEPS=(--steps 1 --warmup 1) B7TRY=30
else
    B0=(--resolution 224 --batch 256 --steps 15 --warmup 3) B0PROF=(--resolution 224 --batch 256 --steps 3 --warmup 1)
    TPROF=2 B7R=600 B7LIST=${B7_BATCHES:-96 64 48 32 24 16 8} B7STEPS=(--steps 4 --warmup 2) B7TRY=30
fi
json_of() { grep -E '^\{' "$1" | tail -1; }
torch_run() { # torch_run NAME SECONDS ARGS...
    if [ -z "$PY" ]; then record "$1" bench skip - 0 "no python with torch"; : > "$D/$1.json"; return; fi
    local thr=(); [ "$DEV" = cpu ] && thr=(--threads 2)
    run_step "$1" bench "$2" "${TORCH_ENV[@]}" "$PY" "$REPO/tests/gpu/bench_torch_gpu.py" --device "$DEV" --modes eager \
        --amp bf16 ${thr[@]+"${thr[@]}"} "${@:3}"
    json_of "$D/logs/$1.log" > "$D/$1.json"
    local err; err=$([ -s "$D/$1.json" ] && "$PYANY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("error") or "")' "$D/$1.json" 2>/dev/null)
    case $STEP_RC in
        0) record "$1" bench pass 0 "$STEP_S" "device $DEV" ;;
        124|137) record "$1" bench timeout "$STEP_RC" "$STEP_S" "killed at its cap" ;;
        *) record "$1" bench error "$STEP_RC" "$STEP_S" "${err:0:200}" ;;
    esac
    snapshot "$1"
}
torch_b0() { # torch_b0 SECONDS: PyTorch B0 timing, then its per-family profile (one process)
    torch_run torch_b0 "$1" --model efficientnet-b0 "${B0[@]}" --profile-steps "$TPROF"
}

# ---- 1. environment: a table; on a mismatch only the PyTorch half, then stop -----
{ echo "== using: $MODE"; echo "== network interfaces: $(tail -n +3 /proc/net/dev 2>/dev/null | cut -d: -f1 | tr -d ' ' | paste -sd' ')"; } >> "$ENVF"
[ -f "${BUNDLE:-/nonexistent}/BUNDLE_MANIFEST.txt" ] && sed -n '1,12p' "$BUNDLE/BUNDLE_MANIFEST.txt" | sed 's/^/== bundle: /' >> "$ENVF"
ER=(); [ "$REHEARSE" = 1 ] && ER=(--rehearse)
bash "$REPO/tests/gpu/env_check.sh" ${ER[@]+"${ER[@]}"} "${BUNDLE:-$SRCBUILD}" "$D" > "$D/logs/env_check.log" 2>&1
ENV_RC=$?
# shellcheck source=/dev/null
[ -f "$D/env_check.env" ] && source "$D/env_check.env"
[ -n "$LD_ADD" ] && export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$LD_ADD
PYANY=${PY:-$(command -v python3 || true)}
DEV=cuda BACKEND=(--backend cuda --precision bf16)
if [ "$HAVE_GPU" = 0 ]; then DEV=cpu; BACKEND=(--threads 2); fi  # rehearsal only: the CPU stands in
if [ "$ENV_RC" != 0 ]; then
    record env_check setup fail "$ENV_RC" "$ENV_SECS" "mismatch: see the table"
    if [ "$TORCH_CUDA" = 1 ] || [ "$REHEARSE" = 1 ]; then  # the PyTorch half needs nothing of the bundle
        DEV=cpu; [ "$TORCH_CUDA" = 1 ] && DEV=cuda  # rehearsal without a GPU for torch: the CPU stands in
        t=$(plan 60 10); [ "$t" -gt 0 ] && torch_b0 "$t"
    else
        record torch_b0 bench skip - 0 "PyTorch sees no GPU: no PyTorch half"
    fi
    say "stopped: the environment does not match the bundle (exit 3)"
    finish env "" 3
    exit 3
fi
record env_check setup pass 0 "$ENV_SECS" "${GPU_NAME:-no GPU}$([ -n "$LD_ADD" ] && echo "; LD_LIBRARY_PATH += $LD_ADD")"
{ echo "== LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"; echo "== ldd $EFFNET:"; ldd "$EFFNET" 2>&1 | sed 's/^/   /'; } >> "$ENVF"
say "GPU: ${GPU_NAME:-none}; python with torch: ${PY:-none}"
snapshot env_check

# ---- 2. GPU tests: op, model, graph, augmentation, NCCL in ONE process (gpu_runner),
# the rest (the training smoke scripts) each as ctest runs it. Per-test caps.
TLIST=$D/gpu_tests.tsv
: > "$TLIST"
if [ -n "$SRCBUILD" ]; then
    bash "$REPO/tests/gpu/make_bundle.sh" --list-tests "$SRCBUILD" > "$TLIST" 2>> "$D/logs/list_tests.log"
elif [ -f "$BIN/GPU_TESTS.tsv" ]; then
    cp "$BIN/GPU_TESTS.tsv" "$TLIST"
fi
TEST_CAP=${TEST_TIMEOUT_S:-45}          # any one test
TESTS_END=$(( $(elapsed) + $(plan 100 130) ))  # all tests together, keeping 130 s for the probe and the benches
RUNNER=$TESTDIR/gpu_runner
[ -x "$RUNNER" ] || RUNNER=''
SCRATCH=$WORKROOT/scratch  # the tests' working directories (removed with WORKROOT, also on an early stop)
mkdir -p "$SCRATCH" || SCRATCH=/tmp
export EFFNET="$EFFNET" EFFNET_BIN_DIR="$BIN"
# The CPU halves (references) of the tests: more threads than ctest's 2 on a GPU
# node. The tests' own OMP_NUM_THREADS (ctest's ENVIRONMENT) is dropped below.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(n=$(nproc); [ "$n" -gt 8 ] && n=8; echo "$n")}
no_omp() { # the env field (\x1f-joined) without OMP_NUM_THREADS=
    local out='' e
    local -a envs=()
    [ -n "$1" ] && [ "$1" != - ] && IFS=$'\x1f' read -r -a envs <<< "$1"
    for e in ${envs[@]+"${envs[@]}"}; do case $e in OMP_NUM_THREADS=*) ;; *) out=${out:+$out$'\x1f'}$e ;; esac; done
    echo "${out:--}"
}
test_status() { # test_status NAME RC LOG LIMIT -> records it
    case $2 in
        0) record "$1" test pass 0 "$STEP_S" "$(grep -m1 -E '^(PASS|smoke:)' "$3" | cut -c1-100)" ;;
        77) record "$1" test skip 77 "$STEP_S" "$(grep -m1 -i 'skip' "$3" | cut -c1-100)" ;;
        124|137) record "$1" test timeout "$2" "$STEP_S" "killed after ${4}s"; FAILED=1 ;;
        *) record "$1" test fail "$2" "$STEP_S" "$(why "$2" "$3")"; FAILED=1 ;;
    esac
}
run_test() { # run_test NAME CTEST_TIMEOUT [ENV=V ...] -- ARGV...
    local n=$1 tmo=$2 left; shift 2
    local envv=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do envv+=("$1"); shift; done
    shift
    left=$((TESTS_END - $(elapsed)))
    if [ "$left" -lt 10 ]; then record "$n" test timeout - 0 "not run: the tests' time is used up"; FAILED=1; return; fi
    [ "$left" -gt "$TEST_CAP" ] && left=$TEST_CAP
    [ "$tmo" -gt 0 ] 2>/dev/null && [ "$left" -gt "$tmo" ] && left=$tmo
    mkdir -p "$SCRATCH/$n"
    STEP_CWD=$SCRATCH/$n run_step "$n" test "$left" env ${envv[@]+"${envv[@]}"} "$@"
    test_status "$n" "$STEP_RC" "$D/logs/$n.log" "$left"
    snapshot "$n"
}
IN_RUNNER=" $([ -n "$RUNNER" ] && "$RUNNER" --list 2>/dev/null | paste -sd' ') "
SPEC=$D/runner_spec.tsv RRES=$D/runner_results.tsv
: > "$SPEC"; : > "$RRES"
OTHERS=()
if [ -s "$TLIST" ]; then
    TB=$BIN TT=$TESTDIR TP=${PY:-${PYANY:-python3}}
    while IFS=$'\t' read -r name tmo envs cmd; do
        [ -n "$name" ] || continue
        envs=$(no_omp "$envs")
        cmd=${cmd//@TESTS@/$TT}; cmd=${cmd//@BUILD@/$TB}; cmd=${cmd//@SRC@/$REPO}; cmd=${cmd//@PYTHON@/$TP}
        prog=${cmd%%$'\x1f'*}; prog=${prog##*/}
        if [[ "$IN_RUNNER" == *" $prog "* ]]; then printf '%s\t%s\t%s\t%s\n' "$name" "$tmo" "$envs" "$cmd" >> "$SPEC"
        else OTHERS+=("$name"$'\t'"$tmo"$'\t'"$envs"$'\t'"$cmd"); fi
    done < "$TLIST"
    # MPI tests last (a worker runs one; the next gets a fresh worker)
    grep -v -P '\t[^\t]*/test_nccl' "$SPEC" > "$SPEC.1"; grep -P '\t[^\t]*/test_nccl' "$SPEC" >> "$SPEC.1"; mv "$SPEC.1" "$SPEC"
fi
if [ -s "$SPEC" ]; then
    say "GPU tests in one process (gpu_runner, cap ${TEST_CAP}s each): $(cut -f1 "$SPEC" | paste -sd' ')"
    rdl=$((TESTS_END - $(elapsed) - 30))  # keep 30 s for the smoke tests
    [ "$rdl" -lt 20 ] && rdl=20
    STEP_CWD=$SCRATCH run_step gpu_runner test $((rdl + 15)) "$RUNNER" --logdir "$D/logs" --results "$RRES" \
        --cap "$TEST_CAP" --deadline "$rdl" "$SPEC"
    RUNNER_RC=$STEP_RC RUNNER_S=$STEP_S
    merge_runner_results
    for name in $(cut -f1 "$SPEC"); do  # the runner itself died or was killed: what never got a line
        grep -q "^$name"$'\t' "$RRES" || { record "$name" test fail "$RUNNER_RC" 0 "no result: gpu_runner ended ($(why "$RUNNER_RC" "$D/logs/gpu_runner.log"))"; FAILED=1; }
    done
    say "gpu_runner: ${RUNNER_S}s for $(grep -c . "$SPEC") tests, $(grep -o '[0-9]* worker process(es)' "$D/logs/gpu_runner.log" | head -1)"
    snapshot gpu_runner
fi
for t in ${OTHERS[@]+"${OTHERS[@]}"}; do
    IFS=$'\t' read -r name tmo envs cmd <<< "$t"
    envv=(); [ -n "$envs" ] && [ "$envs" != - ] && IFS=$'\x1f' read -r -a envv <<< "$envs"
    IFS=$'\x1f' read -r -a argv <<< "$cmd"
    run_test "$name" "${tmo:-0}" ${envv[@]+"${envv[@]}"} -- "${argv[@]}"
done
if [ ! -s "$TLIST" ]; then
    for f in "$TESTDIR"/test_*; do [ -x "$f" ] && run_test "$(basename "$f")" 0 -- "$f"; done
fi
[ "$SCRATCH" = /tmp ] || rm -rf "$SCRATCH"

# ---- 3. Open MPI singleton (effnet train runs MPI_Init without mpirun) -------------
if [ -x "$BIN/mpi_singleton_probe" ]; then
    run_step mpi_singleton test 20 "$BIN/mpi_singleton_probe"
    if [ "$STEP_RC" = 0 ]; then record mpi_singleton test pass 0 "$STEP_S" "$(grep -m1 'ok rank' "$D/logs/mpi_singleton.log" | cut -c1-100)"
    else record mpi_singleton test fail "$STEP_RC" "$STEP_S" "$(why "$STEP_RC" "$D/logs/mpi_singleton.log")"; FAILED=1; fi
fi

# ---- 4. effnet vs PyTorch eager (AMP bf16, channels_last), same run ----------------------
# B0 at 224, batch 256: timing (CUDA graph), then effnet bench --profile (eager) and
# PyTorch's timing + profiler, per op family; B7 at 600, the largest batch of a
# descending list that fits (effnet: one process a try, an OOM fails at allocation;
# PyTorch: one process, OOM caught). Each step gets what the budget leaves it.
not_run() { record "$1" bench not-run - 0 "not run: the check's time was used up"; }
effnet_run() { # effnet_run NAME SECONDS ARGS... -> STEP_RC, writes NAME.json
    run_step "$1" bench "$2" "$EFFNET" bench "${BACKEND[@]}" "${@:3}" --json
    json_of "$D/logs/$1.log" > "$D/$1.json"
}
bench_done() { # bench_done NAME: record an effnet run (errors counted: effnet must run)
    if [ "$STEP_RC" = 0 ] && [ -s "$D/$1.json" ]; then record "$1" bench pass 0 "$STEP_S" "backend $DEV"
    else
        local st=fail; { [ "$STEP_RC" = 124 ] || [ "$STEP_RC" = 137 ]; } && st=timeout
        record "$1" bench "$st" "$STEP_RC" "$STEP_S" "$(why "$STEP_RC" "$D/logs/$1.log")"; FAILED=1
    fi
    snapshot "$1"
}
t=$(plan 40 100); if [ "$t" -gt 0 ]; then effnet_run effnet_b0 "$t" --model efficientnet-b0 "${B0[@]}"; bench_done effnet_b0; else not_run effnet_b0; fi
t=$(plan 30 75); if [ "$t" -gt 0 ]; then effnet_run effnet_prof "$t" --model efficientnet-b0 "${B0PROF[@]}" --profile; bench_done effnet_prof; else not_run effnet_prof; fi
t=$(plan 60 20); if [ "$t" -gt 0 ]; then torch_b0 "$t"; else not_run torch_b0; fi
# effnet B7: descending; a try that fails for memory moves on, anything else stops the search.
B7END=$(( $(elapsed) + $(plan 40 10) )) B7T0=$(elapsed)
: > "$D/effnet_b7.json"; TRIED=''
for b in $B7LIST; do
    left=$((B7END - $(elapsed))); [ "$left" -lt 10 ] && { TRIED="$TRIED $b:no-time"; break; }
    [ "$left" -gt 35 ] && left=35
    effnet_run "effnet_b7_try$b" "$left" --model efficientnet-b7 --resolution "$B7R" --batch "$b" "${B7STEPS[@]}"
    if [ "$STEP_RC" = 0 ] && [ -s "$D/effnet_b7_try$b.json" ]; then
        cp "$D/effnet_b7_try$b.json" "$D/effnet_b7.json"; TRIED="$TRIED $b:ok"; break
    elif grep -q -i 'cannot allocate\|out of memory' "$D/logs/effnet_b7_try$b.log"; then TRIED="$TRIED $b:oom"
    else TRIED="$TRIED $b:$(why "$STEP_RC" "$D/logs/effnet_b7_try$b.log" | cut -c1-60 | tr ' ' _)"
         [ "$STEP_RC" = 124 ] || [ "$STEP_RC" = 137 ] || break; fi  # a timeout: a smaller batch may still make it
done
if [ -s "$D/effnet_b7.json" ]; then record effnet_b7 bench pass 0 $(($(elapsed) - B7T0)) "tried$TRIED"
elif [ -z "$TRIED" ] || [ "$TRIED" = " ${B7LIST%% *}:no-time" ]; then not_run effnet_b7
else record effnet_b7 bench fail - $(($(elapsed) - B7T0)) "no batch ran; tried$TRIED"; FAILED=1; fi
echo "$TRIED" > "$D/effnet_b7.tried"
snapshot effnet_b7
t=$(plan 45 0)
if [ "$t" -gt 0 ]; then
    torch_run torch_b7 "$t" --model efficientnet-b7 --resolution "$B7R" "${B7STEPS[@]}" \
        --batches "$(echo $B7LIST | tr ' ' ,)" --try-timeout "$B7TRY"
else not_run torch_b7; fi
if [ "${TORCH_COMPILE:-0}" = 1 ] && [ -n "$PY" ]; then  # optional: B0 under torch.compile (minutes of compiling)
    run_step torch_compile bench 180 "${TORCH_ENV[@]}" "$PY" "$REPO/tests/gpu/bench_torch_gpu.py" --device "$DEV" \
        --modes compile --amp bf16 --model efficientnet-b0 "${B0[@]}"
    json_of "$D/logs/torch_compile.log" > "$D/torch_compile.json"
    record torch_compile bench "$([ "$STEP_RC" = 0 ] && echo pass || echo error)" "$STEP_RC" "$STEP_S" ""
fi

finish complete "" "$FAILED"
exit $FAILED
