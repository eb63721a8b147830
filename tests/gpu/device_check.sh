#!/usr/bin/env bash
# device_check.sh [--rehearse] [BUNDLE]   (run from the repository root)
#
# The one-command GPU check, at most CHECK_BUDGET_S (300) seconds:
#  1. environment (tests/gpu/env_check.sh): driver, GPU, CUDA runtime vs
#     driver, cuBLAS, cuDNN, NCCL, glibc, PyTorch; on a mismatch it stops
#     within seconds (exit 3) with a needed/found/fix table in summary.md;
#  2. the GPU op, model, graph, augmentation and NCCL tests in ONE process
#     (gpu_runner: one CUDA/cuDNN start-up, a cap per test), then the
#     training smoke tests; 0 pass, 77 skip, else fail;
#  3. the Open MPI singleton probe;
#  4. effnet vs PyTorch eager (AMP bf16, channels_last): B0 224 batch 256, and
#     B7 600 at the largest batch of a descending list (B7_BATCHES) that fits.
#
# BUNDLE: a directory made by tests/gpu/make_bundle.sh, or its .tar.gz.
# Without it: build from source when nvcc, cmake, MPI and HDF5 are all here,
# else gpu-bundle/ or gpu-bundle.tar.gz (in the repository root).
# --rehearse: tiny shapes (batch 2, 32x32, 1 step), on the CPU when no GPU
# is visible -- to rehearse the script on a machine without a GPU.
#
# Everything (summary.md, results.tsv, logs/, *.json, env.txt) goes to
# ${OUT:-./device-check-out}. Exit status: 0 when no test failed, 1 when some
# did (see summary.md), 2 when there is nothing to run, 3 when the environment
# does not match the bundle. TEST_TIMEOUT_S (45): the cap of any one test.
# TORCH_COMPILE=1: also B0 under torch.compile (not in the 300 s budget).
set -u
T0=$(date +%s)
# PyTorch runs with the environment it came with: the CUDA directories added
# below for effnet (cuDNN/NCCL sonames are the same across CUDA majors) and the
# bundle's Open MPI settings are not for it.
if [ -n "${LD_LIBRARY_PATH+x}" ]; then TORCH_ENV=(env "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"); else TORCH_ENV=(env -u LD_LIBRARY_PATH); fi
BUDGET=${CHECK_BUDGET_S:-300}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
REHEARSE=0 BUNDLE_ARG=
for a in "$@"; do
    case $a in
        --rehearse) REHEARSE=1 ;;
        -h|--help) sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "device_check: unknown option $a" >&2; exit 2 ;;
        *) BUNDLE_ARG=$a ;;
    esac
done
OUTDIR=${OUT:-./device-check-out}
mkdir -p "$OUTDIR/logs" || { echo "device_check: cannot create $OUTDIR" >&2; exit 2; }
OUTDIR=$(cd "$OUTDIR" && pwd)
RES=$OUTDIR/results.tsv
printf 'name\tkind\tstatus\trc\tseconds\tnote\n' > "$RES"
ENVF=$OUTDIR/env.txt
: > "$ENVF"

