#!/usr/bin/env bash
# make_bundle.sh BUILD_DIR OUT_DIR [--tar] [--selftest] [--allow-native]
# make_bundle.sh --list-tests BUILD_DIR
#
# Packs the effnet binary and every executable under BUILD_DIR/tests/gpu/ into
# a self-contained directory for a machine that has CUDA (toolkit or PyTorch's
# CUDA libraries) but no MPI, HDF5, OpenBLAS, iniparser or network:
#
#   OUT_DIR/bin/     effnet, the GPU tests, mpi_singleton_probe, data_tools/,
#                    GPU_TESTS.tsv (the build's ctest GPU tests, for
#                    device_check.sh), bundle-env.sh (source it), bundle-run
#   OUT_DIR/lib/     every shared library they need except glibc, libgcc_s,
#                    libstdc++ and CUDA (libcudart, libcublas*, libcudnn*,
#                    libnccl, ...), whose sonames go to lib/CUDA_SONAMES.txt
#   OUT_DIR/lib/openmpi/  the Open MPI MCA plugins a singleton needs
#   OUT_DIR/share/openmpi/ Open MPI's help texts (readable error messages)
#   OUT_DIR/BUNDLE_MANIFEST.txt  what is in it, where it came from, and
#                    which glibc / GLIBCXX / CUDA sonames the target must have
#
# Binaries get DT_RPATH $ORIGIN/../lib (plus any absolute RPATH entries of the
# build, e.g. the CUDA toolkit's lib64) and libraries $ORIGIN, so they run
# without LD_LIBRARY_PATH and a stray LD_LIBRARY_PATH on the target cannot
# swap in a different libmpi/libhdf5 (DT_RPATH is searched before it).
#
# Open MPI singleton (running effnet without mpirun): Open MPI 4.1 loads its
# components as plugins from its install prefix and, as a singleton, execs
# `orted` to act as its HNP. bin/bundle-env.sh points Open MPI at the bundled
# plugins and help texts (OPAL_PKGLIBDIR, OPAL_PKGDATADIR, ...) and sets
# OMPI_MCA_ess_singleton_isolated=1 so no orted is needed (docs/gpu-check.md).
#
# glibc: Debian 12's libevent needs GLIBC_2.36 (arc4random) only; the bundle
# marks that requirement weak and adds libeffnet_arc4random.so (getrandom), so
# the bundle runs on glibc >= 2.34 (Ubuntu 22.04, RHEL 9) and not only >= 2.36.
#
# The build must be portable: configured with -DEFFNET_NATIVE=OFF (the
# default ON means -march=native: code for THIS CPU, which may die of SIGILL
# on the device machine's). A native build is refused, except with
#   --allow-native  for a bundle rehearsed on this machine only (the
#               rehearsal test); its manifest says so and env_check.sh fails
#               it outside --rehearse.
#   --tar       also write OUT_DIR.tar.gz (what to carry to the device machine)
#   --list-tests  only print the build's GPU tests (see list_tests below)
#   --selftest  afterwards run the bundle in a chroot that holds only glibc,
#               bash and coreutils (needs root and unshare): every library
#               resolves, `effnet --help` runs, the MPI singleton probe passes
#
# Environment: GLIBC_FLOOR (default 2.34): warn about libraries needing more.
set -u -o pipefail

die() { echo "make_bundle: ERROR: $*" >&2; exit 1; }
warn() { echo "make_bundle: WARNING: $*" >&2; WARNINGS+=("$*"); }
note() { echo "make_bundle: $*"; }
WARNINGS=()

usage() { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
BUILD='' OUT='' TAR=0 SELFTEST=0 LIST=0 ALLOW_NATIVE=0
for a in "$@"; do
    case $a in
        --tar) TAR=1 ;;
        --allow-native) ALLOW_NATIVE=1 ;;
        --list-tests) LIST=1 ;;
        --selftest) SELFTEST=1 ;;
        -h|--help) usage ;;
        -*) echo "make_bundle: unknown option $a" >&2; usage ;;
        *) if [ -z "$BUILD" ]; then BUILD=$a; elif [ -z "$OUT" ]; then OUT=$a; else usage; fi ;;
    esac
done
GLIBC_FLOOR=${GLIBC_FLOOR:-2.34}
SRC=$(cd "$(dirname "$0")/../.." && pwd)

