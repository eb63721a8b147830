#!/usr/bin/env bash
# Throughput of images-to-h5 against PIL on the CIFAR-10 JPEG tree (60,000
# files of ../shared/data/cifar10-jpeg.tar.gz), side by side in one command
# (docs/PERFORMANCE.md, "images-to-h5").
#
#   tests/data/bench_images_to_h5.sh BUILD_DIR [REPEATS]
#
# The tree and the outputs live in /dev/shm (tmpfs), so disk speed is out of
# both measurements; every run reads the files from memory. The variants run
# interleaved, REPEATS (default 5) times, so that a burst of load from other
# processes hits them alike; each figure is the best run. images/s and MB/s
# count input files and their bytes.
set -euo pipefail
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
build=${1:?usage: bench_images_to_h5.sh BUILD_DIR [REPEATS]}
reps=${2:-5}
here=$(cd "$(dirname "$0")" && pwd)
conv=$build/data_tools/images-to-h5
archive=$here/../../../shared/data/cifar10-jpeg.tar.gz
[ -f "$archive" ] || { echo "bench: $archive not found" >&2; exit 1; }
work=$(mktemp -d /dev/shm/imgbench.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/tree"
tar -xzf "$archive" -C "$work/tree"
files=$(find "$work/tree" -type f | wc -l)
bytes=$(find "$work/tree" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
echo "tree: $files files, $bytes bytes; $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"

# PIL: what a Python loader does per file, one process
cat > "$work/pil.py" <<'PY'
import os, sys, time
import numpy as np
from PIL import Image
root = sys.argv[1]
paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)
t0, c0 = time.perf_counter(), time.process_time()
for p in paths:
    a = np.asarray(Image.open(p).convert("RGB"))
print(time.perf_counter() - t0, time.process_time() - c0)
PY
conv_time() { # THREADS [--size S]: wall and CPU (user + sys) seconds of one whole conversion
  rm -rf "$work/out"
  local t=$1
  shift
  /usr/bin/time -f "%e %U %S" -o "$work/time" "$conv" --input "$work/tree" --output "$work/out" --shards 4 --threads "$t" --quiet "$@"
  awk '{print $1, $2 + $3}' "$work/time"
}
for r in $(seq "$reps"); do
  /usr/bin/python3 "$work/pil.py" "$work/tree" >> "$work/pil"
  conv_time 1 >> "$work/t1"
  conv_time 2 >> "$work/t2"
  conv_time 1 --size 32 >> "$work/s1"
  conv_time 2 --size 32 >> "$work/s2"
done
best() { sort -g "$1" | head -1 | cut -d' ' -f1; }          # lowest wall time
cpu() { sort -k2,2g "$1" | head -1 | cut -d' ' -f2; }        # lowest CPU time
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg); best of $reps interleaved runs"
printf "%-38s %7s %9s %7s %7s | %7s %8s\n" "what" "wall s" "images/s" "MB/s" "vs PIL" "CPU s" "CPU us/img"
pil=$(best "$work/pil")
row() { awk -v n="$files" -v b="$bytes" -v s="$(best "$2")" -v c="$(cpu "$2")" -v p="$pil" -v w="$1" \
  'BEGIN {printf "%-38s %7.2f %9.0f %7.1f %6.2fx | %7.2f %8.1f\n", w, s, n / s, b / s / 1e6, p / s, c, 1e6 * c / n}'; }
row "PIL open+convert+asarray (1 process)" "$work/pil"
row "images-to-h5 --threads 1 (ragged)" "$work/t1"
row "images-to-h5 --threads 2 (ragged)" "$work/t2"
row "images-to-h5 --threads 1 --size 32" "$work/s1"
row "images-to-h5 --threads 2 --size 32" "$work/s2"
