#!/usr/bin/env bash
# Install effnet-hpc's dependencies from Debian/Ubuntu packages.
#
#   bash .ci/install-deps.sh runtime   what building and running effnet needs
#                                      (the README's main job installs this only)
#   bash .ci/install-deps.sh test      runtime + what the test suite needs
#                                      (PyTorch references, Slurm, Lmod, ...)
#
# No argument means test. Runs apt-get as root (directly, or through sudo).
set -euo pipefail
set_name=${1:-test}
# build toolchain, MPI, HDF5, BLAS, oneDNN (the CPU convolutions' GEMM,
# src/ops/gemm.c), iniparser, OpenSSL (libcrypto: SHA-256 of data files),
# cJSON (--json output, metrics.jsonl); curl and ca-certificates
# for data_tools/fetch_cifar10.sh; libjpeg-turbo (libjpeg-dev pulls
# libjpeg62-turbo-dev on Debian, libjpeg-turbo8-dev on Ubuntu), libpng and
# libexif for data_tools/images-to-h5
runtime=(build-essential cmake pkg-config
         libopenblas-dev libopenblas-openmp-dev libssl-dev libiniparser-dev libcjson-dev libhdf5-dev libopenmpi-dev
         libdnnl-dev openmpi-bin curl ca-certificates libjpeg-dev libpng-dev libexif-dev)
# PyTorch/torchvision/h5py references and plots, HDF5 command-line tools,
# a local Slurm (slurmctld/slurmd + munge, PMIx), patchelf for the GPU
# bundle, Lmod for the module test, ctags (tests/check_structure.py), strace (the
# checkpoint-interrupt tests), gdb and file (backtraces of cores in the multi-node tests)
testset=(hdf5-tools python3 python3-numpy python3-h5py python3-torch python3-torchvision python3-pil python3-matplotlib
         slurm-wlm munge libpmix-dev patchelf lmod universal-ctags strace gdb file)
case "$set_name" in
  runtime) pkgs=("${runtime[@]}") ;;
  test) pkgs=("${runtime[@]}" "${testset[@]}") ;;
  *) echo "install-deps: unknown set '$set_name' (use runtime or test)" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages of the $set_name set present"
  exit 0
fi
echo "install-deps ($set_name set): installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