# list_tests BUILD_DIR: the build's GPU tests (ctest label "gpu", else those
# under tests/gpu/) as "name<TAB>timeout<TAB>env<TAB>argv", env ("-": none)
# and argv joined by \x1f, paths as placeholders: @BUILD@ (the build directory, or the
# bundle's bin/), @TESTS@ (where the test programs are), @SRC@ (the source
# tree), @PYTHON@ (the build's EFFNET_PYTHON). device_check.sh runs this list.
list_tests() {
    command -v ctest > /dev/null || { echo "make_bundle: ctest not found: cannot list the GPU tests" >&2; return 1; }
    local py; py=$(awk -F= '/^EFFNET_PYTHON:/ {print $2}' "$1/CMakeCache.txt" 2>/dev/null)
    (cd "$1" && ctest --show-only=json-v1) | /usr/bin/python3 -c '
import json, os, sys
build, src, py = [os.path.realpath(p) if p else "" for p in sys.argv[1:4]]
tests = json.load(sys.stdin).get("tests", [])
def props(t):
    return {p["name"]: p["value"] for p in t.get("properties", [])}
labelled = [t for t in tests if "gpu" in props(t).get("LABELS", [])]
if not labelled:
    gdirs = (os.path.join(build, "tests", "gpu") + "/", os.path.join(src, "tests", "gpu") + "/")
    labelled = [t for t in tests if t.get("command") and t["command"][0].startswith(gdirs)]
def place(a):
    r = os.path.realpath(a) if a.startswith("/") else a
    if py and a == sys.argv[3]:
        return "@PYTHON@"
    for root, tag in ((os.path.join(build, "tests", "gpu"), "@TESTS@"), (build, "@BUILD@"), (src, "@SRC@")):
        if r == root or r.startswith(root + "/"):
            return tag + r[len(root):]
    return a
for t in labelled:
    p = props(t)
    cmd = [place(a) for a in t.get("command") or []]
    if not cmd or any(("\t" in a or "\x1f" in a or "\n" in a) for a in cmd):
        continue
    env = [e for e in p.get("ENVIRONMENT", []) if "\t" not in e and "\x1f" not in e]
    print("\t".join([t["name"], str(int(p.get("TIMEOUT", 0) or 0)), "\x1f".join(env) or "-", "\x1f".join(cmd)]))
' "$1" "$SRC" "$py"
}
if [ "$LIST" = 1 ]; then
    [ -n "$BUILD" ] && [ -z "$OUT" ] || usage
    list_tests "$BUILD"
    exit $?
fi
[ -n "$BUILD" ] && [ -n "$OUT" ] || usage

pkg_of() { case $1 in patchelf) echo patchelf ;; readelf|objdump|strip) echo binutils ;; cc) echo gcc ;; *) echo coreutils ;; esac; }
for t in ldd readelf objdump patchelf strip cc du tar gzip; do
    command -v "$t" >/dev/null || die "'$t' not found (Debian: apt-get install -y $(pkg_of "$t"))"
done
[ -d "$BUILD" ] || die "build directory '$BUILD' does not exist"
BUILD=$(cd "$BUILD" && pwd)
[ -x "$BUILD/effnet" ] || die "$BUILD/effnet not found or not executable (build first: cmake --build $BUILD)"
NATIVE=$(awk -F= '/^EFFNET_NATIVE:/ {print $2}' "$BUILD/CMakeCache.txt" 2>/dev/null)
if [ "$NATIVE" != OFF ]; then
    [ "$ALLOW_NATIVE" = 1 ] || die "$BUILD was configured with EFFNET_NATIVE=${NATIVE:-unknown (no CMakeCache.txt entry)}: -march=native code for THIS CPU may die of SIGILL on the device machine. Configure a portable build: cmake -S $SRC -B build-gpu -DEFFNET_CUDA=ON -DEFFNET_NATIVE=OFF -DCMAKE_BUILD_TYPE=Release (docs/gpu-check.md); --allow-native only to rehearse on this machine"
    warn "EFFNET_NATIVE=${NATIVE:-unknown}, bundled with --allow-native: NOT PORTABLE, for a rehearsal on this machine only"
fi

is_elf() { [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; }

# ---- output directory ------------------------------------------------------
if [ -e "$OUT" ]; then
    [ -d "$OUT" ] || die "'$OUT' exists and is not a directory"
    if [ -n "$(ls -A "$OUT")" ] && [ ! -f "$OUT/BUNDLE_MANIFEST.txt" ]; then
        die "'$OUT' is not empty and not a bundle (no BUNDLE_MANIFEST.txt): refusing to overwrite it"
    fi
    rm -rf "$OUT" || die "cannot remove old bundle '$OUT'"
fi
mkdir -p "$OUT/bin" "$OUT/lib" "$OUT/lib/hwloc" "$OUT/share" "$OUT/etc" || die "cannot create '$OUT'"
OUT=$(cd "$OUT" && pwd)

# ---- library classes -------------------------------------------------------
# cuda: provided by the target (toolkit, driver or PyTorch's nvidia-* wheels)
# system: glibc and the compiler runtime every Linux with PyTorch has
is_cuda() {
    case $1 in
        libcuda.so*|libcudart.so*|libcublas.so*|libcublasLt.so*|libcudnn*.so*|libnccl.so*|libnvrtc*.so*|\
        libnvJitLink.so*|libcurand.so*|libcufft*.so*|libcusparse*.so*|libcusolver*.so*|libnvToolsExt.so*|\
        libnvtx*.so*|libcupti.so*|libnvidia-ml.so*|libnpp*.so*|libcufile*.so*|libnvperf*.so*) return 0 ;;
    esac
    return 1
}
is_system() {
    case $1 in
        linux-vdso.so*|ld-linux*.so*|libc.so.*|libm.so.*|libmvec.so.*|libpthread.so.*|libdl.so.*|librt.so.*|\
        libresolv.so.*|libutil.so.*|libanl.so.*|libBrokenLocale.so.*|libthread_db.so.*|libnss_*.so.*|\
        libgcc_s.so.*|libstdc++.so.*) return 0 ;;
    esac
    return 1
}

