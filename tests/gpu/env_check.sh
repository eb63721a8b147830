#!/usr/bin/env bash
# env_check.sh [--rehearse] BUNDLE_DIR OUTDIR
#
# The device check's first step, a few seconds: does this machine have what the
# bundle needs? Driver, GPU, CUDA runtime (and whether the driver can run it),
# cuBLAS, cuDNN, NCCL, glibc; PyTorch for the comparison columns. Writes
#   OUTDIR/env_check.md   one table: what is needed, what was found, status, the fix
#   OUTDIR/env_check.env  shell assignments for device_check.sh (HAVE_GPU, PY,
#                         TORCH_CUDA, LD_ADD, GPU_NAME, GPU_MEM_MIB, ENV_FAILS)
#   OUTDIR/env.txt        versions in full (appended)
# Exit 0: everything needed is there (or, with --rehearse, only the GPU is
# missing); 3: a mismatch -- the table says what and how to fix it. Warnings
# (an older cuDNN of the same major version, an older NCCL, no PyTorch) do not
# stop the check. PyTorch is always looked for, so that device_check.sh can
# still run its half on a mismatch (TORCH_CUDA=1: torch sees a GPU).
#
# A bundle must be portable (made from an EFFNET_NATIVE=OFF build): one built
# with -march=native for the build machine may die of SIGILL on another CPU.
# make_bundle.sh --allow-native makes one for rehearsing on the build machine
# only; outside --rehearse its "portable build" row is a FAIL.
#
# CUDA libraries the loader cannot find are looked for in /usr/local/cuda*, the
# system and PyTorch's nvidia/*/lib wheels; their directories go to LD_ADD.
# The runtime's own view comes from `gpu_runner --probe` (cudaDriverGetVersion,
# cudaRuntimeGetVersion, cudnnGetVersion, ncclGetVersion, cudaGetDeviceCount).
#
# To rehearse a mismatch on a machine without a GPU, point it at fakes:
#   ENV_CHECK_NVIDIA_SMI  an nvidia-smi to run instead of the one on PATH
#   ENV_CHECK_PROBE       a command to run instead of `gpu_runner --probe`
#   ENV_CHECK_GLIBC       the glibc version to assume (e.g. 2.31)
set -u
REHEARSE=0
[ "${1:-}" = --rehearse ] && { REHEARSE=1; shift; }
[ $# -eq 2 ] || { sed -n '2,3p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
BUNDLE=$1 OUT=$2
mkdir -p "$OUT" || exit 2
MD=$OUT/env_check.md ENVF=$OUT/env.txt SH=$OUT/env_check.env
T0=$(date +%s.%N)
ROWS=() FAILS=0 WARNS=0
row() { # row WHAT NEEDED FOUND STATUS FIX
    ROWS+=("| $1 | $2 | $3 | $4 | ${5:-} |")
    case $4 in FAIL) FAILS=$((FAILS + 1)) ;; warn) WARNS=$((WARNS + 1)) ;; esac
}
vge() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -1)" = "$2" ]; } # vge A B: A >= B
cudav() { [ "${1:-0}" -gt 0 ] 2>/dev/null && echo "$(($1 / 1000)).$(($1 % 1000 / 10))" || echo "none"; }

MAN=$BUNDLE/BUNDLE_MANIFEST.txt
[ -f "$MAN" ] || MAN=$BUNDLE/../BUNDLE_MANIFEST.txt # a bundle's bin/ given instead
SONAMES=$(grep -v '^#' "$BUNDLE/lib/CUDA_SONAMES.txt" 2>/dev/null | cut -f1 | sort -u | paste -sd' ')
CUDA_BUILT=$(sed -n 's/^CUDA: *nvcc \([0-9]*\.[0-9]*\).*/\1/p' "$MAN" 2>/dev/null)
CUDA_MAJOR=${CUDA_BUILT%%.*}
case ${CUDA_MAJOR:-0} in 13) MIN_DRIVER=580 ;; 12) MIN_DRIVER=525 ;; 11) MIN_DRIVER=450 ;; *) MIN_DRIVER=0 ;; esac