say() { echo "[device_check $(($(date +%s) - T0))s] $*"; }
elapsed() { echo $(($(date +%s) - T0)); }
# budget CAP RESERVE: seconds for the next step: at most CAP, leaving RESERVE
# seconds for the steps after it; at least 10.
budget() {
    local left=$((BUDGET - $(elapsed) - $2))
    [ "$left" -gt "$1" ] && left=$1
    [ "$left" -lt 10 ] && left=10
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
    if grep -q "GLIBC_[0-9.]*' not found\|GLIBCXX_[0-9.]*' not found" "$log" 2>/dev/null; then
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
        *) if [ "$rc" -gt 128 ]; then echo "killed by signal $((rc - 128))"
           elif grep -q -i -E 'error|fail|abort' "$log" 2>/dev/null; then
               grep -i -E 'error|fail|abort' "$log" | tail -n 1 | cut -c1-200
           else tail -n 1 "$log" 2>/dev/null | cut -c1-200; fi ;;
    esac
}
# run_step NAME KIND SECONDS CMD... : run with a timeout, log to logs/NAME.log,
# sets STEP_RC and STEP_S.
run_step() {
    local name=$1 t=$3; shift 3  # $2: the kind, for the reader
    local log=$OUTDIR/logs/$name.log s0 s1
    say "$name: running (timeout ${t}s): $*"
    s0=$(date +%s.%N)
    ( cd "${STEP_CWD:-.}" && exec timeout -k 5 "$t" "$@" ) > "$log" 2>&1 < /dev/null
    STEP_RC=$?
    s1=$(date +%s.%N)
    STEP_S=$(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.1f", b - a }')
}

# ---- what to run: a bundle, or a fresh build ----------------------------------
BIN='' TESTDIR='' MODE='' SRCBUILD='' BUNDLE=''
UNPACKED='' DONE=0
cleanup() {
    local rc=$?
    [ -n "$UNPACKED" ] && rm -rf "$UNPACKED"
    if [ "$DONE" = 0 ]; then
        echo "device_check: ENDED EARLY (status $rc) -- partial results ($RES):"
        cat "$RES"
    fi
}
trap cleanup EXIT
trap 'echo "device_check: interrupted"; exit 130' INT TERM
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
    local nvcc
    nvcc=$(command -v nvcc || { [ -x /usr/local/cuda/bin/nvcc ] && echo /usr/local/cuda/bin/nvcc; })
    [ -n "$nvcc" ] && command -v cmake > /dev/null && command -v mpicc > /dev/null &&
        { command -v h5cc > /dev/null || ls /usr/include/hdf5* /usr/include/*/hdf5* > /dev/null 2>&1; } ||
        { say "no source build: needs nvcc, cmake, mpicc and HDF5 headers"; return 1; }
    local b=$REPO/build-devcheck
    run_step build_configure setup "$(budget 90 300)" cmake -S "$REPO" -B "$b" -DEFFNET_CUDA=ON -DCMAKE_BUILD_TYPE=Release
    [ "$STEP_RC" = 0 ] || { record build_configure setup fail "$STEP_RC" "$STEP_S" "$(why $STEP_RC "$OUTDIR/logs/build_configure.log")"; return 1; }
    run_step build setup "$(budget 240 240)" cmake --build "$b" -j"$(nproc)"
    [ "$STEP_RC" = 0 ] || { record build setup fail "$STEP_RC" "$STEP_S" "$(why $STEP_RC "$OUTDIR/logs/build.log")"; return 1; }
    record build setup pass 0 "$STEP_S" "$b"
    BIN=$b TESTDIR=$b/tests/gpu MODE="source build $b" SRCBUILD=$b
}
if [ -n "$BUNDLE_ARG" ]; then
    use_bundle "$BUNDLE_ARG" || exit 2
else
    if ! try_build; then
        for c in "$REPO/gpu-bundle" "$REPO/gpu-bundle.tar.gz"; do
            [ -e "$c" ] && { use_bundle "$c" && break; }
        done
    fi
    [ -n "$BIN" ] || { echo "device_check: nothing to run: no bundle given or found, and no source build" >&2; exit 2; }
fi
EFFNET=$BIN/effnet
say "using $MODE"

# ---- 1. environment: a table, and a stop within seconds on a mismatch -------------
# (tests/gpu/env_check.sh: driver, GPU, CUDA runtime and whether the driver can
# run it, cuBLAS, cuDNN, NCCL, glibc, PyTorch)
HAVE_GPU=0 FAILED=0 PY='' LD_ADD='' GPU_NAME='' GPU_MEM_MIB=0 ENV_SECS=0
echo "== using: $MODE" >> "$ENVF"
[ -f "${BUNDLE:-/nonexistent}/BUNDLE_MANIFEST.txt" ] && sed -n '1,12p' "$BUNDLE/BUNDLE_MANIFEST.txt" | sed 's/^/== bundle: /' >> "$ENVF"
ER=(); [ "$REHEARSE" = 1 ] && ER=(--rehearse)
bash "$REPO/tests/gpu/env_check.sh" ${ER[@]+"${ER[@]}"} "${BUNDLE:-$SRCBUILD}" "$OUTDIR" > "$OUTDIR/logs/env_check.log" 2>&1
ENV_RC=$?
# shellcheck source=/dev/null
[ -f "$OUTDIR/env_check.env" ] && source "$OUTDIR/env_check.env"
[ -n "$LD_ADD" ] && export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$LD_ADD
PYANY=${PY:-$(command -v python3 || true)}
SUMMARY=$OUTDIR/summary.md
if [ "$ENV_RC" != 0 ]; then
    record env_check setup fail "$ENV_RC" "$ENV_SECS" "mismatch: see the table"
    {
        echo "# effnet device check: STOPPED at the environment check after $(elapsed) s"
        echo
        cat "$OUTDIR/env_check.md" 2>/dev/null || cat "$OUTDIR/logs/env_check.log"
        echo
        echo "Nothing else ran. Fix the FAIL rows (or make a bundle that matches this machine) and run again."
    } > "$SUMMARY"
    cat "$SUMMARY"
    say "stopped: the environment does not match the bundle (exit 3)"
    DONE=1
    exit 3
fi
record env_check setup pass 0 "$ENV_SECS" "${GPU_NAME:-no GPU}$([ -n "$LD_ADD" ] && echo "; LD_LIBRARY_PATH += $LD_ADD")"
{ echo "== LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"; echo "== ldd $EFFNET:"; ldd "$EFFNET" 2>&1 | sed 's/^/   /'; } >> "$ENVF"
say "GPU: ${GPU_NAME:-none}; python with torch: ${PY:-none}"

# ---- 2. GPU tests: op, model, graph, augmentation, NCCL in ONE process (gpu_runner),
# the rest (the training smoke scripts) each as ctest runs it. Per-test caps.
TLIST=$OUTDIR/gpu_tests.tsv
: > "$TLIST"
if [ -n "$SRCBUILD" ]; then
    bash "$REPO/tests/gpu/make_bundle.sh" --list-tests "$SRCBUILD" > "$TLIST" 2>> "$OUTDIR/logs/list_tests.log"
elif [ -f "$BIN/GPU_TESTS.tsv" ]; then
    cp "$BIN/GPU_TESTS.tsv" "$TLIST"
fi
TEST_CAP=${TEST_TIMEOUT_S:-45}          # any one test
TESTS_END=$(( $(elapsed) + $(budget 150 150) ))  # all tests together, keeping 150 s for the benches
RUNNER=$TESTDIR/gpu_runner
[ -x "$RUNNER" ] || RUNNER=''
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/effnet-devcheck.XXXXXX") || SCRATCH=/tmp
export EFFNET="$EFFNET" EFFNET_BIN_DIR="$BIN"
# The CPU halves (references) of the tests: more threads than ctest's 2 on a GPU node.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(n=$(nproc); [ "$n" -gt 8 ] && n=8; echo "$n")}
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
    test_status "$n" "$STEP_RC" "$OUTDIR/logs/$n.log" "$left"
}
IN_RUNNER=" $([ -n "$RUNNER" ] && "$RUNNER" --list 2>/dev/null | paste -sd' ') "
SPEC=$OUTDIR/runner_spec.tsv RRES=$OUTDIR/runner_results.tsv
: > "$SPEC"; : > "$RRES"
OTHERS=()
if [ -s "$TLIST" ]; then
    TB=$BIN TT=$TESTDIR TP=${PY:-${PYANY:-python3}}
    while IFS=$'\t' read -r name tmo envs cmd; do
        [ -n "$name" ] || continue
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
    STEP_CWD=$SCRATCH run_step gpu_runner test $((rdl + 15)) "$RUNNER" --logdir "$OUTDIR/logs" --results "$RRES" \
        --cap "$TEST_CAP" --deadline "$rdl" "$SPEC"
    RUNNER_RC=$STEP_RC RUNNER_S=$STEP_S
    while IFS=$'\t' read -r name st rc secs note; do
        [ -n "$name" ] || continue
        lg=$OUTDIR/logs/$name.log
        case $st in
            pass) note=$(grep -m1 -E '^(PASS|test_)' "$lg" 2>/dev/null | cut -c1-100) ;;
            skip) note=$(grep -m1 -i 'skip' "$lg" 2>/dev/null | cut -c1-100) ;;
            fail) [ -z "$note" ] && note=$(why "$rc" "$lg"); FAILED=1 ;;
            *) FAILED=1 ;;
        esac
        record "$name" test "$st" "$rc" "$secs" "$note"
    done < "$RRES"
    for name in $(cut -f1 "$SPEC"); do  # the runner itself died or was killed: what never got a line
        grep -q "^$name"$'\t' "$RRES" || { record "$name" test fail "$RUNNER_RC" 0 "no result: gpu_runner ended ($(why "$RUNNER_RC" "$OUTDIR/logs/gpu_runner.log"))"; FAILED=1; }
    done
    say "gpu_runner: ${RUNNER_S}s for $(grep -c . "$SPEC") tests, $(grep -o '[0-9]* worker process(es)' "$OUTDIR/logs/gpu_runner.log" | head -1)"
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
rm -rf "$SCRATCH"

# ---- 3. Open MPI singleton (effnet train runs MPI_Init without mpirun) -------------
if [ -x "$BIN/mpi_singleton_probe" ]; then
    run_step mpi_singleton test 20 "$BIN/mpi_singleton_probe"
    if [ "$STEP_RC" = 0 ]; then record mpi_singleton test pass 0 "$STEP_S" "$(grep -m1 'ok rank' "$OUTDIR/logs/mpi_singleton.log" | cut -c1-100)"
    else record mpi_singleton test fail "$STEP_RC" "$STEP_S" "$(why "$STEP_RC" "$OUTDIR/logs/mpi_singleton.log")"; FAILED=1; fi
fi

# ---- 4. effnet vs PyTorch eager (AMP bf16, channels_last), same run ----------------------
# B0 at 224, batch 256; B7 at 600, the largest batch of a descending list that fits
# (effnet: one process a try, an OOM fails at allocation; PyTorch: one process, OOM caught).
if [ "$REHEARSE" = 1 ]; then
    B0=(--resolution 32 --batch 2 --steps 1 --warmup 1) B7R=32 B7LIST=${B7_BATCHES:-2 1} B7STEPS=(--steps 1 --warmup 1) B7TRY=60
else
    B0=(--resolution 224 --batch 256 --steps 15 --warmup 3) B7R=600 B7LIST=${B7_BATCHES:-96 64 48 32 24 16 8}
    B7STEPS=(--steps 4 --warmup 2) B7TRY=30
fi
DEV=cuda BACKEND=(--backend cuda --precision bf16)
if [ "$HAVE_GPU" = 0 ]; then DEV=cpu; BACKEND=(--threads 2); fi  # rehearsal only: the CPU stands in
json_of() { grep -E '^\{' "$1" | tail -1; }
effnet_run() { # effnet_run NAME SECONDS ARGS... -> STEP_RC, writes NAME.json
    run_step "$1" bench "$2" "$EFFNET" bench "${BACKEND[@]}" "${@:3}" --json
    json_of "$OUTDIR/logs/$1.log" > "$OUTDIR/$1.json"
}
torch_run() { # torch_run NAME SECONDS ARGS...
    if [ -z "$PY" ]; then record "$1" bench skip - 0 "no python with torch"; : > "$OUTDIR/$1.json"; return; fi
    local thr=(); [ "$DEV" = cpu ] && thr=(--threads 2)
    run_step "$1" bench "$2" "${TORCH_ENV[@]}" "$PY" "$REPO/tests/gpu/bench_torch_gpu.py" --device "$DEV" --modes eager \
        --amp bf16 ${thr[@]+"${thr[@]}"} "${@:3}"
    json_of "$OUTDIR/logs/$1.log" > "$OUTDIR/$1.json"
    local err; err=$([ -s "$OUTDIR/$1.json" ] && "$PYANY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("error") or "")' "$OUTDIR/$1.json" 2>/dev/null)
    case $STEP_RC in
        0) record "$1" bench pass 0 "$STEP_S" "device $DEV" ;;
        124|137) record "$1" bench timeout "$STEP_RC" "$STEP_S" "killed at its cap" ;;
        *) record "$1" bench error "$STEP_RC" "$STEP_S" "${err:0:200}" ;;
    esac
}
bench_done() { # bench_done NAME: record an effnet run (errors counted: effnet must run)
    if [ "$STEP_RC" = 0 ] && [ -s "$OUTDIR/$1.json" ]; then record "$1" bench pass 0 "$STEP_S" "backend $DEV"
    else
        local st=fail; { [ "$STEP_RC" = 124 ] || [ "$STEP_RC" = 137 ]; } && st=timeout
        record "$1" bench "$st" "$STEP_RC" "$STEP_S" "$(why "$STEP_RC" "$OUTDIR/logs/$1.log")"; FAILED=1
    fi
}
effnet_run effnet_b0 "$(budget 45 110)" --model efficientnet-b0 "${B0[@]}"; bench_done effnet_b0
torch_run torch_b0 "$(budget 45 90)" --model efficientnet-b0 "${B0[@]}"
# effnet B7: descending; a try that fails for memory moves on, anything else stops the search.
B7END=$(( $(elapsed) + $(budget 60 45) )) B7T0=$(elapsed)
: > "$OUTDIR/effnet_b7.json"; TRIED=''
for b in $B7LIST; do
    left=$((B7END - $(elapsed))); [ "$left" -lt 5 ] && { TRIED="$TRIED $b:no-time"; break; }
    [ "$left" -gt 40 ] && left=40
    effnet_run "effnet_b7_try$b" "$left" --model efficientnet-b7 --resolution "$B7R" --batch "$b" "${B7STEPS[@]}"
    if [ "$STEP_RC" = 0 ] && [ -s "$OUTDIR/effnet_b7_try$b.json" ]; then
        cp "$OUTDIR/effnet_b7_try$b.json" "$OUTDIR/effnet_b7.json"; TRIED="$TRIED $b:ok"; break
    elif grep -q -i 'cannot allocate\|out of memory' "$OUTDIR/logs/effnet_b7_try$b.log"; then TRIED="$TRIED $b:oom"
    else TRIED="$TRIED $b:$(why "$STEP_RC" "$OUTDIR/logs/effnet_b7_try$b.log" | cut -c1-60 | tr ' ' _)"
         [ "$STEP_RC" = 124 ] || [ "$STEP_RC" = 137 ] || break; fi  # a timeout: a smaller batch may still make it
done
if [ -s "$OUTDIR/effnet_b7.json" ]; then record effnet_b7 bench pass 0 $(($(elapsed) - B7T0)) "tried$TRIED"
else record effnet_b7 bench fail - $(($(elapsed) - B7T0)) "no batch ran; tried$TRIED"; FAILED=1; fi
echo "$TRIED" > "$OUTDIR/effnet_b7.tried"
torch_run torch_b7 "$(budget 70 8)" --model efficientnet-b7 --resolution "$B7R" "${B7STEPS[@]}" \
    --batches "$(echo $B7LIST | tr ' ' ,)" --try-timeout "$B7TRY"
if [ "${TORCH_COMPILE:-0}" = 1 ] && [ -n "$PY" ]; then  # optional: B0 under torch.compile (minutes of compiling)
    run_step torch_compile bench "$(budget 180 5)" "${TORCH_ENV[@]}" "$PY" "$REPO/tests/gpu/bench_torch_gpu.py" --device "$DEV" \
        --modes compile --amp bf16 --model efficientnet-b0 "${B0[@]}"
    json_of "$OUTDIR/logs/torch_compile.log" > "$OUTDIR/torch_compile.json"
    record torch_compile bench "$([ "$STEP_RC" = 0 ] && echo pass || echo error)" "$STEP_RC" "$STEP_S" ""
fi

# ---- 5. summary.md: the environment, effnet vs PyTorch side by side, every test -----------
if [ -n "$PYANY" ]; then
    "$PYANY" - "$OUTDIR" "$REHEARSE" "$HAVE_GPU" "$(elapsed)" "$BUDGET" "${GPU_NAME:-none}" > "$SUMMARY" <<'PYEOF'
import csv, json, os, sys, time
out, rehearse, gpu, secs, budget, gpu_name = sys.argv[1], sys.argv[2] == '1', sys.argv[3] == '1', sys.argv[4], sys.argv[5], sys.argv[6]
def load(name):
    try:
        t = open(os.path.join(out, name)).read().strip()
        return json.loads(t) if t else {}
    except Exception as e:
        return {'error': f'unreadable {name}: {e}'}
rows = list(csv.DictReader(open(os.path.join(out, 'results.tsv')), delimiter='\t'))
status = {r['name']: r for r in rows}
def fmt(v, d=1):
    return '-' if v is None else f'{v:.{d}f}'
L = [f"# effnet device check: {gpu_name}, {time.strftime('%Y-%m-%d', time.gmtime())}, {secs} s (budget {budget} s)"
     + (' -- REHEARSAL: tiny shapes' + ('' if gpu else ', CPU stands in for the GPU') if rehearse else ''), '']
try:
    L += [open(os.path.join(out, 'env_check.md')).read().strip(), '']
except OSError:
    pass
L += ['### effnet vs PyTorch eager (AMP bf16, channels_last), same run', '',
      '| model | resolution | batch | effnet img/s | PyTorch img/s | effnet / PyTorch | effnet step ms | PyTorch step ms | effnet peak GiB | PyTorch peak GiB | status |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|']
def gib(j, *keys):
    for k in keys:
        if j.get(k) is not None:
            return f'{j[k] / 1024:.2f}'
    return '-'
for label, e, t in (('B0', 'effnet_b0', 'torch_b0'), ('B7 (largest batch)', 'effnet_b7', 'torch_b7')):
    je, jt = load(e + '.json'), load(t + '.json')
    res = je.get('resolution') or jt.get('resolution') or '-'
    be, bt = je.get('batch'), jt.get('batch')
    batch = str(be if be is not None else '-') if be == bt or bt is None else f'{be if be is not None else "-"} / {bt}'
    r = f"{je['img_per_s'] / jt['img_per_s']:.2f}x" if je.get('img_per_s') and jt.get('img_per_s') else '-'
    st = f"effnet {status.get(e, {}).get('status', 'not run')}, PyTorch {status.get(t, {}).get('status', 'not run')}"
    if jt.get('error'):
        st += f" ({jt['error'][:80]})"
    L.append(f"| {label} | {res} | {batch} | {fmt(je.get('img_per_s'))} | {fmt(jt.get('img_per_s'))} | {r} | "
             f"{fmt(je.get('step_ms'))} | {fmt(jt.get('step_ms'))} | {gib(je, 'peak_gpu_mem_mb', 'peak_rss_mb')} | "
             f"{gib(jt, 'peak_mem_mb', 'peak_rss_mb')} | {st} |")
tried_e = open(os.path.join(out, 'effnet_b7.tried')).read().strip() if os.path.exists(os.path.join(out, 'effnet_b7.tried')) else ''
tried_t = ' '.join(f'{b}:{s}' for b, s in load('torch_b7.json').get('tried', []))
L += ['', f'B7 batch search (largest first): effnet `{tried_e}`; PyTorch `{tried_t}`.'
      + (' Peak: CPU RSS (rehearsal).' if not gpu else ' Peak: effnet peak_gpu_mem_mb, PyTorch max_memory_allocated.'), '']
L += ['### Tests and steps', '', '| name | kind | status | rc | seconds | note |', '|---|---|---|---:|---:|---|']
for r in rows:
    L.append(f"| {r['name']} | {r['kind']} | {r['status']} | {r['rc']} | {r['seconds']} | {r['note'][:160]} |")
print('\n'.join(L))
PYEOF
else
    { echo "(no python3 for the table; raw results:)"; cat "$RES"; } > "$SUMMARY"
fi

# Tails of what failed, then the summary last (the end of the output is what comes back).
for r in $(awk -F'\t' 'NR > 1 && ($3 == "fail" || $3 == "timeout") {print $1}' "$RES"); do
    [ -f "$OUTDIR/logs/$r.log" ] || continue
    echo "---- last lines of logs/$r.log"
    tail -n 12 "$OUTDIR/logs/$r.log" | cut -c1-200
done
echo
cat "$SUMMARY"
echo
say "done in $(elapsed)s; everything is in $OUTDIR; $([ $FAILED = 0 ] && echo 'no test failed' || echo 'SOME TESTS FAILED')"
DONE=1
exit $FAILED
