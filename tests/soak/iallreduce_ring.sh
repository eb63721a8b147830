#!/usr/bin/env bash
# Is libnbc's ring for MPI_Iallreduce still in force now that effnet selects
# it through MPI_T (issue 23), and does it keep the measured gain? Two
# namespace nodes on links shaped to 1 Gbit/s (slurm/local-cluster.sh), B0 at
# 32x32, one gradient all-reduce per step (comm.overlap = 0, optim.shard =
# off), RUNS runs of STEPS steps each way, alternating:
#   default   effnet's own choice: the log says "libnbc ring (... set by effnet
#             through MPI_T)"
#   binomial  OMPI_MCA_coll_libnbc_iallreduce_algorithm=2 exported: the user's
#             choice wins, libnbc's binomial tree (its default rule for an
#             in-place all-reduce)
# and prints the all-reduce ms per step of each run (the timing summary) and
# the median ratio. docs/scaling.md measured 498 ms (binomial) against 271 ms
# (ring) on 2 nodes before the change.
#   bash tests/soak/iallreduce_ring.sh BUILD_DIR DATA_DIR [RUNS] [STEPS]
set -uo pipefail
build=$(cd "$1" && pwd) data=$(cd "$2" && pwd) runs=${3:-3} steps=${4:-12}
src=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/effnet-ring.XXXXXX")
trap 'bash "$src/slurm/local-cluster.sh" stop "$work/cl" > /dev/null 2>&1; rm -rf "$work"' EXIT
bash "$src/slurm/local-cluster.sh" start "$work/cl" --nodes 2 --cpus 2 --link-gbit 1 --share "$work" --share "$build" \
    --share "$data" > "$work/start.log" 2>&1 || { cat "$work/start.log"; exit 1; }
export SLURM_CONF=$work/cl/slurm.conf
run() { # run NAME [ENV...]: one 2-node run; prints the all-reduce ms per step
    local name=$1
    shift
    env "$@" srun -N 2 --ntasks-per-node 1 --mpi=pmix "$build/effnet" train --config "$src/configs/cpu-b0-32.ini" \
        --set data.dir="$data" --set train.batch=32 --set train.threads=1 --set train.max_steps="$steps" \
        --set comm.overlap=0 --set optim.shard=off --set data.test_subset=64 --set output.log_interval=100 \
        --set output.dir="$work/$name" > "$work/$name.log" 2>&1 || { cat "$work/$name.log" >&2; return 1; }
    grep -o "mpi: MPI_Iallreduce algorithm: .*" "$work/$name.log" >&2
    sed -n 's/.*+ all-reduce \([0-9.]*\) +.*/\1/p' "$work/$name.log"
}
: > "$work/results"
for i in $(seq 1 "$runs"); do
    d=$(run "default-$i") || exit 1
    b=$(run "binomial-$i" OMPI_MCA_coll_libnbc_iallreduce_algorithm=2) || exit 1
    echo "run $i: all-reduce per step: default (ring via MPI_T) $d ms, binomial (user's setting) $b ms"
    echo "$d $b" >> "$work/results"
done
python3 - "$work/results" <<'PY'
import statistics, sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1])]
d, b = statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
print(f"median all-reduce per step: ring (effnet's MPI_T choice) {d:.1f} ms, binomial {b:.1f} ms: {b / d:.2f}x")
PY