# deps FILE -> "soname<TAB>path" (path "not-found" when the loader cannot find it here)
deps() {
    ldd "$1" 2>/dev/null | awk '
        /=> not found/ { printf "%s\tnot-found\n", $1; next }
        /=>/ { if ($3 ~ /^\//) printf "%s\t%s\n", $1, $3; next }
        /^[ \t]*\// { n = split($1, p, "/"); printf "%s\t%s\n", p[n], $1 }'
}

declare -A LIBSRC=() CUDA_NEED=() CUDA_BY=() SYS_NEED=()
MISSING=()
collect() { # collect FILE: record every library FILE needs (ldd gives the closure)
    local f=$1 so path
    while IFS=$'\t' read -r so path; do
        [ -n "$so" ] || continue
        if is_cuda "$so"; then
            CUDA_NEED[$so]=$path
            case " ${CUDA_BY[$so]:-} " in *" $(basename "$f") "*) ;; *) CUDA_BY[$so]="${CUDA_BY[$so]:-} $(basename "$f")" ;; esac
        elif is_system "$so"; then
            SYS_NEED[$so]=$path
        elif [ "$path" = not-found ]; then
            MISSING+=("$so (needed by $(basename "$f"))")
        else
            LIBSRC[$so]=$path
        fi
    done < <(deps "$f")
}

# ---- executables -----------------------------------------------------------
ELF_BINS=()
cp -p "$BUILD/effnet" "$OUT/bin/effnet" || die "copying effnet"
ELF_BINS+=("$OUT/bin/effnet")
collect "$BUILD/effnet"
NGPU=0
if [ -d "$BUILD/tests/gpu" ]; then
    while IFS= read -r -d '' f; do
        b=$(basename "$f")
        cp -p "$f" "$OUT/bin/$b" || die "copying $f"
        NGPU=$((NGPU + 1))
        if is_elf "$f"; then ELF_BINS+=("$OUT/bin/$b"); collect "$f"; fi
    done < <(find "$BUILD/tests/gpu" -maxdepth 1 -type f -perm -u+x -print0 | sort -z)
fi
[ "$NGPU" -gt 0 ] || warn "no executables under $BUILD/tests/gpu/ (a CPU-only build?): the bundle has effnet only"
# data tools (the training smoke test converts its tiny data with cifar10-to-h5)
NDT=0
if [ -d "$BUILD/data_tools" ]; then
    mkdir -p "$OUT/bin/data_tools"
    while IFS= read -r -d '' f; do
        b=$(basename "$f")
        cp -p "$f" "$OUT/bin/data_tools/$b" || die "copying $f"
        NDT=$((NDT + 1))
        if is_elf "$f"; then ELF_BINS+=("$OUT/bin/data_tools/$b"); collect "$f"; fi
    done < <(find "$BUILD/data_tools" -maxdepth 1 -type f -perm -u+x -print0 | sort -z)
