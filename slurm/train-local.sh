#!/usr/bin/env bash
# The main job on one machine without Slurm: install dependencies, build, get
# CIFAR-10, convert it to HDF5 shards, and train with local mpirun.
#
#   bash slurm/train-local.sh [CONFIG] [--set key=value ...]
#
# CONFIG defaults to configs/cpu-b0-32.ini (B0 at 32x32, 3 epochs, 2 ranks).
# CIFAR-10 comes from $CIFAR10_DIR (official binary layout) if set, else from
# ../shared/data/prepare_cifar10.sh if present, else it is downloaded
# (data_tools/fetch_cifar10.sh; offline, that prints how to supply it by hand).
# NP (default 2) sets the number of ranks.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
config=${1:-configs/cpu-b0-32.ini}
[ $# -gt 0 ] && shift
np=${NP:-2}

bash .ci/install-deps.sh runtime
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > build.log 2>&1 || { cat build.log; exit 1; }
cmake --build build -j"$(nproc)" >> build.log 2>&1 || { tail -50 build.log; exit 1; }
echo "train-local: built effnet (log in build.log)"

if [ -z "${CIFAR10_DIR:-}" ]; then
  if [ -x ../shared/data/prepare_cifar10.sh ]; then
    CIFAR10_DIR=$(../shared/data/prepare_cifar10.sh "$root/data/cifar-10-batches-bin")
  else
    bash data_tools/fetch_cifar10.sh "$root/data/cifar-10-batches-bin"
    CIFAR10_DIR=$root/data/cifar-10-batches-bin
  fi
fi
echo "train-local: CIFAR-10 binary files in $CIFAR10_DIR"
if [ ! -f data/cifar10-h5/index.txt ]; then
  build/data_tools/cifar10-to-h5 --input "$CIFAR10_DIR" --output data/cifar10-h5 --shards 4
fi

mpi=(mpirun -np "$np" --bind-to none)
[ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
[ "$np" -gt "$(nproc)" ] && mpi+=(--oversubscribe)
echo "train-local: ${mpi[*]} build/effnet train --config $config $*"
exec "${mpi[@]}" build/effnet train --config "$config" "$@"
