#!/usr/bin/env bash
# Does transfer work (issue 25)? ImageNet weights cannot be downloaded here,
# so: pretrain torchvision's B0 from scratch on CIFAR-10 classes 0-4, then
# train on 10% of the training images of classes 5-9 (2,500 images, relabelled
# 0-4) twice per seed: from those pretrained weights (train.init_from) and
# from scratch. Same recipe, epochs and seeds in both arms; the only
# difference is init_from. Prints one table (final and best test accuracy on
# the 5,000 test images of classes 5-9, mean and spread over the seeds).
# Not a ctest: about an hour on a 2-core machine with the defaults.
#   bash tests/bench/transfer_study.sh BUILD_DIR H5_DIR OUT_DIR [SEEDS] [PRE_EPOCHS] [FT_EPOCHS]
set -euo pipefail
build=$(cd "$1" && pwd) data=$(cd "$2" && pwd) out=$3
seeds=${4:-"1 2 3"} pre_epochs=${5:-12} ft_epochs=${6:-20}
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

# One run: 2 ranks x 32 images, torchvision variant at 32x32, the seed's
# Adam 1e-3 and augmentation, cosine schedule to 0. Extra --set args follow.
train() {
    local dir=$1; shift
    [ -f "$dir/done" ] && { echo "transfer: $dir done already, kept"; return; }
    mpirun --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -np 2 "$build/effnet" train \
        --config "$src/configs/cpu-b0-32.ini" --set data.dir="$data" --set model.variant=torchvision \
        --set schedule.name=cosine --set train.threads=1 --set output.log_interval=200 \
        --set output.dir="$dir" "$@" > "$dir.log" 2>&1 || { tail -n 30 "$dir.log"; exit 1; }
    touch "$dir/done"
}

echo "transfer: $(date -u +%FT%TZ), $(nproc) CPUs, $("$build/effnet" --version | head -n 1)"
echo "transfer: pretrain on classes 0-4 (25,000 images), $pre_epochs epochs, seed 1"
train "$out/pretrain" --set data.classes=0,1,2,3,4 --set train.epochs="$pre_epochs" --set train.seed=1
for s in $seeds; do
    for arm in finetune scratch; do
        init=()
        [ "$arm" = finetune ] && init=(--set train.init_from="$out/pretrain/last.h5")
        echo "transfer: $arm, seed $s: classes 5-9, first 2,500 training images, $ft_epochs epochs"
        train "$out/$arm-s$s" --set data.classes=5,6,7,8,9 --set data.train_subset=2500 \
            --set train.epochs="$ft_epochs" --set train.seed="$s" "${init[@]}"
    done
done

/usr/bin/python3 - "$out" "$seeds" <<'PY'
import json, statistics as st, sys
out, seeds = sys.argv[1], sys.argv[2].split()
def evals(d):
    return [r["accuracy"] for r in map(json.loads, open(f"{out}/{d}/metrics.jsonl")) if r.get("type") == "eval"]
pre = evals("pretrain")
print(f"\npretrain (classes 0-4): final test accuracy {pre[-1]:.2f}% after {len(pre)} epochs")
print("\n| arm | seeds | final accuracy, mean ± sd | best epoch, mean ± sd | per seed (final) |")
print("|---|---|---|---|---|")
summary = {}
for arm in ("finetune", "scratch"):
    runs = [evals(f"{arm}-s{s}") for s in seeds]
    fin, best = [r[-1] for r in runs], [max(r) for r in runs]
    sd = lambda x: st.stdev(x) if len(x) > 1 else 0.0
    print(f"| {arm} | {len(runs)} | {st.mean(fin):.2f} ± {sd(fin):.2f} | {st.mean(best):.2f} ± {sd(best):.2f} | "
          + ", ".join(f"{v:.2f}" for v in fin) + " |")
    summary[arm] = {"final": fin, "best": best, "curves": runs}
summary["pretrain"] = pre
json.dump(summary, open(f"{out}/summary.json", "w"), indent=1)
print(f"\ncurves: {out}/summary.json")
PY
