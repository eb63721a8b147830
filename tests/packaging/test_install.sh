#!/usr/bin/env bash
# cmake --install into a temporary prefix, then use it as a site would: from
# the Lmod module alone, in a clean shell (env -i), no LD_LIBRARY_PATH, outside
# the source tree. Checks: the layout, effnet --version, a 5-step bench, a
# config found by name from share/effnet/configs, the installed batch script
# finding the installed binary.
#   test_install.sh BUILD_DIR
set -uo pipefail
build=$1
fail() { echo "FAIL: $*"; exit 1; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" > "$work/install.log" 2>&1 || { cat "$work/install.log"; fail "cmake --install"; }
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
for f in bin/effnet bin/cifar10-to-h5 bin/effnet-torch share/effnet/python/effnet_ref.py share/effnet/configs/efficientnet-b0.ini share/effnet/configs/cpu-b0-32.ini share/effnet/slurm/trace_merge.py \
         share/effnet/slurm/train-cpu.sbatch share/effnet/docs/training.md "share/modulefiles/effnet/$version.lua"; do
    [ -e "$prefix/$f" ] || fail "not installed: $f"
done
echo "installed: $(cd "$prefix" && find . -type f | wc -l) files, $(du -sh "$prefix" | cut -f1)"
ldd "$prefix/bin/effnet" | grep -q "not found" && fail "installed effnet has unresolved libraries: $(ldd "$prefix/bin/effnet" | grep 'not found')"

[ -r /usr/share/lmod/lmod/init/bash ] || fail "Lmod not installed (apt-get install lmod; bash .ci/install-deps.sh test)"
cat > "$work/use.sh" <<EOS
set -e
source /usr/share/lmod/lmod/init/bash
module use "$prefix/share/modulefiles"
module load effnet
cd "$work"
echo "EFFNET_HOME=\$EFFNET_HOME"
command -v effnet
effnet --version
effnet bench --steps 5 --warmup 1 --batch 8 --threads 1 --json
effnet train --config efficientnet-b0 --set train.max_steps=1 2>&1 | grep "effnet: error" || true
# the installed batch script, as if inside a job, in a directory without a build:
# it must find the module's effnet, then stop at the (absolute, missing) config
SLURM_JOB_ID=1 EFFNET_ROOT="$work" bash "$prefix/share/effnet/slurm/train-cpu.sbatch" /nonexistent.ini 2>&1 || true
EOS
out=$(env -i HOME="$work" PATH=/usr/bin:/bin bash --noprofile --norc "$work/use.sh" 2>&1) || { echo "$out"; fail "using the module"; }
echo "$out"
grep -q "^EFFNET_HOME=$prefix$" <<<"$out" || fail "module did not set EFFNET_HOME"
grep -q "^$prefix/bin/effnet$" <<<"$out" || fail "effnet on PATH is not the installed one"
grep -q "^effnet $version (commit " <<<"$out" || fail "effnet --version"
grep -q '"img_per_s"' <<<"$out" || fail "5-step bench printed no JSON result"
# efficientnet-b0 by name: found in share/effnet/configs, whose data.dir is data/cifar10-h5
grep -q "cannot open shard index 'data/cifar10-h5/index.txt'" <<<"$out" \
    || fail "config by name was not found and read from share/effnet/configs"

grep -q "no effnet binary" <<<"$out" && fail "the installed batch script did not find the installed effnet"
grep -q "config /nonexistent.ini not found" <<<"$out" || fail "the installed batch script did not get past the binary lookup"
echo "PASS: cmake --install, Lmod module in a clean shell: --version, 5-step bench, config by name"
