#!/bin/sh
# Cross-check `effnet info --json` against PyTorch for B0-B7 (params, convs,
# blocks): the seed variant against the reference module (10 classes), the
# torchvision variant against torchvision.models.efficientnet_bN itself at
# 1000 and 10 classes. Usage: check_counts_vs_pytorch.sh EFFNET PYTHON SRC
set -eu
effnet=$1 python=$2 src=$3
"$python" "$src/tests/reference/effnet_ref.py" --counts > counts_torch.jsonl
# torchvision's own modules; their initialisation is skipped (counting needs
# the shapes only, and B7's kaiming_normal_ over 66 M weights takes seconds)
"$python" - > counts_torchvision.jsonl <<'PY'
import json
import torch.nn as nn
import torchvision
for f in ('kaiming_normal_', 'uniform_', 'zeros_', 'ones_'):
    setattr(nn.init, f, lambda t, *a, **k: t)
for b in range(8):
    for k in (1000, 10):
        m = getattr(torchvision.models, f'efficientnet_b{b}')(num_classes=k)
        print(json.dumps({'model': f'efficientnet-b{b}', 'classes': k, 'params': sum(p.numel() for p in m.parameters()),
                          'convs': sum(isinstance(x, nn.Conv2d) for x in m.modules()),
                          'blocks': sum(len(m.features[i]) for i in range(1, 8)),
                          'torchvision': torchvision.__version__}))
PY
fail=0
compare() { # compare VARIANT B CLASSES JSONL
  ours=$("$effnet" info --model efficientnet-b$2 --variant "$1" --classes "$3" --json)
  "$python" - "$ours" "$2" "$3" "$4" "$1" <<'PY' || fail=1
import json, sys
ours = json.loads(sys.argv[1]); b, k, path, variant = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
ref = [r for r in map(json.loads, open(path)) if r['model'] == f'efficientnet-b{b}' and r.get('classes', 10) == k][0]
bad = [x for x in ('params', 'convs', 'blocks') if ours[x] != ref[x]]
who = f"torchvision {ref['torchvision']}" if variant == 'torchvision' else 'pytorch'
print(f"efficientnet-b{b} ({variant}, {k} classes): effnet {[ours[x] for x in ('params','convs','blocks')]} "
      f"{who} {[ref[x] for x in ('params','convs','blocks')]}" + (" MISMATCH " + str(bad) if bad else ""))
sys.exit(1 if bad else 0)
PY
}
for b in 0 1 2 3 4 5 6 7; do
  compare seed $b 10 counts_torch.jsonl
  compare torchvision $b 1000 counts_torchvision.jsonl
  compare torchvision $b 10 counts_torchvision.jsonl
done
exit $fail