fi
note "executables: effnet + $NGPU from $BUILD/tests/gpu/ + $NDT from $BUILD/data_tools/"
# the GPU tests as ctest runs them (arguments, environment, timeout)
if [ -f "$BUILD/CTestTestfile.cmake" ] && command -v ctest > /dev/null; then
    list_tests "$BUILD" > "$OUT/bin/GPU_TESTS.tsv" || warn "could not list the GPU tests with ctest"
    NT=$(grep -c . "$OUT/bin/GPU_TESTS.tsv")
    note "GPU_TESTS.tsv: $NT ctest tests ($(cut -f1 "$OUT/bin/GPU_TESTS.tsv" | paste -sd' '))"
    while IFS=$'\t' read -r name _ _ cmd; do  # every program a test names must be in the bundle or the source tree
        IFS=$'\x1f' read -r -a argv <<< "$cmd"
        for a in "${argv[@]}"; do
            case $a in
                @TESTS@/*) [ -e "$OUT/bin/${a#@TESTS@/}" ] || warn "test $name needs ${a}, not in the bundle" ;;
                @BUILD@/*) [ -e "$OUT/bin/${a#@BUILD@/}" ] || warn "test $name needs ${a}, not in the bundle" ;;
            esac
        done
    done < "$OUT/bin/GPU_TESTS.tsv"
    [ "$NT" -gt 0 ] || rm -f "$OUT/bin/GPU_TESTS.tsv"
fi

# ---- Open MPI: singleton probe, plugins, help texts -----------------------
HAVE_MPI=0
for so in "${!LIBSRC[@]}"; do case $so in libmpi.so.*) HAVE_MPI=1 ;; esac; done
OMPI_VERSION=none
if [ "$HAVE_MPI" = 1 ]; then
    command -v ompi_info >/dev/null || die "effnet links libmpi but ompi_info is not on PATH (need Open MPI's plugin directory)"
    OMPI_VERSION=$(ompi_info --parsable --version 2>/dev/null | head -1)
    PLUGDIR=${OMPI_PLUGIN_DIR:-$(ompi_info --path pkglibdir --parsable | cut -d: -f3)}
    HELPDIR=$(ompi_info --path pkgdatadir --parsable | cut -d: -f3)
    [ -d "$PLUGDIR" ] || die "Open MPI plugin directory '$PLUGDIR' not found (set OMPI_PLUGIN_DIR)"
    # A tiny MPI program: MPI_Init_thread as effnet train does, one Allreduce.
    if command -v mpicc >/dev/null; then
        probe_src=$(mktemp /tmp/mpi_probe.XXXXXX.c)
        cat > "$probe_src" <<'EOF'
/* mpi_singleton_probe: MPI_Init_thread + Allreduce + Finalize, as effnet train. */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int provided = 0, rank = -1, size = 0, len = 0;
    char ver[MPI_MAX_LIBRARY_VERSION_STRING];
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "mpi_singleton_probe: MPI_Init_thread failed\n");
        return 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    double one = 1.0, sum = 0.0;
    MPI_Allreduce(&one, &sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    MPI_Get_library_version(ver, &len);
    for (int i = 0; i < len; i++) if (ver[i] == '\n' || ver[i] == ',') { ver[i] = '\0'; break; }
    printf("mpi_singleton_probe: ok rank %d of %d, allreduce %g, thread level %d, %s\n", rank, size, sum,
           provided, ver);
    MPI_Finalize();
    return sum == (double)size ? 0 : 1;
}
EOF
        if mpicc -O2 -o "$OUT/bin/mpi_singleton_probe" "$probe_src"; then
            ELF_BINS+=("$OUT/bin/mpi_singleton_probe"); collect "$OUT/bin/mpi_singleton_probe"
        else
            warn "mpicc could not build mpi_singleton_probe"
        fi
        rm -f "$probe_src"
    else
        warn "mpicc not found: no mpi_singleton_probe in the bundle"
    fi
    # Plugins: all but those needing fabrics/launchers absent on a one-GPU box
    # (UCX, libfabric, PSM, verbs, external PMIx/munge, netlink) and OpenSHMEM.
    mkdir -p "$OUT/lib/openmpi" "$OUT/share/openmpi"
    np=0 nskip=0 SKIPPED_PLUGINS=()
    for p in "$PLUGDIR"/*.so; do
        heavy=$(ldd "$p" 2>/dev/null | awk '{print $1}' | grep -E '^lib(uc[pstm]|fabric|psm|infinipath|ibverbs|rdmacm|pmix|munge|nl-|efa|oshmem|cuda)' | head -1)
        nf=$(ldd "$p" 2>/dev/null | grep -c 'not found')
        if [ -n "$heavy" ] || [ "$nf" != 0 ]; then
            nskip=$((nskip + 1)); SKIPPED_PLUGINS+=("$(basename "$p" .so)")
            continue
        fi
        cp -L "$p" "$OUT/lib/openmpi/" || die "copying plugin $p"
        collect "$p"
        np=$((np + 1))
    done
    cp "$HELPDIR"/help-*.txt "$OUT/share/openmpi/" 2>/dev/null || warn "no Open MPI help texts in $HELPDIR"
    printf '# Open MPI reads this (OPAL_SYSCONFDIR points here); settings are in bin/bundle-env.sh.\n' \
        > "$OUT/etc/openmpi-mca-params.conf"
    note "Open MPI $OMPI_VERSION: $np plugins bundled, $nskip left out (${SKIPPED_PLUGINS[*]})"
fi

[ ${#MISSING[@]} -eq 0 ] || die "libraries not found on this machine: ${MISSING[*]}"

# ---- copy libraries ----------------------------------------------------------
for so in "${!LIBSRC[@]}"; do
    cp -L "${LIBSRC[$so]}" "$OUT/lib/$so" || die "copying ${LIBSRC[$so]}"
    chmod u+w "$OUT/lib/$so"
done
note "libraries: ${#LIBSRC[@]} copied, ${#CUDA_NEED[@]} CUDA sonames left to the target, system: ${!SYS_NEED[*]}"

# ---- strip (before patchelf; Debian's libraries are stripped already) --------
for f in "${ELF_BINS[@]}" "$OUT"/lib/*.so* "$OUT"/lib/openmpi/*.so; do
    [ -f "$f" ] || continue
    if readelf -S "$f" 2>/dev/null | grep -q '\.symtab'; then
        strip --strip-unneeded "$f" 2>/dev/null || warn "strip failed on $f (kept unstripped)"
    fi
done

# ---- glibc compatibility: libevent's arc4random (GLIBC_2.36) -----------------
# glibc_needs FILE -> "VERSION SYMBOL" for every undefined symbol above GLIBC_FLOOR
ver_gt() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -1)" = "$1" ] && [ "$1" != "$2" ]; }
glibc_needs() {
    objdump -T "$1" 2>/dev/null | awk '$0 ~ /\*UND\*/ && match($0, /\(GLIBC_[0-9.]+\)/) {
        v = substr($0, RSTART + 7, RLENGTH - 8); print v, $NF }' | sort -u |
        while read -r v s; do ver_gt "$v" "$GLIBC_FLOOR" && echo "$v $s"; done
}
SHIM_BUILT=0
build_shim() {
    [ "$SHIM_BUILT" = 1 ] && return 0
    local src; src=$(mktemp /tmp/arc4random_shim.XXXXXX.c)
    cat > "$src" <<'EOF'
/* arc4random for glibc < 2.36 (glibc >= 2.36 has its own, found first). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/random.h>
void arc4random_buf(void *buf, size_t n) {
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) { if (errno == EINTR) continue; abort(); }
        p += r; n -= (size_t)r;
    }
}
uint32_t arc4random(void) { uint32_t v; arc4random_buf(&v, sizeof v); return v; }
uint32_t arc4random_uniform(uint32_t upper) {
    if (upper < 2) return 0;
    uint32_t min = -upper % upper, r;
    do r = arc4random(); while (r < min);
    return r % upper;
}
EOF
    cc -O2 -shared -fPIC -Wl,-soname,libeffnet_arc4random.so -o "$OUT/lib/libeffnet_arc4random.so" "$src" ||
        { rm -f "$src"; return 1; }
    rm -f "$src"
    SHIM_BUILT=1
}
weaken_versions() { # weaken_versions FILE VERSION... : set VER_FLG_WEAK on these verneed entries
    /usr/bin/python3 - "$@" <<'EOF'
import struct, sys
path, names = sys.argv[1], set(sys.argv[2:])
d = bytearray(open(path, 'rb').read())
assert d[:4] == b'\x7fELF' and d[4] == 2 and d[5] == 1, 'not a 64-bit little-endian ELF'
shoff, = struct.unpack_from('<Q', d, 0x28)
shentsize, shnum = struct.unpack_from('<HH', d, 0x3a)
secs = [struct.unpack_from('<IIQQQQIIQQ', d, shoff + i * shentsize) for i in range(shnum)]
def cstr(base, o):
    e = d.index(b'\0', base + o)
    return d[base + o:e].decode()
done = []
for s in secs:
    if s[1] != 0x6ffffffe:  # SHT_GNU_verneed
        continue
    strbase, off = secs[s[6]][4], s[4]
    while True:
        _, cnt, vfile, aux, nxt = struct.unpack_from('<HHIII', d, off)
        a = off + aux
        for _ in range(cnt):
            _, flags, _, name, anext = struct.unpack_from('<IHHII', d, a)
            if cstr(strbase, name) in names:
                struct.pack_into('<H', d, a + 4, flags | 2)  # VER_FLG_WEAK
                done.append(cstr(strbase, vfile) + ':' + cstr(strbase, name))
            if not anext:
                break
            a += anext
        if not nxt:
            break
        off += nxt
open(path, 'wb').write(d)
print(' '.join(done))
EOF
}
GLIBC_MIN=$GLIBC_FLOOR
COMPAT_NOTES=()
for f in "${ELF_BINS[@]}" "$OUT"/lib/*.so* "$OUT"/lib/openmpi/*.so; do
    [ -f "$f" ] || continue
    needs=$(glibc_needs "$f")
    [ -n "$needs" ] || continue
    others=$(echo "$needs" | awk '$2 !~ /^arc4random(_buf|_uniform)?$/')
    if [ -z "$others" ] && [ -x /usr/bin/python3 ] && build_shim; then
        vers=$(echo "$needs" | awk '{print $1}' | sort -u | sed 's/^/GLIBC_/')
        # shellcheck disable=SC2086
        if w=$(weaken_versions "$f" $vers) && patchelf --add-needed libeffnet_arc4random.so "$f"; then
            COMPAT_NOTES+=("$(basename "$f"): weak $w, arc4random from libeffnet_arc4random.so when glibc lacks it")
            continue
        fi
        warn "could not patch $(basename "$f") for older glibc"
    fi
    while read -r v s; do
        ver_gt "$v" "$GLIBC_MIN" && GLIBC_MIN=$v
        warn "$(basename "$f") needs $s@GLIBC_$v (above GLIBC_FLOOR $GLIBC_FLOOR)"
    done <<< "$needs"
done
for n in "${COMPAT_NOTES[@]}"; do note "glibc compat: $n"; done
# The real floor: the highest GLIBC version anything still needs strictly.
GLIBC_REQ=$(for f in "${ELF_BINS[@]}" "$OUT"/lib/*.so* "$OUT"/lib/openmpi/*.so; do
        [ -f "$f" ] && readelf -V "$f" 2>/dev/null | awk '/Name: GLIBC_[0-9.]+ +Flags: none/ {sub("GLIBC_", "", $3); print $3}'
    done | sort -V | tail -1)
GLIBCXX_REQ=$(for f in "${ELF_BINS[@]}" "$OUT"/lib/*.so* "$OUT"/lib/openmpi/*.so; do
        [ -f "$f" ] && readelf -V "$f" 2>/dev/null | awk '/Name: GLIBCXX_[0-9.]+ / {sub("GLIBCXX_", "", $3); print $3}'
    done | sort -V | tail -1)

# ---- RPATH ---------------------------------------------------------------------
for f in "${ELF_BINS[@]}"; do
    # keep the build's RPATH entries that hold CUDA libraries; then the usual toolkit places
    keep=
    for d in $(patchelf --print-rpath "$f" 2>/dev/null | tr ':' ' ') /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
        case $d in /*) ;; *) continue ;; esac
        case ":$keep:" in *":$d:"*) continue ;; esac
        case $d in /usr/local/cuda/lib64|/usr/local/cuda/targets/x86_64-linux/lib) keep=${keep:+$keep:}$d; continue ;; esac
        ls "$d" 2>/dev/null | grep -q -E '^lib(cuda|cudart|cublas|cudnn|nccl|nvrtc|nvJitLink)' && keep=${keep:+$keep:}$d
    done
    up=..; case $f in "$OUT"/bin/*/*) up=../.. ;; esac
    patchelf --force-rpath --set-rpath "\$ORIGIN/$up/lib${keep:+:$keep}" "$f" || die "patchelf on $f"
