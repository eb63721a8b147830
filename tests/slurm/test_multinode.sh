#!/usr/bin/env bash
# The batch scripts on a two-node Slurm cluster: slurm/local-cluster.sh start
# --nodes 2 puts two slurmd (n1, n2) in their own network, UTS and mount
# namespaces on a private bridge, so Slurm, PMIx and Open MPI really talk
# between two hosts over TCP (issue 11). Each case starts its own cluster in a
# temporary directory and stops it (trap EXIT: jobs, daemons by PID, then the
# namespaces, veths and bridge by name), pass or fail.
#   test_multinode.sh CASE BUILD_DIR SRC_DIR PYTHON
# CASE:
#   scripts  static: syntax and shellcheck of this script (no cluster)
#   bed      the test bed itself: hostnames, addresses, no route off the
#            bridge, node-local /tmp, shared work directory, tbf shaping,
#            srun -N2; a start that fails half-way, and stop run twice,
#            leave no daemon, namespace or link behind
#   train    sbatch -N 2 --ntasks-per-node 1 slurm/train-cpu.sbatch: B0 at
#            32x32 on real CIFAR-10 shards (a 6400-image subset, 2 epochs,
#            200 steps), rank 0 on n1 and rank 1 on n2; `effnet eval` of
#            last.h5 reproduces the run's last "Test set:" line; the
#            checkpoint's root attribute `hosts` is "n1,n2". Skips (77)
#            without CIFAR10_DIR.
#   preempt  scancel --signal=USR1 --batch: the ranks on n1 and n2 both
#            checkpoint and exit 75, the job requeues and resumes, and its
#            final /model and /optimizer are bit-identical to those of the
#            same job run without interruption (submitted alongside)
#   mpirun   EFFNET_LAUNCHER=mpirun: Open MPI's mpirun inside the 2-node
#            allocation (its daemon on n2 started through srun), 4 steps
#   nodedeath n2's cable goes down for good mid-run: the stall watchdog names
#            rank 1 on n2 and the job ends within comm.timeout_s plus a
#            margin; a resubmission on n1 alone resumes from the last
#            checkpoint on 1 rank with the same global batch, and finishes
#   flap     n2's cable (its veth on the bridge) goes down for 5 s while the
#            job all-reduces every step, then up: the job finishes, or fails
#            with a message; it must not hang
#   benchcomm slurm/comm_study.sh on 2 nodes with links shaped to 1 Gbit/s:
#            bench-comm through slurm/bench-comm.sbatch (srun --mpi=pmix),
#            rank 0 on n1 and rank 1 on n2, no wrong element, and the bus
#            bandwidth of large messages below the shaped rate (the traffic
#            crossed the link) but not absurdly below; comm_model.py fits it
# Needs root and namespaces (skips with 77 otherwise), Debian's slurmctld
# slurmd slurm-client munge, iproute2 and util-linux.
set -uo pipefail
case_=$1 build=$(cd "$2" && pwd) src=$(cd "$3" && pwd) py=$4
fail() { echo "FAIL: $*"; exit 1; }
pass() { echo "PASS: $*"; }
skip() { echo "SKIP: $*"; exit 77; }
t_start=$(date +%s)
lc=$src/slurm/local-cluster.sh

if [ "$case_" = scripts ]; then
    bash -n "$0" || fail "syntax error in $0"
    if command -v shellcheck > /dev/null; then
        shellcheck -S warning "$0" "$lc" || fail "shellcheck"
        echo "shellcheck: clean"
    else
        echo "shellcheck: not installed, skipped"
    fi
    pass "test_multinode.sh: syntax"
    exit 0
fi

# ---------------------------------------------------------------- cluster
[ "$(id -u)" -eq 0 ] || skip "the namespaced Slurm cluster needs root (slurmd, munged, network namespaces)"
for b in ip tc nsenter unshare; do
    command -v "$b" > /dev/null || skip "'$b' not found: the multi-node test bed needs iproute2 and util-linux"
done
unshare --net --uts --mount true 2> /dev/null || skip "cannot create network/UTS/mount namespaces here (unshare --net --uts --mount failed)"
ip netns list > /dev/null 2>&1 || skip "'ip netns' does not work here"
for b in munged slurmctld slurmd sbatch scontrol squeue sinfo scancel srun; do
    command -v "$b" > /dev/null || fail "'$b' not found: install slurmctld slurmd slurm-client munge (bash .ci/install-deps.sh)"
done
[ -x "$build/effnet" ] || fail "no $build/effnet"
if [ "$case_" = train ] && [ -z "${CIFAR10_DIR:-}" ]; then
    skip "CIFAR10_DIR is not set: the two-node training test needs the real CIFAR-10 (binary layout; tests/run_all.sh sets it)"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/effnet-mn-$case_.XXXXXX")