# ---- glibc ----------------------------------------------------------------------
need_glibc=$(sed -n 's/^needs: *glibc >= \([0-9.]*\).*/\1/p' "$MAN" 2>/dev/null)
have_glibc=${ENV_CHECK_GLIBC:-$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')}
if [ -z "$need_glibc" ]; then row glibc "?" "${have_glibc:-?}" warn "no BUNDLE_MANIFEST.txt 'needs:' line"
elif [ -n "$have_glibc" ] && vge "$have_glibc" "$need_glibc"; then row glibc ">= $need_glibc" "$have_glibc" ok
else row glibc ">= $need_glibc" "${have_glibc:-unknown}" FAIL "an OS image with glibc >= $need_glibc (Ubuntu 22.04+, RHEL 9+), or make the bundle on an older-glibc machine"
fi

# ---- a portable bundle (EFFNET_NATIVE=OFF) -----------------------------------------
native=$(sed -n 's/^EFFNET_NATIVE: *\([A-Za-z0-9]*\).*/\1/p' "$MAN" 2>/dev/null)
if [ -f "$MAN" ]; then
    case $native in
        OFF) row "portable build" "EFFNET_NATIVE=OFF" OFF ok ;;
        *) if [ "$REHEARSE" = 1 ]; then row "portable build" "EFFNET_NATIVE=OFF" "${native:-?} (made with --allow-native)" warn "rehearsal on the build machine only"
           else row "portable build" "EFFNET_NATIVE=OFF" "${native:-?}" FAIL "make the bundle from a -DEFFNET_NATIVE=OFF build (docs/gpu-check.md): -march=native code may die of SIGILL on this CPU"; fi ;;
    esac
fi

# ---- driver and GPU (nvidia-smi, else /proc) -------------------------------------
SMI=${ENV_CHECK_NVIDIA_SMI:-$(command -v nvidia-smi || true)}
DRIVER='' GPU_NAME='' GPU_MEM_MIB=0 SMI_CUDA=''
{
    echo "== date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(uname -n)  kernel: $(uname -r)"
    echo "== os: $(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-?}")  glibc: $have_glibc"
    echo "== cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)  cores: $(nproc)"
} >> "$ENVF"
if [ -n "$SMI" ]; then
    q=$(timeout 15 "$SMI" --query-gpu=name,driver_version,memory.total --format=csv,noheader,nounits 2>/dev/null | head -1)
    if [ -n "$q" ]; then
        GPU_NAME=$(echo "$q" | cut -d, -f1 | sed 's/^ *//;s/ *$//')
        DRIVER=$(echo "$q" | cut -d, -f2 | tr -d ' ')
        GPU_MEM_MIB=$(echo "$q" | cut -d, -f3 | tr -d ' ')
    fi
    SMI_CUDA=$(timeout 15 "$SMI" 2>/dev/null | grep -o 'CUDA Version: *[0-9.]*' | head -1 | awk '{print $3}')
    { echo "== nvidia-smi ($SMI): $q, CUDA $SMI_CUDA"; timeout 15 "$SMI" -L 2>&1; } >> "$ENVF"
fi
[ -z "$DRIVER" ] && [ -r /proc/driver/nvidia/version ] &&
    DRIVER=$(grep -o 'Kernel Module *[0-9.]*' /proc/driver/nvidia/version | awk '{print $3}')
if [ -z "$DRIVER" ]; then
    if [ "$REHEARSE" = 1 ]; then row "NVIDIA driver" ">= $MIN_DRIVER (CUDA ${CUDA_BUILT:-?})" none skip "rehearsal: no GPU expected"
    else row "NVIDIA driver" ">= $MIN_DRIVER (CUDA ${CUDA_BUILT:-?})" "none (no nvidia-smi, no /proc/driver/nvidia)" FAIL "a machine with an NVIDIA GPU and driver (check that the container sees it: --gpus all)"; fi
elif vge "$DRIVER" "$MIN_DRIVER"; then row "NVIDIA driver" ">= $MIN_DRIVER (CUDA ${CUDA_BUILT:-?})" "$DRIVER${SMI_CUDA:+ (CUDA $SMI_CUDA)}" ok
else row "NVIDIA driver" ">= $MIN_DRIVER (CUDA ${CUDA_BUILT:-?})" "$DRIVER${SMI_CUDA:+ (CUDA $SMI_CUDA)}" FAIL "driver >= $MIN_DRIVER, or a bundle built with CUDA ${SMI_CUDA:-no newer than the driver supports}"
fi
if [ -n "$GPU_NAME" ]; then row GPU "one" "$GPU_NAME, $GPU_MEM_MIB MiB" ok
elif [ "$REHEARSE" = 1 ]; then row GPU one none skip "rehearsal: no GPU expected"
else row GPU one none FAIL "a GPU visible to this container (nvidia-smi -L lists none)"; fi