done
for f in "$OUT"/lib/*.so*; do patchelf --force-rpath --set-rpath '$ORIGIN' "$f" || die "patchelf on $f"; done
for f in "$OUT"/lib/openmpi/*.so; do
    [ -f "$f" ] || continue
    patchelf --force-rpath --set-rpath '$ORIGIN/..' "$f" || die "patchelf on $f"
done

# ---- environment: source bin/bundle-env.sh, or prefix commands with bin/bundle-run --
cat > "$OUT/bin/bundle-env.sh" <<'EOF'
# Source me (bash): environment for the bundle's binaries. Libraries need none
# (RPATH); this is for Open MPI, which finds its plugins and help texts through
# its install prefix, and which as a singleton (no mpirun) would exec `orted`.
_eb=${BASH_SOURCE[0]}
case $_eb in */*) _eb=${_eb%/*} ;; *) _eb=. ;; esac
_eb=$(cd "$_eb/.." && pwd)
export EFFNET_BUNDLE="$_eb"
export PATH="$_eb/bin:$PATH"
export OPAL_PKGLIBDIR="$_eb/lib/openmpi" OPAL_PKGDATADIR="$_eb/share/openmpi"
export OPAL_SYSCONFDIR="$_eb/etc" OPAL_BINDIR="$_eb/bin"
export OMPI_MCA_mca_base_component_path="$_eb/lib/openmpi"
export OMPI_MCA_ess_singleton_isolated=1              # singleton: no orted
export OMPI_MCA_btl_vader_single_copy_mechanism=none   # containers: no CMA
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export HWLOC_PLUGINS_PATH="$_eb/lib/hwloc"             # empty: no host hwloc plugins
unset _eb
EOF
cat > "$OUT/bin/bundle-run" <<'EOF'
#!/usr/bin/env bash
# bundle-run CMD [ARGS...]: run CMD (a bundle binary name or a path) in the bundle's environment.
_d=${BASH_SOURCE[0]}; case $_d in */*) _d=${_d%/*} ;; *) _d=. ;; esac
source "$_d/bundle-env.sh" || exit 127; unset _d
[ $# -gt 0 ] || { echo "usage: bundle-run CMD [ARGS...]" >&2; exit 2; }
exec "$@"
EOF
chmod +x "$OUT/bin/bundle-run"

# ---- manifest --------------------------------------------------------------------
{
    echo "# soname <TAB> where the build machine has it <TAB> needed by (not bundled: the target provides CUDA)"
    for so in "${!CUDA_NEED[@]}"; do printf '%s\t%s\t%s\n' "$so" "${CUDA_NEED[$so]}" "${CUDA_BY[$so]# }"; done | sort
} > "$OUT/lib/CUDA_SONAMES.txt"
CUDA_LIST=$(printf '%s\n' "${!CUDA_NEED[@]}" | sort | paste -sd' ')
CFLAGS_REL=$(awk -F= '/^CMAKE_C_FLAGS_RELEASE:/ {print $2}' "$BUILD/CMakeCache.txt" 2>/dev/null)
CUDA_ARCH=$(awk -F= '/^CMAKE_CUDA_ARCHITECTURES:/ {print $2}' "$BUILD/CMakeCache.txt" 2>/dev/null)
NVCC_VER=$(sed -n 's/^set(CMAKE_CUDA_COMPILER_VERSION "\(.*\)")/nvcc \1/p' "$BUILD"/CMakeFiles/*/CMakeCUDACompiler.cmake 2>/dev/null | head -1)
{
    echo "effnet GPU bundle"
    echo "made:        $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n) ($(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-?}"), glibc $(getconf GNU_LIBC_VERSION | awk '{print $2}'))"
    echo "build dir:   $BUILD"
    echo "git:         $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null)$(git -C "$SRC" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
    echo "EFFNET_NATIVE: ${NATIVE:-?}$([ "$NATIVE" != OFF ] && echo " (--allow-native: NOT PORTABLE, -march=native for $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); rehearsal on this machine only)")   C flags (Release): ${CFLAGS_REL:-?}"
    echo "CUDA:        ${NVCC_VER:-no CUDA compiler}, architectures ${CUDA_ARCH:-?}; a CUDA 13 runtime needs an NVIDIA driver >= 580"
    echo "Open MPI:    $OMPI_VERSION (singleton via OMPI_MCA_ess_singleton_isolated=1, see bin/bundle-env.sh)"
    echo "needs:       glibc >= ${GLIBC_REQ:-?}$([ -n "$GLIBCXX_REQ" ] && echo ", libstdc++ with GLIBCXX_$GLIBCXX_REQ"), x86-64"
    echo "             CUDA sonames (not bundled; see lib/CUDA_SONAMES.txt): ${CUDA_LIST:-none}"
    for n in "${COMPAT_NOTES[@]}"; do echo "glibc compat: $n"; done
    echo
    echo "bin/:"
    (cd "$OUT/bin" && for f in *; do printf '  %-28s %9d bytes\n' "$f" "$(stat -c %s "$f")"; done)
    echo "lib/ (from):"
    for so in $(printf '%s\n' "${!LIBSRC[@]}" | sort); do
        printf '  %-34s %9d bytes  %s\n' "$so" "$(stat -c %s "$OUT/lib/$so")" "${LIBSRC[$so]}"
    done
    [ "$SHIM_BUILT" = 1 ] && printf '  %-34s %9d bytes  %s\n' libeffnet_arc4random.so "$(stat -c %s "$OUT/lib/libeffnet_arc4random.so")" "(built here)"
    [ "$HAVE_MPI" = 1 ] && echo "lib/openmpi/: $np Open MPI plugins from $PLUGDIR; left out: ${SKIPPED_PLUGINS[*]}"
    echo "system libraries expected on the target: ${!SYS_NEED[*]}"
    for w in "${WARNINGS[@]}"; do echo "WARNING: $w"; done
} > "$OUT/BUNDLE_MANIFEST.txt"

