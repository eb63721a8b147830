#!/usr/bin/env bash
# Does the loader keep up with real images (issue 26)? B0 at 224x224, 2 ranks
# under mpirun, torchvision's ImageNet pipeline (RandomResizedCrop + flip) on
# ragged JPEG shards of photo-sized images (300-500 x 250-400 px, generated),
# one augmentation thread per rank beside the prefetch thread. Prints the
# timing summary's data wait (time a step waited for its batch, outside the
# step) against the step time. Not a ctest (minutes of B0 at 224).
#   bash tests/data/bench_images_loader.sh BUILD_DIR [STEPS] [BATCH]
set -euo pipefail
build=$(cd "$1" && pwd) steps=${2:-10} batch=${3:-8}
src=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/effnet-imgload.XXXXXX")
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 - "$work/photos" <<'PY'
import os, sys
import numpy as np
from PIL import Image
rng = np.random.default_rng(1)
for c in range(4):
    d = os.path.join(sys.argv[1], f"class{c}")
    os.makedirs(d)
    for i in range(64):
        w, h = int(rng.integers(300, 501)), int(rng.integers(250, 401))
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([(xx * (c + 1)) % 256, (yy * 2) % 256, (xx + yy) % 256], -1) + rng.normal(0, 25, (h, w, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(os.path.join(d, f"{i:03d}.jpg"), quality=90)
PY
"$build/data_tools/images-to-h5" --input "$work/photos" --output "$work/h5" --shards 2 --val-fraction 0.125 --quiet
echo "bench: $(nproc) CPUs ($(lscpu | sed -n 's/^Model name: *//p')), B0 224, 2 ranks x batch $batch, $steps steps"
mpirun --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -np 2 "$build/effnet" train \
    --config "$src/configs/cpu-b0-32.ini" --set data.dir="$work/h5" --set model.resolution=224 --set model.classes=0 \
    --set train.batch="$batch" --set train.threads=1 --set data.loader_threads=1 --set train.max_steps="$steps" \
    --set output.log_interval=1 --set output.dir="$work/run" > "$work/run.log" 2>&1 || { cat "$work/run.log"; exit 1; }
grep -E "^data: pipeline|^timing:" "$work/run.log"
/usr/bin/python3 - "$work/run/metrics.jsonl" <<'PY'
import json, sys
s = [json.loads(l) for l in open(sys.argv[1]) if '"summary"' in l][-1]
print(f"data wait {s['data_wait_ms']:.1f} ms per step against a {s['step_ms']:.1f} ms step: "
      f"{100 * s['data_wait_ms'] / s['step_ms']:.2f}% (issue 26 asks < 2%)")
PY
