#!/usr/bin/env bash
# device_check.sh [--rehearse] [BUNDLE]   (run from the repository root)
#
# The one-command GPU check: versions; every GPU test program (exit 0 pass,
# 1 fail, 77 skip); the Open MPI singleton probe; `effnet bench` on the CUDA
# backend (B0, 224x224, batch 128, bf16); the same training step in PyTorch,
# eager and torch.compile (tests/gpu/bench_torch_gpu.py); then one markdown
# table with images/s, peak GPU memory and effnet/PyTorch ratios.
#
# BUNDLE: a directory made by tests/gpu/make_bundle.sh, or its .tar.gz.
# Without it: build from source when nvcc, cmake, MPI and HDF5 are all here,
# else gpu-bundle/ or gpu-bundle.tar.gz (in the repository root).
# --rehearse: tiny shapes (batch 2, 32x32, 1 step), on the CPU when no GPU
# is visible -- to rehearse the script on a machine without a GPU.
#
# Everything (logs, JSON, env.txt, results.tsv, summary.md) goes to
# ${OUT:-./device-check-out}. Every step runs under `timeout`; the whole check
# stays under CHECK_BUDGET_S seconds (default 450). Exit status: 0 when no test
# failed, 1 when some did (see summary.md), 2 when there is nothing to run.
set -u
T0=$(date +%s)
# PyTorch runs with the environment it came with: the CUDA directories added
# below for effnet (cuDNN/NCCL sonames are the same across CUDA majors) and the
# bundle's Open MPI settings are not for it.
if [ -n "${LD_LIBRARY_PATH+x}" ]; then TORCH_ENV=(env "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"); else TORCH_ENV=(env -u LD_LIBRARY_PATH); fi
BUDGET=${CHECK_BUDGET_S:-450}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
REHEARSE=0 BUNDLE_ARG=
for a in "$@"; do
    case $a in
        --rehearse) REHEARSE=1 ;;
        -h|--help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

# ---- environment and versions --------------------------------------------------
HAVE_GPU=0 FAILED=0
{
    echo "== date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(uname -n)  kernel: $(uname -r)"
    echo "== os: $(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-?}")  glibc: $(getconf GNU_LIBC_VERSION 2>/dev/null)"
    echo "== cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)  cores: $(nproc)"
    echo "== using: $MODE"
} >> "$ENVF"
if command -v nvidia-smi > /dev/null; then
    timeout 20 nvidia-smi -L >> "$ENVF" 2>&1 && grep -q '^GPU ' "$ENVF" && HAVE_GPU=1
    timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv >> "$ENVF" 2>&1
    timeout 20 nvidia-smi >> "$ENVF" 2>&1
else
    echo "== nvidia-smi: not found" >> "$ENVF"
fi
DRIVER=$(timeout 20 nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)
if [ -n "$DRIVER" ] && [ -f "${BUNDLE:-/x}/lib/CUDA_SONAMES.txt" ] && grep -q '^libcudart.so.13' "$BUNDLE/lib/CUDA_SONAMES.txt" &&
    [ "${DRIVER%%.*}" -lt 580 ] 2>/dev/null; then
    record driver setup warn - 0 "driver $DRIVER is older than 580: the CUDA 13 runtime of this bundle may refuse it"
fi
if command -v nvcc > /dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then
    echo "== nvcc: $(timeout 10 "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)" --version 2>&1 | tail -2 | tr '\n' ' ')" >> "$ENVF"
fi
[ -f "${BUNDLE:-/nonexistent}/BUNDLE_MANIFEST.txt" ] && sed -n '1,12p' "$BUNDLE/BUNDLE_MANIFEST.txt" | sed 's/^/== bundle: /' >> "$ENVF"

# A Python with torch (and the same one for the table).
PY=
for p in ${PYTHON:-} python3 python /usr/bin/python3 /usr/local/bin/python3 /opt/conda/bin/python3; do
    command -v "$p" > /dev/null || continue
    if v=$(timeout 90 "$p" -c 'import sys, torch; print("== python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "gpus", torch.cuda.device_count())' 2>/dev/null); then
        PY=$(command -v "$p"); echo "$v ($PY)" >> "$ENVF"; break
    fi