SIZE=$(du -sb "$OUT" | cut -f1)
note "bundle $OUT: $((SIZE / 1048576)) MiB ($SIZE bytes); needs glibc >= ${GLIBC_REQ:-?}"
echo "size:        $SIZE bytes uncompressed" >> "$OUT/BUNDLE_MANIFEST.txt"
if [ "$TAR" = 1 ]; then
    TARBALL="$OUT.tar.gz"
    tar -C "$(dirname "$OUT")" -cf - "$(basename "$OUT")" | gzip -9 > "$TARBALL" || die "writing $TARBALL"
    TSIZE=$(stat -c %s "$TARBALL")
    note "tarball $TARBALL: $((TSIZE / 1048576)) MiB ($TSIZE bytes)"
    [ "$TSIZE" -lt $((48 * 1048576)) ] || warn "tarball is $((TSIZE / 1048576)) MiB: close to the 64 MiB carry limit"
elif [ "$SIZE" -ge $((48 * 1048576)) ]; then
    warn "bundle is $((SIZE / 1048576)) MiB uncompressed: carry the tarball (--tar) instead, the carry limit is 64 MiB"
fi

# ---- self-test in a glibc-only chroot ------------------------------------------------
selftest() {
    [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && command -v chroot >/dev/null ||
        { warn "--selftest needs root, unshare and chroot: skipped"; return 0; }
    local R; R=$(mktemp -d /tmp/effnet-bundle-root.XXXXXX)
    mkdir -p "$R"/{bin,lib64,lib/x86_64-linux-gnu,tmp,proc,sys,dev,etc,bundle} && chmod 1777 "$R/tmp"
    local t p l
    for t in bash env cat ls sleep timeout head dirname readlink grep od tr; do
        p=$(readlink -f "$(command -v $t)") && cp "$p" "$R/bin/$t"
        for l in $(ldd "$p" | awk '/=>/ {print $3}'); do cp -nL "$l" "$R/lib/x86_64-linux-gnu/"; done
    done
    cp -L /lib64/ld-linux-x86-64.so.2 "$R/lib64/"
    for l in libc.so.6 libm.so.6 libpthread.so.0 libdl.so.2 librt.so.1 libresolv.so.2 libgcc_s.so.1 libstdc++.so.6; do
        [ -e "/lib/x86_64-linux-gnu/$l" ] && cp -nL "/lib/x86_64-linux-gnu/$l" "$R/lib/x86_64-linux-gnu/"
    done
    echo 'root:x:0:0:root:/tmp:/bin/bash' > "$R/etc/passwd"; echo 'root:x:0:' > "$R/etc/group"
    echo '127.0.0.1 localhost' > "$R/etc/hosts"
    cat > "$R/selftest.sh" <<'EOF'
set -u
B=/bundle; rc=0
for f in $B/bin/* $B/lib/*.so* $B/lib/openmpi/*.so; do
    [ "$(cat -v "$f" 2>/dev/null | head -c 4)" = '^?ELF' ] || continue
    out=$(/lib64/ld-linux-x86-64.so.2 --list "$f" 2>&1) || true
    miss=$(echo "$out" | grep 'not found' | grep -v -E 'lib(cuda|cudart|cublas|cublasLt|cudnn|nccl|nvrtc|nvJitLink|curand|cufft|cusparse|cusolver|nvToolsExt|cupti|nvidia-ml)' )
    if [ -n "$miss" ]; then echo "selftest: FAIL $f: $miss"; rc=1; fi
done
[ $rc = 0 ] && echo "selftest: every bundled ELF resolves its non-CUDA libraries inside the chroot"
P=$B/bin/mpi_singleton_probe
if [ -x $P ]; then  # the two ways it fails without the fix, then with it
    if timeout 60 $P > /dev/null 2>&1; then echo "selftest: note: the probe passes even without bundle-env.sh"
    else echo "selftest: as expected, the probe fails without bundle-env.sh (Open MPI finds no plugins)"; fi
    if (source $B/bin/bundle-env.sh; OMPI_MCA_ess_singleton_isolated=0 timeout 60 $P > /dev/null 2>&1); then
        echo "selftest: note: the probe passes even without ess_singleton_isolated"
    else echo "selftest: as expected, the probe fails with the plugins but without ess_singleton_isolated (no orted)"; fi
fi
source $B/bin/bundle-env.sh
if [ -x $P ]; then
    timeout 60 $P || { echo "selftest: FAIL mpi_singleton_probe (with bundle-env.sh)"; rc=1; }
fi
[ -n "$CUDA_LIBS" ] && export LD_LIBRARY_PATH=$CUDA_LIBS && echo "selftest: CUDA libraries from the build machine for effnet: $CUDA_LIBS"
out=$(timeout 60 $B/bin/effnet --help 2>&1) || { echo "selftest: FAIL effnet --help does not run: $out"; rc=1; }
out=$(OMP_NUM_THREADS=1 timeout 120 $B/bin/effnet bench --resolution 32 --batch 2 --steps 1 --warmup 0 --threads 1 --json 2>&1) &&
    echo "selftest: effnet bench (CPU, tiny): $out" || { echo "selftest: FAIL effnet bench (CPU, tiny): $out"; rc=1; }
[ $rc = 0 ] && echo "selftest: PASS"
exit $rc
EOF
    # The CUDA libraries stand in for the target's: bound in, used only for running effnet.
    local cdirs=() cl=
    for so in "${!CUDA_NEED[@]}"; do
        case "${CUDA_NEED[$so]}" in /*) ;; *) continue ;; esac
        d=$(dirname "$(readlink -f "${CUDA_NEED[$so]}")")
        case " ${cdirs[*]-} " in *" $d "*) ;; *) cdirs+=("$d") ;; esac
    done
    for i in ${cdirs[@]+"${!cdirs[@]}"}; do mkdir -p "$R/cuda/$i"; cl=${cl:+$cl:}/cuda/$i; done
    unshare -m --propagation private bash -c '
        R=$1 B=$2 CL=$3; shift 3
        mount --bind "$B" "$R/bundle" && mount -t proc proc "$R/proc" && mount --rbind /sys "$R/sys" &&
            mount --rbind /dev "$R/dev" || { echo "selftest: cannot set up the chroot mounts"; exit 1; }
        i=0; for d in "$@"; do mount --bind "$d" "$R/cuda/$i" || exit 1; i=$((i + 1)); done
        chroot "$R" /bin/env -i PATH=/bin HOME=/tmp CUDA_LIBS="$CL" /bin/bash /selftest.sh' _ "$R" "$OUT" "$cl" ${cdirs[@]+"${cdirs[@]}"}
    local rc=$?
    rm -rf --one-file-system "$R"
    return $rc
}
if [ "$SELFTEST" = 1 ]; then
    selftest || die "selftest failed"
fi
[ ${#WARNINGS[@]} -eq 0 ] || note "${#WARNINGS[@]} warning(s), listed in $OUT/BUNDLE_MANIFEST.txt"
exit 0