cluster=$work/cluster
# Evidence when a rank dies (issue 23): a core file instead of Open MPI's own
# SIGSEGV handler (which prints only the signal frame), in the job's working
# directory ($work, shared by the nodes) when the kernel's core_pattern is a
# plain file name; on failure every core gets a backtrace of all its threads,
# kept with the job logs in $evidence.
ulimit -c unlimited 2> /dev/null || true
export OMPI_MCA_opal_signal=${OMPI_MCA_opal_signal-}
evidence=${EFFNET_EVIDENCE_DIR:-/var/tmp/effnet-evidence}/$case_-$(date +%Y%m%d-%H%M%S)-$$
keep_evidence() {
    local c found=0
    while IFS= read -r c; do
        { ! command -v file > /dev/null || file "$c" | grep -q "core file"; } || continue
        mkdir -p "$evidence" && found=1
        local exe
        exe=$(file "$c" | sed -n "s/.*execfn: '\([^']*\)'.*/\1/p")
        [ -x "$exe" ] || exe=$build/effnet
        gdb -batch -ex 'info threads' -ex 'thread apply all bt 40' "$exe" "$c" > "$evidence/$(basename "$c").bt" 2>&1
        mv "$c" "$evidence/"
        echo "a rank dumped core: $evidence/$(basename "$c") (executable $exe); all threads' backtraces in $evidence/$(basename "$c").bt:"
        grep -A12 "^Thread 1 " "$evidence/$(basename "$c").bt" | head -n 14
    done < <(find "$work" -maxdepth 4 -name 'core*' -type f 2> /dev/null)
    if [ $found = 1 ] || [ -n "${EFFNET_KEEP_WORK:-}" ]; then
        mkdir -p "$evidence" && cp "$work"/*.out "$evidence/" 2> /dev/null
        echo "evidence kept in $evidence"
    elif grep -q '^|' /proc/sys/kernel/core_pattern 2> /dev/null; then
        echo "(no core file here: kernel.core_pattern pipes cores to $(cut -c2- /proc/sys/kernel/core_pattern | cut -d' ' -f1))"
    fi
}
cleanup() {
    local rc=$? stopped=0
    trap - EXIT INT TERM HUP
    trap '' PIPE
    [ $rc -ne 0 ] && keep_evidence
    if [ $rc -ne 0 ] && [ -d "$cluster/log" ]; then
        for f in "$cluster/log/slurmctld.log" "$cluster"/log/slurmd-n*.log; do
            [ -s "$f" ] && { echo "----- $f (last 25 lines)"; tail -n 25 "$f"; }
        done
    fi
    # local-cluster.sh stops only what it recorded in $cluster
    bash "$lc" stop "$cluster" && stopped=1
    if [ $stopped -eq 0 ]; then
        echo "could not stop the cluster: its PIDs and link names are in $cluster/{pids,net}, kept $work"
    elif [ $rc -ne 0 ] && [ -n "${EFFNET_KEEP_WORK:-}" ]; then
        echo "kept $work"
    else
        rm -rf "$work"
    fi
    echo "test time: $(( $(date +%s) - t_start )) s"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
trap 'exit 141' PIPE

field() { scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
show_job() {
    scontrol show job "$1" 2>/dev/null | sed 's/^/  /'
    local f
    for f in "$work"/*-"$1".out; do [ -f "$f" ] && { echo "----- $f"; cat "$f"; }; done
}
wait_for() { # wait_for SECONDS WHAT COMMAND...: poll every 0.2 s
    local secs=$1 what=$2 i
    shift 2
    for ((i = 0; i < secs * 5; i++)); do "$@" && return 0; sleep 0.2; done
    echo "timed out after $secs s waiting for $what"
    return 1
}
job_done() { case $(field "$1" JobState) in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED) return 0 ;; esac; return 1; }
check_finished() { # check_finished JOB RESTARTS SECONDS: COMPLETED, exit 0:0
    local jid=$1 st ec rs
    wait_for "$3" "job $jid to end" job_done "$jid" || { show_job "$jid"; fail "job $jid did not finish within $3 s"; }
    st=$(field "$jid" JobState) ec=$(field "$jid" ExitCode) rs=$(field "$jid" Restarts)
    [ "$st" = COMPLETED ] && [ "$ec" = 0:0 ] || { show_job "$jid"; fail "job $jid ended $st with exit $ec"; }
    [ "$rs" = "$2" ] || { show_job "$jid"; fail "job $jid restarted $rs times, want $2"; }
    echo "job $jid: $st, exit $ec, $rs restarts, nodes $(field "$jid" NodeList), start $(field "$jid" StartTime | cut -dT -f2), end $(field "$jid" EndTime | cut -dT -f2)"
}
since() { "$py" -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.2f}')" "$1"; } # seconds since date +%s.%N
step_of() { "$py" -c "import h5py, sys; print(int(h5py.File(sys.argv[1], 'r')['train'].attrs['global_step']))" "$1"; }
submit() { # submit NAME [SBATCH OPTIONS] -- [SCRIPT ARGS]: train-cpu.sbatch on 2 nodes x 1 task; prints the job ID
    local name=$1
    shift
    local opts=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    sbatch --parsable --job-name="$name" --time=10 --nodes=2 --ntasks-per-node=1 --cpus-per-task=1 \
        "${opts[@]}" "$src/slurm/train-cpu.sbatch" "$@" | cut -d';' -f1
}
# check_ranks JOB RESTART RC: each rank's wrapper record for that start: rank 0 on n1, rank 1 on n2, exit RC
check_ranks() {
    local jid=$1 restart=$2 want=$3 r f
    for r in 0 1; do
        f=$work/ranks/job-$jid-rank-$r-restart-$restart
        [ -f "$f" ] || fail "rank $r recorded nothing for start $((restart + 1))"
        grep -qx "host=n$((r + 1))" "$f" || { cat "$f"; fail "rank $r did not run on n$((r + 1))"; }
        grep -qx "exit=$want" "$f" || { cat "$f"; fail "rank $r (n$((r + 1))) did not exit $want"; }
    done
    echo "job $jid start $((restart + 1)): rank 0 on n1 and rank 1 on n2 both exited $want"
}

# The work directory (data, runs, job logs, the wrapper) is under /tmp, which
# is private on each node: --share binds it back in, and the build directory
# too if it is under /tmp (a path elsewhere is shared anyway).
start_cluster() {
    bash "$lc" start "$cluster" --nodes 2 --cpus 2 --share "$work" --share "$build" "$@" || fail "starting the 2-node cluster"
}

# tiny data, as tests/train: 5 x 64 train records, 64 test records
tiny_data() {
    "$py" "$src/tests/train/make_tiny_data.py" "$work/bin" 64 > /dev/null || fail "making tiny data"
    "$build/data_tools/cifar10-to-h5" --input "$work/bin" --output "$work/data" --shards 2 \
        --records-per-file 64 --quiet || fail "converting tiny data"
}

# effnet behind a wrapper that records each rank's host and exit code. It
# forwards USR1/TERM to effnet (whether or not slurmstepd signals effnet
# itself too: a second USR1 only sets the same flag). FIRST_RUN_SLEEP_MS slows
# only the job's first run (debug.sleep_ms).
mkdir -p "$work/ranks"
cat > "$work/effnet" <<EOF
#!/bin/bash
f="$work/ranks/job-\${SLURM_JOB_ID:-x}-rank-\${PMIX_RANK:-\${OMPI_COMM_WORLD_RANK:-x}}-restart-\${SLURM_RESTART_COUNT:-0}"
echo "host=\$(hostname)" > "\$f"
extra=()
[ -n "\${FIRST_RUN_SLEEP_MS:-}" ] && [ "\${SLURM_RESTART_COUNT:-0}" = 0 ] && extra=(--set debug.sleep_ms=\$FIRST_RUN_SLEEP_MS)
"$build/effnet" "\$1" "\${extra[@]}" "\${@:2}" &
child=\$!
trap 'kill -USR1 \$child 2>/dev/null' USR1
trap 'kill -TERM \$child 2>/dev/null' TERM
while :; do
    wait \$child; rc=\$?
    kill -0 \$child 2>/dev/null || break
done
echo "exit=\$rc" >> "\$f"
exit \$rc
EOF
chmod +x "$work/effnet"
export EFFNET_ROOT=$src EFFNET_BIN=$work/effnet EFFNET_RUNS=$work/runs
cd "$work" || fail "cd $work"

case $case_ in
bed)
    # A start that fails after the network is made (slurmd cannot load its task
    # plugin) must take everything down again by itself.
    out=$(LOCAL_CLUSTER_TASK_PLUGIN=task/no_such_plugin bash "$lc" start "$work/bad" --nodes 2 --share "$work" 2>&1) \
        && fail "a start with a broken slurm.conf succeeded"
    prefix=$(grep -o 'deleted namespace emn[0-9a-f]*-n1' <<<"$out" | sed 's/^deleted namespace //; s/-n1$//')
    [ -n "$prefix" ] || { echo "$out"; fail "the failed start did not delete its namespaces"; }
    ! ip netns list | grep -q "^$prefix" || fail "namespaces of the failed start ($prefix-*) are left"
    ! ip -o link show | grep -q ": $prefix" || fail "links of the failed start ($prefix*) are left"
    ! pgrep -f "$work/bad/slurm.conf" > /dev/null || fail "daemons of the failed start are left"
    bash "$lc" stop "$work/bad" > /dev/null || fail "stop after a failed start"
    echo "a failed start ($prefix) cleaned up after itself; stop after it is a no-op"

    start_cluster --link-gbit 2
    export SLURM_CONF=$cluster/slurm.conf
    prefix=$(cat "$cluster/net/prefix") subnet=$(cat "$cluster/net/subnet") br=$(cat "$cluster/net/bridge")
    [ "$(sinfo -h -N -o '%N %T' | sort | tr '\n' ' ')" = "n1 idle n2 idle " ] || { sinfo -N; fail "sinfo: nodes n1 n2 not idle"; }
    ip -4 -o addr show dev "$br" | grep -q " inet $subnet.254/24 " || fail "bridge $br has no $subnet.254/24"
    grep -qx "SlurmctldHost=$(hostname -s)($subnet.254)" "$cluster/slurm.conf" || fail "SlurmctldHost is not this host's name with the bridge address"
    for k in 1 2; do
        n=n$k
        [ "$(bash "$lc" exec "$cluster" $n hostname)" = $n ] || fail "$n: hostname is not $n"
        routes=$(bash "$lc" exec "$cluster" $n ip -4 route show)
        [ "$routes" = "$subnet.0/24 dev eth0 proto kernel scope link src $subnet.$k " ] \
            || { echo "$routes"; fail "$n: routes other than the bridge's /24"; }
        # a route lookup only, nothing is sent
        ! bash "$lc" exec "$cluster" $n ip route get 192.0.2.1 > /dev/null 2>&1 || fail "$n can route off the bridge"
        tc qdisc show dev "${prefix}h$k" | grep -q "tbf .*rate 2Gbit" || fail "${prefix}h$k is not shaped to 2 Gbit/s"
        bash "$lc" exec "$cluster" $n tc qdisc show dev eth0 | grep -q "tbf .*rate 2Gbit" || fail "$n eth0 is not shaped"
    done
    bash "$lc" exec "$cluster" n1 sh -c "echo n1 > /tmp/node-local && echo shared > $work/shared-file" || fail "writing on n1"
    bash "$lc" exec "$cluster" n2 test ! -e /tmp/node-local || fail "n1's /tmp is visible on n2"
    [ ! -e /tmp/node-local ] || fail "n1's /tmp is the host's /tmp"
    [ "$(bash "$lc" exec "$cluster" n2 cat "$work/shared-file")" = shared ] || fail "the work directory is not shared with n2"
    out=$(timeout 60 srun -N 2 --ntasks-per-node 1 bash -c 'echo "$SLURM_PROCID $(hostname) $(ip -4 -o addr show dev eth0 | awk "{print \$4}")"' | sort)
    [ "$out" = "0 n1 $subnet.1/24"$'\n'"1 n2 $subnet.2/24" ] || { echo "$out"; fail "srun -N 2: tasks not on n1 and n2 with their addresses"; }
    # stop, twice: nothing of ours is left
    pids=$(cat "$cluster"/pids/*.pid | tr '\n' ' ')
    bash "$lc" stop "$cluster" > /dev/null || fail "stop"
    bash "$lc" stop "$cluster" > /dev/null || fail "second stop"
    for p in $pids; do ! kill -0 "$p" 2> /dev/null || fail "daemon $p still running after stop"; done
    ! ip netns list | grep -q "^$prefix" || fail "namespaces $prefix-* left after stop"
    ! ip -o link show | grep -q ": $prefix" || fail "links $prefix* left after stop"
    pass "2-node test bed: n1/n2 on $br ($subnet.0/24) with no other route, node-local /tmp, shared work dir, tbf 2 Gbit/s, srun -N 2; stop (twice) and a failed start leave nothing" ;;
train)
    start_cluster
    export SLURM_CONF=$cluster/slurm.conf
    "$build/data_tools/cifar10-to-h5" --input "$CIFAR10_DIR" --output "$work/data" --shards 2 --quiet \
        || fail "converting $CIFAR10_DIR"
    # 6400 images / global batch 64 = 100 steps per epoch, 2 epochs; 1000 test images
    jid=$(submit effnet-mn -- --set data.dir="$work/data" --set data.train_subset=6400 --set train.epochs=2 \
          --set data.test_subset=1000 --set output.log_interval=20) || fail "sbatch"
    log=$work/effnet-mn-$jid.out rdir=$work/runs/effnet-mn-$jid
    echo "job $jid submitted (train-cpu.sbatch -N 2 --ntasks-per-node 1, real CIFAR-10, 200 steps)"
    check_finished "$jid" 0 240
    for pat in "nodes n\[1-2\], 2 ranks x 1 threads, launcher srun" "), hosts\? n1" "start: parameters identical on all 2 ranks" \
               "checkpoint: parameters identical on all 2 ranks" "training finished (exit 0)"; do
        grep -q -- "$pat" "$log" || { show_job "$jid"; fail "no '$pat' in the job log"; }
    done
    check_ranks "$jid" 0 0
    [ "$(step_of "$rdir/last.h5")" = 200 ] || fail "last.h5 not at global step 200"
    [ "$(grep -c '^Test set' "$log")" = 2 ] || { show_job "$jid"; fail "not one evaluation per epoch"; }
    line=$(grep "^Test set" "$log" | tail -n 1)
    echo "last evaluation of the run: $line"
    json=$("$build/effnet" eval --checkpoint "$rdir/last.h5" --data "$work/data" --subset 1000 --threads 2 --json) \
        || fail "effnet eval"
    "$py" - "$json" "$line" <<'PY' || fail "effnet eval of last.h5 does not reproduce the run's last 'Test set:' line"
import json, re, sys
d = json.loads(sys.argv[1]); line = sys.argv[2]
m = re.search(r"Average loss: ([0-9.]+), Accuracy: (\d+)/(\d+)", line)
assert m, line
assert int(m.group(2)) == d["correct"] and int(m.group(3)) == d["total"] == 1000, (line, d)
# 2e-4: the log's %.4f rounds by <= 5e-5, eval --json's %.6f by 5e-7, and 2 ranks vs 2 threads sum the fp32 losses
# in another order (~1e-7): 4x the rounding bound. Measured 1.7e-5 (this CPU, AMD EPYC, 2026-12-02). Was 1e-3.
assert abs(float(m.group(1)) - d["loss"]) < 2e-4, (line, d)
# 15%: 5.3 sd (0.95% on 1000 images) above chance; measured 25.1% after 200 steps
assert d["accuracy"] > 15, f"accuracy {d['accuracy']}% after 200 steps: not learning (chance is 10%)"
print("effnet eval of last.h5:", d)
PY
    # The checkpoint names the hosts of its ranks (root attribute `hosts`,
    # comma-separated, in rank order; written by src/cmd/cmd_train.c).
    hosts=$("$py" -c "
import h5py, sys
h = h5py.File(sys.argv[1], 'r').attrs.get('hosts', '<none>')
print(h.decode() if isinstance(h, bytes) else h)" "$rdir/last.h5") || fail "reading the root attributes of last.h5"
    [ "$hosts" != '<none>' ] || fail "last.h5 has no root attribute 'hosts' (the ranks' hostnames, comma-separated, in rank order; written by effnet train since main a671036)"
    [ "$hosts" = n1,n2 ] || fail "last.h5 root attribute hosts is '$hosts', want 'n1,n2'"
    echo "last.h5: hosts=$hosts"
    pass "sbatch -N 2: B0 trained 200 steps on real CIFAR-10 across n1 and n2 (job $jid); effnet eval agrees with the run; hosts=n1,n2" ;;
preempt)
    start_cluster
    export SLURM_CONF=$cluster/slurm.conf
    tiny_data
    steps=12
    common=(--set data.dir="$work/data" --set train.batch=8 --set output.log_interval=1 --set data.test_subset=32
            --set "train.max_steps=$steps")
    # The reference runs alongside (the nodes have 2 CPUs each, the jobs 1 per node).
    ref=$(submit effnet-ref -- "${common[@]}") || fail "sbatch (reference)"
    jid=$(FIRST_RUN_SLEEP_MS=500 submit effnet-usr1 -- "${common[@]}") || fail "sbatch"
    log=$work/effnet-usr1-$jid.out rdir=$work/runs/effnet-usr1-$jid
    echo "job $jid submitted ($steps steps, first run slowed by debug.sleep_ms=500), reference job $ref"
    wait_for 90 "job $jid to train" grep -qs '^Train Epoch' "$log" || { show_job "$jid"; fail "job $jid never trained"; }
    echo "job $jid: scancel --signal=USR1 --batch"
    scancel --signal=USR1 --batch "$jid" || fail "scancel --signal=USR1 --batch $jid"
    t_sig=$(date +%s.%N)
    wait_for 90 "the ranks to see the signal" grep -qs "^signal received" "$log" || { show_job "$jid"; fail "job $jid: no 'signal received'"; }
    detect=$(since "$t_sig")
    wait_for 90 "the first run to exit 75" grep -qs "restart 0 exit 75" "$rdir/starts.log" \
        || { show_job "$jid"; fail "job $jid: the signalled run did not exit 75"; }
    exit_s=$(since "$t_sig")
    step=$(step_of "$rdir/last.h5") || fail "reading global_step from last.h5"
    [ "$step" -gt 0 ] && [ "$step" -lt $steps ] || { show_job "$jid"; fail "checkpoint after the signal at global step $step, want 1..$((steps - 1))"; }
    echo "job $jid: checkpoint written at global step $step, state $(field "$jid" JobState) ($(field "$jid" Reason))"
    grep -q "caught SIGUSR1" "$log" || fail "the batch script did not trap USR1"
    grep -q "requeued job $jid" "$log" || { show_job "$jid"; fail "the batch script did not requeue job $jid"; }
    check_finished "$ref" 0 150
    check_finished "$jid" 1 150
    check_ranks "$jid" 0 75
    check_ranks "$jid" 1 0
    check_ranks "$ref" 0 0
    grep -q "resume: $rdir/last.h5 at .* global step $step\$" "$log" || { show_job "$jid"; fail "the requeued job did not resume from global step $step"; }
    [ "$(step_of "$rdir/last.h5")" = $steps ] || fail "final last.h5 not at global step $steps"
    "$py" - "$work/runs/effnet-ref-$ref/last.h5" "$rdir/last.h5" <<'PY' || fail "the preempted-and-resumed job's checkpoint differs from the uninterrupted one"
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
for g in ("/model", "/optimizer"):
    ka, kb = [], []
    a[g].visititems(lambda k, o: ka.append(k) if isinstance(o, h5py.Dataset) else None)
    b[g].visititems(lambda k, o: kb.append(k) if isinstance(o, h5py.Dataset) else None)
    assert ka == kb and ka, f"{g}: different datasets"
    diff = [k for k in ka if not np.array_equal(a[g][k][()], b[g][k][()])]
    assert not diff, f"{g}: {len(diff)} of {len(ka)} datasets differ, e.g. {diff[:3]}"
    print(f"{g}: {len(ka)} datasets bit-identical")
assert a["train"].attrs["global_step"] == b["train"].attrs["global_step"]
PY
    echo "SOAK scenario=preempt detect_s=$detect exit_s=$exit_s lost=0"
    pass "scancel --signal=USR1 across nodes: ranks on n1 and n2 checkpointed at step $step and exited 75, job $jid requeued, resumed and finished bit-identical to job $ref" ;;
mpirun)
    # the launcher fallback: mpirun inside a 2-node allocation starts its
    # daemon on n2 through srun, and the ranks all-reduce over TCP
    start_cluster
    export SLURM_CONF=$cluster/slurm.conf
    tiny_data
    jid=$(EFFNET_LAUNCHER=mpirun submit effnet-mpirun -- --set data.dir="$work/data" --set train.batch=8 \
          --set output.log_interval=1 --set data.test_subset=32 --set train.max_steps=4) || fail "sbatch"
    log=$work/effnet-mpirun-$jid.out
    check_finished "$jid" 0 120
    for pat in "nodes n\[1-2\], 2 ranks x 1 threads, launcher mpirun" "mpirun -np 2 " "parameters identical on all 2 ranks" \
               "training finished (exit 0)"; do
        grep -q -- "$pat" "$log" || { show_job "$jid"; fail "no '$pat' in the job log"; }
    done
    check_ranks "$jid" 0 0
    pass "EFFNET_LAUNCHER=mpirun on 2 nodes: job $jid ran rank 0 on n1 and rank 1 on n2 and finished" ;;
nodedeath)
    start_cluster
    export SLURM_CONF=$cluster/slurm.conf
    tiny_data
    # 320 images / global batch 16 = 20 steps per epoch: last.h5 at step 20
    common=(--set data.dir="$work/data" --set train.batch=8 --set output.log_interval=1 --set data.test_subset=32
            --set train.max_steps=40 --set comm.timeout_s=10)
    jid=$(submit effnet-dead -- "${common[@]}" --set debug.sleep_ms=300) || fail "sbatch"
    log=$work/effnet-dead-$jid.out rdir=$work/runs/effnet-dead-$jid
    wait_for 150 "job $jid to pass step 22" grep -qs '^Train Epoch: 2 \[32/' "$log" || { show_job "$jid"; fail "job $jid never got past its first checkpoint"; }
    [ "$(step_of "$rdir/last.h5")" = 20 ] || fail "no last.h5 at global step 20"
    bash "$lc" link "$cluster" n2 down || fail "taking n2's link down"
    t_down=$(date +%s) t_cut=$(date +%s.%N)
    echo "job $jid: n2's link is down for good (comm.timeout_s = 10)"
    # the report: within 10 s timeout + 5 s grace (+ the step under way)
    wait_for 40 "the stall report" grep -qs "comm stall" "$log" || { show_job "$jid"; fail "no stall report 40 s after the cut"; }
    dr=$(( $(date +%s) - t_down )) detect=$(since "$t_cut")
    # the job: plus Slurm's teardown of a step whose second node is unreachable (measured ~50 s)
    wait_for 90 "job $jid to end" job_done "$jid" || { show_job "$jid"; fail "job $jid still running 90 s after the report"; }
    dt=$(( $(date +%s) - t_down )) exit_s=$(since "$t_cut")
    lost=$("$py" "$src/tests/soak/check_lost.py" "$rdir" "$build/effnet") || { echo "$lost"; fail "checkpoint lost with n2"; }
    echo "$lost"
    echo "job $jid: stall reported $dr s after the cut; job ended $(field "$jid" JobState) (exit $(field "$jid" ExitCode)) $dt s after it"
    grep -q "comm stall: .*training step" "$log" || { show_job "$jid"; fail "no stall report in the job log"; }
    grep -q "did not arrive .*: rank 1 (host n2)$" "$log" || { show_job "$jid"; fail "the report does not name rank 1 on n2"; }
    grep "did not arrive" "$log" | head -n 1
    [ "$(field "$jid" JobState)" != COMPLETED ] || fail "job $jid COMPLETED after losing a node"
    # resubmit on the surviving node: 1 rank, the same global batch 16, from the checkpoint at step 20
    jid2=$(sbatch --parsable --job-name=effnet-survivor --time=10 --nodes=1 --nodelist=n1 --ntasks-per-node=1 \
           --cpus-per-task=1 "$src/slurm/train-cpu.sbatch" "${common[@]}" --resume "$rdir/last.h5" | cut -d';' -f1) \
           || fail "sbatch on n1"
    check_finished "$jid2" 0 150
    log2=$work/effnet-survivor-$jid2.out
    grep -q "resume: batch split 1 rank(s) x batch 8 x accum 2 = global batch 16, as the checkpoint's 2 x 8 x 1" "$log2" \
        || { show_job "$jid2"; fail "the resubmission did not keep the global batch"; }
    grep -q "resume: $rdir/last.h5 at epoch 2, step 0 of the epoch, global step 20" "$log2" || { show_job "$jid2"; fail "not resumed at step 20"; }
    [ "$(step_of "$work/runs/effnet-survivor-$jid2/last.h5")" = 40 ] || fail "the resubmission did not reach step 40"
    echo "SOAK scenario=nodedeath detect_s=$detect exit_s=$exit_s lost=0"
    pass "n2 lost mid-run: job $jid reported the stall in $dr s naming rank 1 (host n2) and ended in $dt s; job $jid2 on n1 resumed at step 20 on 1 rank x accum 2 and finished" ;;
flap)
    start_cluster
    export SLURM_CONF=$cluster/slurm.conf
    tiny_data
    steps=40
    jid=$(submit effnet-flap -- --set data.dir="$work/data" --set train.batch=8 --set output.log_interval=1 \
          --set data.test_subset=32 --set train.max_steps=$steps --set debug.sleep_ms=200) || fail "sbatch"
    log=$work/effnet-flap-$jid.out rdir=$work/runs/effnet-flap-$jid
    echo "job $jid submitted ($steps steps of 200 ms + compute, an all-reduce between n1 and n2 each step)"
    wait_for 90 "job $jid to train" grep -qs '^Train Epoch: 1 \[48/' "$log" || { show_job "$jid"; fail "job $jid never trained"; }
    bash "$lc" link "$cluster" n2 down || fail "taking n2's link down"
    t_down=$(date +%s)
    sleep 5
    [ "$(field "$jid" JobState)" = RUNNING ] || { bash "$lc" link "$cluster" n2 up; show_job "$jid"; fail "job $jid is not running while n2's link is down"; }
    bash "$lc" link "$cluster" n2 up || fail "bringing n2's link up"
    t_up=$(date +%s.%N)
    echo "n2's link was down for $(( $(date +%s) - t_down )) s while job $jid trained"
    # never hang: the job must end, either way, within a bound
    wait_for 120 "job $jid to end after the flap" job_done "$jid" || { show_job "$jid"; fail "job $jid hangs after a 5 s link flap"; }
    st=$(field "$jid" JobState) ec=$(field "$jid" ExitCode) exit_s=$(since "$t_up")
    if [ -f "$rdir/last.h5" ]; then
        lost=$("$py" "$src/tests/soak/check_lost.py" "$rdir" "$build/effnet") || { echo "$lost"; fail "checkpoint lost in the flap"; }
        echo "$lost"
    fi
    echo "SOAK scenario=flap detect_s=- exit_s=$exit_s lost=0 outcome=$st"
    if [ "$st" = COMPLETED ] && [ "$ec" = 0:0 ]; then
        check_ranks "$jid" 0 0
        [ "$(step_of "$rdir/last.h5")" = $steps ] || fail "last.h5 not at global step $steps"
        slow=$("$py" -c "
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '\"train\"' in l]
assert sorted(r['step'] for r in rows) == list(range(1, int(sys.argv[2]) + 1)), 'train rows'
r = max(rows, key=lambda r: r['step_ms']); print(f\"{r['step_ms'] / 1000:.1f} s at step {r['step']}\")
# a step that waited out the flap proves the all-reduce was cut
assert r['step_ms'] > 3000, f'slowest step {r[\"step_ms\"]} ms: the flap did not hit the run'" "$rdir/metrics.jsonl" $steps) \
            || fail "metrics.jsonl: $slow"
        echo "slowest step: $slow (the flap)"
        pass "5 s link flap on n2: job $jid rode it out (TCP retransmits) and finished all $steps steps; slowest step $slow"
    else
        # failing is allowed, silently failing or hanging is not
        msg=$(grep -iE 'error|fail|abort|timed? ?out|unreachable|connection' "$log" | head -n 5)
        [ -n "$msg" ] || { show_job "$jid"; fail "job $jid ended $st ($ec) after the flap without an error message"; }
        echo "$msg"
        pass "5 s link flap on n2: job $jid failed cleanly ($st, exit $ec) with a message, no hang"
    fi ;;
benchcomm)
    start_cluster --link-gbit 1
    export SLURM_CONF=$cluster/slurm.conf
    OMPI_MCA_mpi_yield_when_idle=1 EFFNET_BIN=$build/effnet timeout 120 bash "$src/slurm/comm_study.sh" "$work/comm" \
        --nodes "1 2" --label t --min-bytes 4 --max-bytes 4M --step-factor 4 --iters 3 --warmup 1 > "$work/comm.log" 2>&1 \
        || { cat "$work/comm.log"; fail "slurm/comm_study.sh"; }
    cat "$work/comm.log"
    "$py" - "$work/comm/bench-t-n2.json" "$work/comm/comm_model.json" <<'PY' || fail "bench-comm across n1 and n2"
import json, sys
d, m = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert d["ranks"] == 2 and d["hosts"] == ["n1", "n2"], d["hosts"]
assert d["wrong_total"] == 0 and d["environment"].get("OMPI_MCA_mpi_yield_when_idle") == "1", d
big = [r for r in d["results"] if r["bytes"] >= 1 << 20]
assert len(big) == 2 * 2, big  # 1 MiB and 4 MiB, two calls
for r in big:
    # 1 Gbit/s = 0.125 GB/s each way; TCP gets ~0.118. busbw above it: the traffic did not cross the shaped link
    # (unshaped it is > 1 GB/s). Measured 0.051-0.119 over 6 runs (this loaded 2-core VM, 2026-12-02): the upper
    # bound is the link plus 4%, the lower one 5x below the slowest run
    assert 0.01 < r["busbw_gbs"] < 0.13, f"{r['call']} at {r['bytes']} B: busbw {r['busbw_gbs']:.4f} GB/s, link 0.125"
    print(f"{r['call']}, {r['bytes'] >> 20} MiB: {r['time_us'] / 1e3:.1f} ms, busbw {r['busbw_gbs']:.4f} GB/s")
c = m["calls"]["MPI_Iallreduce in-place + watchdog"]
# B of the binomial fit is at most the link (0.125) in theory; measured 0.114-0.132 over 6 runs (it exceeds the
# link when a noisy small-message median inflates alpha: 976 us in that run). Was < 0.14, 2.2x the worst excess
# over the link; 0.15 is 3.7x, and an unshaped link still fails by 7x. The lower bound is 5.7x below the slowest.
assert c["form"] == "binomial" and 0.02 < c["bandwidth_gbs"] < 0.15, c
print(f"fit: B = {c['bandwidth_gbs']:.4f} GB/s, alpha = {c['alpha_us']:.0f} us")
PY
    pass "bench-comm on n1 and n2 over a 1 Gbit/s link: results right, large messages at the shaped rate, model fitted" ;;
*) fail "unknown case $case_" ;;
esac