# ---- PyTorch (for its library wheels and the comparison) --------------------------
PY='' TORCH_CUDA=0
for p in ${PYTHON:-} python3 python /usr/bin/python3 /usr/local/bin/python3 /opt/conda/bin/python3; do
    command -v "$p" > /dev/null || continue
    if v=$(timeout 60 "$p" -c 'import sys, torch; print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.backends.cudnn.version(), torch.cuda.is_available())' 2>/dev/null); then
        PY=$(command -v "$p"); echo "== python $PY: python torch cuda cudnn available: $v" >> "$ENVF"; break
    fi
done
if [ -z "$PY" ]; then row PyTorch "any, with CUDA" none warn "no PyTorch columns; set PYTHON=/path/to/python with torch"
else
    set -- $v
    [ "$5" = True ] && TORCH_CUDA=1
    if [ "$5" = True ] || [ -z "$DRIVER" ]; then row PyTorch "any, with CUDA" "torch $2 (CUDA $3, cuDNN $4), python $1" "$([ "$5" = True ] && echo ok || echo skip)"
    else row PyTorch "any, with CUDA" "torch $2 (CUDA $3), no GPU usable" warn "no PyTorch columns: torch.cuda.is_available() is False"; fi
fi

# ---- CUDA libraries: found by the loader, else in the usual places ---------------
# a bundle (bin/effnet, bin/gpu_runner) or a build directory (effnet, tests/gpu/gpu_runner)
EFFNET_BIN=$BUNDLE/bin/effnet RUNNER=$BUNDLE/bin/gpu_runner
[ -x "$EFFNET_BIN" ] || EFFNET_BIN=$BUNDLE/effnet
[ -x "$RUNNER" ] || RUNNER=$BUNDLE/tests/gpu/gpu_runner
[ -n "$SONAMES" ] || SONAMES=$(ldd "$RUNNER" 2>/dev/null | awk '{print $1}' | grep -E '^lib(cudart|cublas|cublasLt|cudnn|nccl)\.so' | sort -u | paste -sd' ')
missing_libs() { ldd "$1" 2>/dev/null | awk '/=> not found/ {print $1}' | sort -u; }
MISSING=$(for f in "$EFFNET_BIN" "$RUNNER"; do [ -f "$f" ] && missing_libs "$f"; done | sort -u)
LD_ADD=''
if [ -n "$MISSING" ]; then
    CANDS=(/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-*/lib64
           /usr/local/cuda-*/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu /usr/local/nvidia/lib64 /usr/lib64)
    [ -n "$PY" ] && while IFS= read -r d; do CANDS+=("$d"); done < <(timeout 60 "$PY" -c '
import glob, os, torch
sp = os.path.dirname(os.path.dirname(torch.__file__))
for d in [os.path.join(os.path.dirname(torch.__file__), "lib")] + sorted(glob.glob(os.path.join(sp, "nvidia", "*", "lib"))):
    print(d)' 2>/dev/null)
    for so in $MISSING; do
        for d in "${CANDS[@]}"; do
            [ -e "$d/$so" ] || continue
            case ":$LD_ADD:" in *":$d:"*) ;; *) LD_ADD=${LD_ADD:+$LD_ADD:}$d ;; esac
            break
        done
    done
    [ -n "$LD_ADD" ] && export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$LD_ADD
fi
where() { # where SONAME: the path the loader takes for it (gpu_runner, else effnet)
    local f p
    for f in "$RUNNER" "$EFFNET_BIN"; do
        p=$(ldd "$f" 2>/dev/null | awk -v s="$1" '$1 == s {print $3; exit}')
        [ -n "$p" ] && { echo "$p"; return; }
    done
}
for so in $SONAMES; do
    case $so in libcudart.so*) what="CUDA runtime" ;; libcublasLt.so*) what=cuBLASLt ;; libcublas.so*) what=cuBLAS ;;
                libcudnn.so*) what=cuDNN ;; libnccl.so*) what=NCCL ;; *) what=$so ;; esac
    p=$(where "$so")
    if [ -n "$p" ] && [ "$p" != not ]; then row "$what" "$so" "$(readlink -f "$p")" ok
    else row "$what" "$so" "not found (loader, /usr/local/cuda*, PyTorch wheels)" FAIL \
        "install it (CUDA ${CUDA_BUILT:-?} toolkit, or pip nvidia-*-cu${CUDA_MAJOR:-?} wheels) or make the bundle with this machine's CUDA"; fi
done
echo "== LD_LIBRARY_PATH += ${LD_ADD:-nothing}" >> "$ENVF"