done
PYANY=${PY:-$(command -v python3 || true)}
[ -n "$PY" ] || echo "== python with torch: not found (tried \$PYTHON, python3, python, /usr/bin/python3, /opt/conda/bin/python3)" >> "$ENVF"

# CUDA libraries the bundle expects: find the ones the loader misses (toolkit,
# other CUDA installs, PyTorch's nvidia-* wheels) and add their directories.
missing_libs() { ldd "$1" 2>/dev/null | awk '/=> not found/ {print $1}' | sort -u; }
MISSING=$(for f in "$EFFNET" "$TESTDIR"/test_*; do [ -f "$f" ] && missing_libs "$f"; done | sort -u)
if [ -n "$MISSING" ]; then
    say "libraries not found by the loader: $(echo $MISSING)"
    CANDS=(/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-*/lib64
           /usr/local/cuda-*/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu /usr/local/nvidia/lib64 /usr/lib64)
    if [ -n "$PY" ]; then
        while IFS= read -r d; do CANDS+=("$d"); done < <(timeout 60 "$PY" -c '
import glob, os, torch
sp = os.path.dirname(os.path.dirname(torch.__file__))
for d in [os.path.join(os.path.dirname(torch.__file__), "lib")] + sorted(glob.glob(os.path.join(sp, "nvidia", "*", "lib"))):
    print(d)' 2>/dev/null)
    fi
    ADD=
    for so in $MISSING; do
        for d in "${CANDS[@]}"; do
            if [ -e "$d/$so" ]; then
                case ":$ADD:" in *":$d:"*) ;; *) ADD=${ADD:+$ADD:}$d ;; esac
                break
            fi
        done
    done
    if [ -n "$ADD" ]; then
        export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$ADD
        say "LD_LIBRARY_PATH += $ADD"
    fi
    STILL=$(for f in "$EFFNET" "$TESTDIR"/test_*; do [ -f "$f" ] && missing_libs "$f"; done | sort -u)
    if [ -z "$STILL" ]; then
        record libraries setup pass 0 0 "found $(echo $MISSING) in ${ADD:-?}"
    else
        record libraries setup fail - 0 "missing $(echo $STILL): the bundle needs them (CUDA $(sed -n 's/^CUDA: *\(nvcc [0-9.]*\).*/\1/p' "${BUNDLE:-/x}/BUNDLE_MANIFEST.txt" 2>/dev/null)); env.txt lists what this machine has"
        FAILED=1
        {
            echo "== still missing libraries: $(echo $STILL)"
            echo "== CUDA libraries this machine has (ldconfig, /usr/local/cuda*, torch wheels):"
            ldconfig -p 2>/dev/null | grep -E 'libcudart|libcublas|libcudnn\.|libnccl' | sed 's/^/   /'
            for d in "${CANDS[@]}"; do ls "$d" 2>/dev/null | grep -E '^lib(cudart|cublas|cudnn|nccl)\.so' | sed "s|^|   $d/|"; done
        } >> "$ENVF"
    fi
fi
[ -z "$MISSING" ] && record libraries setup pass 0 0 "every library of effnet and the tests resolves"
{
    echo "== LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
    echo "== ldd $EFFNET:"
    ldd "$EFFNET" 2>&1 | sed 's/^/   /'
} >> "$ENVF"
say "GPU visible: $([ $HAVE_GPU = 1 ] && echo yes || echo no); python with torch: ${PY:-none}"
cat "$ENVF" | grep -E '^== (os|cpu)|^GPU |^name|, [0-9]+\.[0-9]+' | head -8

# ---- GPU tests: as ctest runs them (GPU_TESTS.tsv), else every test_* program ----
# Each: exit 0 pass, 77 skip, else fail; own timeout; a scratch working directory.
TLIST=$OUTDIR/gpu_tests.tsv
: > "$TLIST"
if [ -n "$SRCBUILD" ]; then
    bash "$REPO/tests/gpu/make_bundle.sh" --list-tests "$SRCBUILD" > "$TLIST" 2>> "$OUTDIR/logs/list_tests.log"
