#!/usr/bin/env bash
# Compare training throughput of effnet and the PyTorch seed model.
#   tests/bench/compare.sh MODEL RES BATCH THREADS [STEPS]
# EFFNET (default build/effnet) must support: bench ... --json, printing an
# object with at least img_per_s and peak_rss_mb.
set -euo pipefail

if [ $# -lt 4 ]; then
    echo "usage: $0 MODEL RES BATCH THREADS [STEPS]" >&2
    exit 2
fi
MODEL=$1 RES=$2 BATCH=$3 THREADS=$4 STEPS=${5:-20}
EFFNET=${EFFNET:-build/effnet}
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)

# Pull the two numbers out of the last JSON line a tool printed.
field() {
    $PY -c 'import json,sys
d = json.loads(sys.stdin.read().strip().splitlines()[-1])
print(d["img_per_s"], d["peak_rss_mb"])'
}

# Same thread count for both; OMP_NUM_THREADS also caps PyTorch's intra-op pool.
export OMP_NUM_THREADS=$THREADS
# Capture first so a failing command stops the script (set -e) with its error.
E_OUT=$("$EFFNET" bench --model "$MODEL" --resolution "$RES" --batch "$BATCH" \
    --threads "$THREADS" --steps "$STEPS" --json)
P_OUT=$($PY "$HERE/bench_pytorch.py" --model "$MODEL" --resolution "$RES" \
    --batch "$BATCH" --threads "$THREADS" --steps "$STEPS" --json)
read -r E_IPS E_RSS <<<"$(field <<<"$E_OUT")"
read -r P_IPS P_RSS <<<"$(field <<<"$P_OUT")"

printf '%-8s %-16s %5s %6s %8s %10s %12s\n' framework model res batch threads img/s peak_rss_MiB
printf '%-8s %-16s %5s %6s %8s %10.2f %12.1f\n' effnet "$MODEL" "$RES" "$BATCH" "$THREADS" "$E_IPS" "$E_RSS"
printf '%-8s %-16s %5s %6s %8s %10.2f %12.1f\n' pytorch "$MODEL" "$RES" "$BATCH" "$THREADS" "$P_IPS" "$P_RSS"
$PY -c "print('ratio effnet/pytorch = %.2f' % ($E_IPS / $P_IPS))"
