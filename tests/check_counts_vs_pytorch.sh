#!/bin/sh
# Cross-check `effnet info --json` against the PyTorch reference module for
# B0-B7 (params, convs, blocks). Usage: check_counts_vs_pytorch.sh EFFNET PYTHON SRC
set -eu
effnet=$1 python=$2 src=$3
"$python" "$src/tests/reference/effnet_ref.py" --counts > counts_torch.jsonl
fail=0
for b in 0 1 2 3 4 5 6 7; do
  ours=$("$effnet" info --model efficientnet-b$b --json)
  "$python" - "$ours" "$b" <<'PY' || fail=1
import json, sys
ours = json.loads(sys.argv[1]); b = sys.argv[2]
ref = [json.loads(l) for l in open('counts_torch.jsonl') if json.loads(l)['model'] == f'efficientnet-b{b}'][0]
bad = [k for k in ('params', 'convs', 'blocks') if ours[k] != ref[k]]
print(f"efficientnet-b{b}: effnet {[ours[k] for k in ('params','convs','blocks')]} pytorch {[ref[k] for k in ('params','convs','blocks')]}" + (" MISMATCH " + str(bad) if bad else ""))
sys.exit(1 if bad else 0)
PY
done
exit $fail