# ---- the runtime's own view: gpu_runner --probe ------------------------------------
PROBE_OUT=''
if [ "$FAILS" = 0 ] || [ -n "${ENV_CHECK_PROBE:-}" ]; then
    if [ -n "${ENV_CHECK_PROBE:-}" ]; then PROBE_OUT=$(timeout 30 bash -c "$ENV_CHECK_PROBE" 2>&1); prc=$?
    elif [ -x "$RUNNER" ]; then PROBE_OUT=$(timeout 30 "$RUNNER" --probe 2>&1); prc=$?
    else prc=-1; fi
    echo "$PROBE_OUT" | sed 's/^/== probe: /' >> "$ENVF"
    kv() { echo "$PROBE_OUT" | sed -n "s/^$1=//p" | head -1; }
    drv=$(kv cuda_driver) rt=$(kv cuda_runtime) verdict=$(kv verdict)
    if [ "$prc" = -1 ]; then row "driver / runtime" "-" "no gpu_runner in the bundle" warn
    elif [ "$prc" = 124 ]; then row "driver / runtime" "-" "gpu_runner --probe hung (30 s)" FAIL "a hung driver: nvidia-smi, dmesg; try another machine"
    elif [ -z "$rt" ]; then row "driver / runtime" "-" "$(echo "$PROBE_OUT" | tail -1 | cut -c1-150)" FAIL "gpu_runner --probe does not run: see env.txt"
    elif [ "${drv:-0}" -gt 0 ] 2>/dev/null && [ "$drv" -lt "$rt" ]; then
        row "driver / runtime" "driver for CUDA >= $(cudav "$rt")" "driver supports CUDA $(cudav "$drv")" FAIL "driver >= $MIN_DRIVER (or a bundle built with CUDA $(cudav "$drv"))"
    elif [ "$prc" = 1 ]; then row "driver / runtime" "runtime $(cudav "$rt") usable" "$verdict" FAIL "see the verdict; driver >= $MIN_DRIVER"
    elif [ "$prc" = 77 ]; then
        row "driver / runtime" "runtime $(cudav "$rt"), one device" "driver CUDA $(cudav "$drv"): $verdict" "$([ "$REHEARSE" = 1 ] && echo skip || echo FAIL)" \
            "$([ "$REHEARSE" = 1 ] && echo 'rehearsal: no GPU expected' || echo 'a GPU visible to this process (CUDA_VISIBLE_DEVICES?)')"
    else row "driver / runtime" "runtime $(cudav "$rt")" "driver CUDA $(cudav "$drv"), $(kv devices) device(s): $(kv device0)" ok; fi
    c=$(kv cudnn) cb=$(kv cudnn_built)
    if [ -n "$c" ] && [ -n "$cb" ] && [ "$c" -gt 0 ] 2>/dev/null; then
        if [ $((c / 10000)) != $((cb / 10000)) ]; then
            row "cuDNN version" ">= $cb, major $((cb / 10000))" "$c" FAIL "cuDNN $((cb / 10000)).x >= the build's (pip nvidia-cudnn-cu${CUDA_MAJOR:-?})"
        elif [ "$c" -ge "$cb" ]; then row "cuDNN version" ">= $cb (built)" "$c" ok
        else row "cuDNN version" ">= $cb (built)" "$c" warn "older than the build's, same major: the check goes on; if cuDNN calls fail, a newer nvidia-cudnn-cu${CUDA_MAJOR:-?}"; fi
    fi
    n=$(kv nccl) nb=$(kv nccl_built)
    if [ -n "$n" ] && [ -n "$nb" ] && [ "$n" -gt 0 ] 2>/dev/null; then
        if [ "$n" -ge "$nb" ]; then row "NCCL version" ">= $nb (built)" "$n" ok
        else row "NCCL version" ">= $nb (built)" "$n" warn "an older NCCL than the build's: the NCCL tests may fail"; fi
    fi
fi

HAVE_GPU=0; [ -n "$GPU_NAME" ] && HAVE_GPU=1
secs=$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
{
    echo "### Environment check ($secs s): $([ "$FAILS" = 0 ] && { [ "$WARNS" = 0 ] && echo ok || echo "ok, $WARNS warning(s)"; } || echo "$FAILS MISMATCH(ES) -- the check stops here")"
    echo
    echo "| what | needed | found | status | fix |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
} > "$MD"
{
    printf 'HAVE_GPU=%q\nPY=%q\nTORCH_CUDA=%q\nLD_ADD=%q\nGPU_NAME=%q\nGPU_MEM_MIB=%q\nENV_FAILS=%q\nENV_SECS=%q\n' \
        "$HAVE_GPU" "$PY" "$TORCH_CUDA" "$LD_ADD" "$GPU_NAME" "${GPU_MEM_MIB:-0}" "$FAILS" "$secs"
} > "$SH"
cat "$MD"
[ "$FAILS" = 0 ] || exit 3
exit 0
