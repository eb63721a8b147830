#!/usr/bin/env bash
# The full test suite: install dependencies, build (Release), prepare the
# CIFAR-10 copy when ../shared/data is present, run every ctest test, then
# the sanitizer pass (ASan + UBSan build in build-sanitize/, a subset of the
# tests: tests/run_sanitized.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash .ci/install-deps.sh test
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
if [ -z "${CIFAR10_DIR:-}" ] && [ -x ../shared/data/prepare_cifar10.sh ]; then
  CIFAR10_DIR=$(../shared/data/prepare_cifar10.sh "${TMPDIR:-/tmp}/cifar-10-batches-bin")
  export CIFAR10_DIR
fi
echo "CIFAR10_DIR=${CIFAR10_DIR:-<unset: real-data tests will skip>}"
ctest --test-dir build --output-on-failure -j1
bash tests/run_sanitized.sh build-sanitize