elif [ -f "$BIN/GPU_TESTS.tsv" ]; then
    cp "$BIN/GPU_TESTS.tsv" "$TLIST"
fi
TEST_CAP=${TEST_TIMEOUT_S:-120}
TESTS_END=$(( $(elapsed) + $(budget 200 270) ))  # all tests together, keeping 270 s for the benches
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/effnet-devcheck.XXXXXX") || SCRATCH=/tmp
export EFFNET="$EFFNET" EFFNET_BIN_DIR="$BIN"
run_test() { # run_test NAME CTEST_TIMEOUT [ENV=V ...] -- ARGV...
    local n=$1 tmo=$2 left log; shift 2
    local envv=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do envv+=("$1"); shift; done
    shift
    left=$((TESTS_END - $(elapsed)))
    if [ "$left" -lt 10 ]; then record "$n" test timeout - 0 "not run: the tests' time is used up"; FAILED=1; return; fi
    [ "$left" -gt "$TEST_CAP" ] && left=$TEST_CAP
    [ "$tmo" -gt 0 ] 2>/dev/null && [ "$left" -gt "$tmo" ] && left=$tmo
    mkdir -p "$SCRATCH/$n"
    STEP_CWD=$SCRATCH/$n run_step "$n" test "$left" env ${envv[@]+"${envv[@]}"} "$@"
    log=$OUTDIR/logs/$n.log
    case $STEP_RC in
        0) record "$n" test pass 0 "$STEP_S" "$(grep -m1 -E '^(PASS|smoke:)' "$log" | cut -c1-100)" ;;
        77) record "$n" test skip 77 "$STEP_S" "$(grep -m1 -i 'skip' "$log" | cut -c1-100)" ;;
        124|137) record "$n" test timeout "$STEP_RC" "$STEP_S" "killed after ${left}s"; FAILED=1 ;;
        *) record "$n" test fail "$STEP_RC" "$STEP_S" "$(why "$STEP_RC" "$log")"; FAILED=1 ;;
    esac
}
if [ -s "$TLIST" ]; then
    TB=$BIN TT=$TESTDIR TP=${PY:-${PYANY:-python3}}
    say "GPU tests: $(cut -f1 "$TLIST" | paste -sd' ')"
    while IFS=$'\t' read -r name tmo envs cmd; do
        [ -n "$name" ] || continue
        envv=() argv=()
        [ -n "$envs" ] && [ "$envs" != - ] && IFS=$'\x1f' read -r -a envv <<< "$envs"
        IFS=$'\x1f' read -r -a raw <<< "$cmd"
        for a in "${raw[@]}"; do
            a=${a//@TESTS@/$TT}; a=${a//@BUILD@/$TB}; a=${a//@SRC@/$REPO}; a=${a//@PYTHON@/$TP}
            argv+=("$a")
        done
        run_test "$name" "${tmo:-0}" ${envv[@]+"${envv[@]}"} -- "${argv[@]}"
    done < "$TLIST"
else
    TESTS=()
    for f in "$TESTDIR"/test_* "$TESTDIR"/*smoke*; do
        [ -f "$f" ] && [ -x "$f" ] || continue
        case " ${TESTS[*]-} " in *" $f "*) continue ;; esac
        TESTS+=("$f")
    done
    [ ${#TESTS[@]} -gt 0 ] || record gpu_tests test skip - 0 "no GPU_TESTS.tsv and no test_* or *smoke* programs in $TESTDIR"
    for f in ${TESTS[@]+"${TESTS[@]}"}; do run_test "$(basename "$f")" 0 -- "$f"; done
fi
rm -rf "$SCRATCH"

# ---- Open MPI singleton (effnet train runs MPI_Init without mpirun) ------------------
if [ -x "$BIN/mpi_singleton_probe" ]; then
    run_step mpi_singleton test 30 "$BIN/mpi_singleton_probe"
    if [ "$STEP_RC" = 0 ]; then record mpi_singleton test pass 0 "$STEP_S" "$(grep -m1 'ok rank' "$OUTDIR/logs/mpi_singleton.log" | cut -c1-100)"
    else record mpi_singleton test fail "$STEP_RC" "$STEP_S" "$(why "$STEP_RC" "$OUTDIR/logs/mpi_singleton.log")"; FAILED=1; fi
fi

# ---- effnet bench ---------------------------------------------------------------------------
if [ "$REHEARSE" = 1 ]; then SHAPE=(--resolution 32 --batch 2 --steps 1 --warmup 1)
else SHAPE=(--resolution 224 --batch 128 --steps 30 --warmup 5); fi
json_of() { grep -E '^\{' "$1" | tail -1; }
EB_JSON=$OUTDIR/effnet_bench.json
: > "$EB_JSON"
run_step effnet_bench bench "$(budget 120 200)" "$EFFNET" bench --backend cuda --precision bf16 \
    --model efficientnet-b0 "${SHAPE[@]}" --json
log=$OUTDIR/logs/effnet_bench.log
if [ "$STEP_RC" = 0 ] && [ -n "$(json_of "$log")" ]; then
    json_of "$log" > "$EB_JSON"
    record effnet_bench bench pass 0 "$STEP_S" "backend cuda"
elif [ "$HAVE_GPU" = 0 ]; then
    record effnet_bench bench skip "$STEP_RC" "$STEP_S" "no GPU visible: $(why "$STEP_RC" "$log")"
    if [ "$REHEARSE" = 1 ]; then  # rehearse the table with a CPU run
        run_step effnet_bench_cpu bench "$(budget 60 150)" "$EFFNET" bench --model efficientnet-b0 "${SHAPE[@]}" --json
        if [ "$STEP_RC" = 0 ] && [ -n "$(json_of "$OUTDIR/logs/effnet_bench_cpu.log")" ]; then
            json_of "$OUTDIR/logs/effnet_bench_cpu.log" > "$EB_JSON"
            record effnet_bench_cpu bench pass 0 "$STEP_S" "rehearsal: CPU backend, tiny shape"
        else
            record effnet_bench_cpu bench fail "$STEP_RC" "$STEP_S" "$(why "$STEP_RC" "$OUTDIR/logs/effnet_bench_cpu.log")"
        fi
    fi
else
    st=fail; [ "$STEP_RC" = 124 ] || [ "$STEP_RC" = 137 ] && st=timeout
    record effnet_bench bench "$st" "$STEP_RC" "$STEP_S" "$(why "$STEP_RC" "$log")"
    FAILED=1
fi

# ---- PyTorch: eager, then torch.compile (each its own process and timeout) ----------
TORCH_SHAPE=(--model efficientnet-b0 --amp bf16 "${SHAPE[@]}")
DEV=cuda
if [ "$HAVE_GPU" = 0 ]; then DEV=cpu; fi
for mode in eager compile; do
    out=$OUTDIR/torch_$mode.json
    : > "$out"
    if [ -z "$PY" ]; then record "torch_$mode" bench skip - 0 "no python with torch"; continue; fi
    if [ "$HAVE_GPU" = 0 ] && [ "$REHEARSE" = 0 ]; then
        record "torch_$mode" bench skip - 0 "no GPU visible (--rehearse runs it on the CPU)"; continue
    fi
    if [ "$mode" = eager ]; then t=$(budget 100 150); else t=$(budget 180 5); fi
    thr=(); [ "$DEV" = cpu ] && thr=(--threads 2)
    run_step "torch_$mode" bench "$t" "${TORCH_ENV[@]}" "$PY" "$REPO/tests/gpu/bench_torch_gpu.py" --device "$DEV" \
        --modes "$mode" "${TORCH_SHAPE[@]}" ${thr[@]+"${thr[@]}"}
    log=$OUTDIR/logs/torch_$mode.log
    json_of "$log" > "$out"
    err=$([ -s "$out" ] && "$PYANY" -c 'import json,sys; e=json.load(open(sys.argv[1])).get("error"); print(e or "")' "$out" 2>/dev/null)
    case $STEP_RC in
        124|137) record "torch_$mode" bench timeout "$STEP_RC" "$STEP_S" "killed after ${t}s"
                 echo "{\"framework\": \"pytorch\", \"mode\": \"$mode\", \"error\": \"timeout after ${t}s\"}" > "$out" ;;
        0) record "torch_$mode" bench pass 0 "$STEP_S" "device $DEV" ;;
        *) if [ -s "$out" ]; then record "torch_$mode" bench error "$STEP_RC" "$STEP_S" "${err:0:200}"
           else record "torch_$mode" bench fail "$STEP_RC" "$STEP_S" "$(why "$STEP_RC" "$log")"; fi ;;
    esac
done

# ---- the table --------------------------------------------------------------------------------------
SUMMARY=$OUTDIR/summary.md
if [ -n "$PYANY" ]; then
    "$PYANY" - "$OUTDIR" "$REHEARSE" "$HAVE_GPU" > "$SUMMARY" <<'EOF'
import csv, json, os, sys
out, rehearse, gpu = sys.argv[1], sys.argv[2] == '1', sys.argv[3] == '1'
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            t = f.read().strip()
        return json.loads(t) if t else {}
    except Exception as e:
        return {'error': f'unreadable {name}: {e}'}
rows = list(csv.DictReader(open(os.path.join(out, 'results.tsv')), delimiter='\t'))
status = {r['name']: r for r in rows}
def fmt(v, d=1):
    return '-' if v is None else f'{v:.{d}f}'
eb, te, tc = load('effnet_bench.json'), load('torch_eager.json'), load('torch_compile.json')
lines = []
title = 'effnet vs PyTorch, EfficientNet-B0 training step'
if rehearse:
    title += ' (REHEARSAL: tiny shape' + ('' if gpu else ', CPU, no GPU visible') + ')'
lines += [f'### {title}', '',
          '| run | status | img/s | step ms | peak GPU MiB | effnet / this |',
          '|---|---|---:|---:|---:|---:|']
e_ips = eb.get('img_per_s')
def row(label, key, j, ratio):
    st = status.get(key, {}).get('status', 'not run')
    if key == 'effnet_bench' and 'effnet_bench_cpu' in status and st == 'skip':
        st = 'skip; CPU rehearsal ' + status['effnet_bench_cpu']['status']
    if j.get('error'):
        st += f" ({j['error'][:70]})"
    mem = j.get('peak_gpu_mem_mb', j.get('peak_mem_mb'))
    r = '-'
    if ratio and e_ips and j.get('img_per_s'):
        r = f"{e_ips / j['img_per_s']:.2f}x"
    lines.append(f"| {label} | {st} | {fmt(j.get('img_per_s'))} | {fmt(j.get('step_ms'))} | {fmt(mem, 0)} | {r} |")
prec = eb.get('precision') or ('fp32' if eb.get('backend') == 'cpu' else 'bf16')
row(f"effnet ({eb.get('backend', 'cuda')}, {prec})", 'effnet_bench', eb, False)
row('PyTorch eager (bf16 autocast, channels_last)', 'torch_eager', te, True)
extra = f", compile {tc['compile_s']:.0f}s" if tc.get('compile_s') else ''
row(f'PyTorch torch.compile{extra}', 'torch_compile', tc, True)
lines += ['', '| test | status | rc | seconds | note |', '|---|---|---:|---:|---|']
for r in rows:
    if r['kind'] in ('test', 'setup'):
        lines.append(f"| {r['name']} | {r['status']} | {r['rc']} | {r['seconds']} | {r['note'][:160]} |")
print('\n'.join(lines))
EOF
else
    { echo "(no python3 for the table; raw results:)"; cat "$RES"; } > "$SUMMARY"
fi
# Combined JSON for machines, next to the table.
if [ -n "$PYANY" ]; then
    "$PYANY" - "$OUTDIR" > "$OUTDIR/results.json" <<'EOF' 2>/dev/null
import csv, json, os, sys
out = sys.argv[1]
def load(n):
    try:
        t = open(os.path.join(out, n)).read().strip()
        return json.loads(t) if t else None
    except Exception:
        return None
print(json.dumps({'steps': list(csv.DictReader(open(os.path.join(out, 'results.tsv')), delimiter='\t')),
                  'effnet_bench': load('effnet_bench.json'), 'torch_eager': load('torch_eager.json'),
                  'torch_compile': load('torch_compile.json')}, indent=1))
EOF
fi

# Tails of what failed, then the table last (the end of the output is what comes back).
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
