#!/usr/bin/env bash
# Install effnet-hpc's build and test dependencies from Debian/Ubuntu packages.
# Runs apt-get as root (directly, or through sudo when available).
set -euo pipefail
pkgs=(build-essential cmake pkg-config
      libopenblas-dev libopenblas-openmp-dev libssl-dev libiniparser-dev libhdf5-dev hdf5-tools libopenmpi-dev openmpi-bin
      python3 python3-numpy python3-h5py python3-torch python3-torchvision python3-pil python3-matplotlib
      slurm-wlm munge libpmix-dev patchelf)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
