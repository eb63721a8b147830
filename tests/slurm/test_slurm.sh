#!/usr/bin/env bash
# slurm/train.sbatch and slurm/train-cpu.sbatch on a real Slurm: a one-node
# cluster on localhost (slurm/local-cluster.sh: munged, slurmctld, slurmd,
# 2 CPUs) started for the test in its own state directory and stopped, by PID,
# when the test ends (trap EXIT), pass or fail.
#   test_slurm.sh CASE BUILD_DIR SRC_DIR PYTHON
# CASE:
#   scripts  static checks, no cluster: syntax, the two scripts' bodies agree,
#            the #SBATCH directives the issue asks for, refusal outside Slurm
#   submit   train.sbatch (GPU header overridden to 2 tasks x 1 CPU, no GPUs)
#            with the CPU recipe, srun --mpi=pmix: the job's state and exit
#            code, its log, metrics.jsonl, last.h5, the tasks' environment;
#            then a job with a missing config fails with a clear message
#   preempt  train-cpu.sbatch, 2 tasks; while it trains, scancel --signal=USR1
#            --batch: the script forwards USR1, the ranks write last.h5 and
#            exit 75, the script runs scontrol requeue; the requeued job
#            resumes from that checkpoint and finishes (exit 0)
#   requeue  the same with `scontrol requeue JOB` (what preemption with
#            PreemptMode=REQUEUE does): SIGTERM, checkpoint within KillWait,
#            Slurm requeues, the job resumes and finishes
#   timelimit  --time=1 --signal=B:USR1@15: Slurm's own warning, sent to the
#            batch shell only, must be forwarded by the script; checkpoint,
#            requeue, resume, finish as above
#   mpirun   the fallback: EFFNET_SRUN_MPI names a plugin srun lacks, so the
#            script falls back to mpirun inside the allocation (2 ranks);
#            the preempt test's USR1 path, through mpirun
#   threads  1 task x 2 CPUs: SRUN_CPUS_PER_TASK, OMP_NUM_THREADS and
#            train.threads all follow --cpus-per-task
# Needs root (slurmd, munged) and Debian's slurmctld slurmd slurm-client munge;
# skips (77) when not root, fails when the packages are missing.
set -uo pipefail
case_=$1 build=$(cd "$2" && pwd) src=$(cd "$3" && pwd) py=$4
fail() { echo "FAIL: $*"; exit 1; }
pass() { echo "PASS: $*"; }
t_start=$(date +%s)

# ---------------------------------------------------------------- static
if [ "$case_" = scripts ]; then
    gpu=$src/slurm/train.sbatch cpu=$src/slurm/train-cpu.sbatch
    for f in "$gpu" "$cpu" "$src/slurm/local-cluster.sh"; do
        bash -n "$f" || fail "syntax error in $f"
    done
    marker='^# ===== common body'
    diff <(sed -n "/$marker/,\$p" "$gpu") <(sed -n "/$marker/,\$p" "$cpu") > /dev/null \
        || { diff <(sed -n "/$marker/,\$p" "$gpu") <(sed -n "/$marker/,\$p" "$cpu"); fail "the bodies of train.sbatch and train-cpu.sbatch differ (copy one to the other below the marker)"; }
    [ "$(sed -n "/$marker/,\$p" "$gpu" | wc -l)" -gt 50 ] || fail "no common body marker in the scripts"
    for d in '--ntasks-per-node=' '--gpus-per-node=' '--cpus-per-task=' '--signal=B:USR1@120' '--requeue'; do
        grep -q "^#SBATCH $d" "$gpu" || fail "train.sbatch lacks #SBATCH $d"
    done
    for d in '--ntasks-per-node=' '--cpus-per-task=' '--signal=B:USR1@120' '--requeue'; do
        grep -q "^#SBATCH $d" "$cpu" || fail "train-cpu.sbatch lacks #SBATCH $d"
    done
    ! grep -Eq '^#SBATCH --(gpus|gres|gpus-per-node)' "$cpu" || fail "train-cpu.sbatch asks for GPUs"
    for s in 'srun --mpi=' 'scontrol requeue' 'SRUN_CPUS_PER_TASK' 'OMP_NUM_THREADS' 'trap .forward USR1. USR1'; do
        grep -q -- "$s" "$gpu" || fail "train.sbatch has no '$s'"
    done
    # #SBATCH lines are only read before the first command
    first_cmd=$(grep -n -v -E '^(#|$)' "$gpu" | head -n 1 | cut -d: -f1)
    last_sbatch=$(grep -n '^#SBATCH' "$gpu" | tail -n 1 | cut -d: -f1)
    [ "$last_sbatch" -lt "$first_cmd" ] || fail "an #SBATCH line comes after the first command in train.sbatch"
    out=$(env -u SLURM_JOB_ID bash "$cpu" 2>&1) && fail "train-cpu.sbatch ran outside a Slurm job"
    grep -q "not inside a Slurm job" <<<"$out" || fail "outside-Slurm message: $out"
    if command -v shellcheck > /dev/null; then
        shellcheck -S warning "$gpu" "$cpu" "$src/slurm/local-cluster.sh" "$0" || fail "shellcheck"
        echo "shellcheck: clean"
    else
        echo "shellcheck: not installed, skipped"
    fi
    pass "sbatch scripts: syntax, identical bodies, required directives"
    exit 0
fi

# ---------------------------------------------------------------- cluster
if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: the local Slurm cluster needs root (slurmd and munged run as root)"
    exit 77
fi
for b in munged slurmctld slurmd sbatch scontrol squeue sinfo scancel srun; do
    command -v "$b" > /dev/null || fail "'$b' not found: install slurmctld slurmd slurm-client munge (bash .ci/install-deps.sh)"
done
[ -x "$build/effnet" ] || fail "no $build/effnet"

work=$(mktemp -d "${TMPDIR:-/tmp}/effnet-slurm-$case_.XXXXXX")
cluster=$work/cluster
cleanup() {
    local rc=$? stopped=0
    trap - EXIT INT TERM HUP
    trap '' PIPE   # stdout may be a closed pipe: keep going and stop the daemons
    if [ $rc -ne 0 ] && [ -d "$cluster/log" ]; then
        for f in "$cluster/log/slurmctld.log" "$cluster/log/slurmd.log"; do
            [ -s "$f" ] && { echo "----- $f (last 25 lines)"; tail -n 25 "$f"; }
        done
    fi
    bash "$src/slurm/local-cluster.sh" stop "$cluster" && stopped=1
    if [ $stopped -eq 0 ]; then
        echo "could not stop the cluster: its PIDs are in $cluster/pids, kept $work"
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

bash "$src/slurm/local-cluster.sh" start "$cluster" --cpus 2 || fail "starting the local cluster"
export SLURM_CONF=$cluster/slurm.conf

# tiny data, as tests/train: 5 x 64 train records, 64 test records
"$py" "$src/tests/train/make_tiny_data.py" "$work/bin" 64 > /dev/null || fail "making tiny data"
"$build/data_tools/cifar10-to-h5" --input "$work/bin" --output "$work/data" --shards 2 \
    --records-per-file 64 --quiet || fail "converting tiny data"

# effnet behind a wrapper that records each task's environment, then execs
# (same PID: signals reach effnet itself). FIRST_RUN_SLEEP_MS slows only the
# job's first run (debug.sleep_ms), so it is still training when a signal
# comes, and the requeued run finishes quickly.
mkdir -p "$work/env"
cat > "$work/effnet" <<EOF
#!/bin/bash
env | grep -E '^(SLURM_PROCID|SLURM_CPUS_PER_TASK|SRUN_CPUS_PER_TASK|OMP_NUM_THREADS|PMIX_RANK|OMPI_COMM_WORLD_RANK|SLURM_RESTART_COUNT)=' \\
    | sort > "$work/env/rank-\${OMPI_COMM_WORLD_RANK:-\${PMIX_RANK:-x}}-restart-\${SLURM_RESTART_COUNT:-0}"
extra=()
[ -n "\${FIRST_RUN_SLEEP_MS:-}" ] && [ "\${SLURM_RESTART_COUNT:-0}" = 0 ] && extra=(--set debug.sleep_ms=\$FIRST_RUN_SLEEP_MS)
exec "$build/effnet" "\$1" "\${extra[@]}" "\${@:2}"
EOF
chmod +x "$work/effnet"
export EFFNET_ROOT=$src EFFNET_BIN=$work/effnet EFFNET_RUNS=$work/runs
cd "$work" || fail "cd $work"

common=(--set data.dir="$work/data" --set train.batch=8 --set output.log_interval=1 --set data.test_subset=32)

field() { scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
show_job() { # the job's record and its log, for failure messages
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
step_of() { "$py" -c "import h5py, sys; print(int(h5py.File(sys.argv[1], 'r')['train'].attrs['global_step']))" "$1"; }
check_finished() { # check_finished JOB RESTARTS: COMPLETED, exit 0:0
    local jid=$1 st ec rs
    wait_for 150 "job $jid to end" job_done "$jid" || { show_job "$jid"; fail "job $jid did not finish"; }
    st=$(field "$jid" JobState) ec=$(field "$jid" ExitCode) rs=$(field "$jid" Restarts)
    [ "$st" = COMPLETED ] && [ "$ec" = 0:0 ] || { show_job "$jid"; fail "job $jid ended $st with exit $ec"; }
    [ "$rs" = "$2" ] || { show_job "$jid"; fail "job $jid restarted $rs times, want $2"; }
    echo "job $jid: $st, exit $ec, $rs restarts; submitted $(field "$jid" SubmitTime | cut -dT -f2)," \
         "last eligible $(field "$jid" EligibleTime | cut -dT -f2), last start $(field "$jid" StartTime | cut -dT -f2), end $(field "$jid" EndTime | cut -dT -f2)"
}
check_metrics() { # check_metrics RUN_DIR STEPS RANKS THREADS: one train row per step 1..STEPS, eval, summary
    "$py" - "$@" <<'PY'
import json, sys
d, steps, ranks, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = [json.loads(l) for l in open(d + "/metrics.jsonl")]
train = sorted(r["step"] for r in rows if r["type"] == "train")
assert train == list(range(1, steps + 1)), f"train rows for steps {train}, want 1..{steps} once each"
assert all(r["ranks"] == ranks for r in rows if r["type"] == "train"), "ranks in train rows"
ev = [r for r in rows if r["type"] == "eval"]
assert ev and ev[-1]["step"] == steps and ev[-1]["total"] == 32, f"eval rows {ev}"
summ = [r for r in rows if r["type"] == "summary"]
assert summ and summ[-1]["ranks"] == ranks and summ[-1]["threads_per_rank"] == threads, f"summary {summ[-1:]}"
print(f"metrics.jsonl: {len(train)} train rows (steps 1..{steps}), {len(ev)} eval, summary ranks={ranks} threads={threads}")
PY
}
check_env() { # check_env RESTART KEY=VALUE...: every rank's recorded environment has these; sets env_n
    local restart=$1 f kv
    shift
    env_n=0
    for f in "$work"/env/rank-*-restart-"$restart"; do
        [ -f "$f" ] || continue
        env_n=$((env_n + 1))
        for kv in "$@"; do grep -qx "$kv" "$f" || { cat "$f"; fail "$(basename "$f"): no $kv"; }; done
    done
}

submit() { # submit NAME SCRIPT [SBATCH OPTIONS] -- [SCRIPT ARGS]: prints the job ID
    local name=$1 script=$2
    shift 2
    local opts=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    sbatch --parsable --job-name="$name" --time=10 "${opts[@]}" "$src/slurm/$script" "$@" | cut -d';' -f1
}

preempt() { # preempt HOW: usr1 (scancel --signal=USR1 --batch), requeue (scontrol requeue),
           # timelimit (--time=1 --signal=B:USR1@15, only the batch shell is signalled); sets jid, step
    local how=$1 log rdir steps=10 opts=() slow=(--set debug.sleep_ms=300)
    if [ "$how" = timelimit ]; then
        # Slurm sends the warning when at most 15 + 30 s remain (its timer runs every 30 s),
        # so 15 to 45 s after the start: 1 s steps in the first run (at most 45 of 60),
        # full speed after the requeue.
        steps=60 opts=(--time=1 --signal=B:USR1@15) slow=()
        export FIRST_RUN_SLEEP_MS=1000
    fi
    jid=$(submit "effnet-$how" train-cpu.sbatch "${opts[@]}" -- "${common[@]}" --set train.max_steps=$steps \
          "${slow[@]}") || fail "sbatch"
    unset FIRST_RUN_SLEEP_MS
    log=$work/effnet-$how-$jid.out rdir=$work/runs/effnet-$how-$jid
    echo "job $jid submitted (train-cpu.sbatch ${opts[*]}, 2 tasks, $steps steps, slowed by debug.sleep_ms)"
    wait_for 90 "job $jid to train" grep -qs '^Train Epoch' "$log" || { show_job "$jid"; fail "job $jid never trained"; }
    [ "$(field "$jid" JobState)" = RUNNING ] || { show_job "$jid"; fail "job $jid not running"; }
    case $how in
        usr1) echo "job $jid: scancel --signal=USR1 --batch"
              scancel --signal=USR1 --batch "$jid" || fail "scancel --signal=USR1 --batch $jid" ;;
        requeue) echo "job $jid: scontrol requeue"
                 scontrol requeue "$jid" || fail "scontrol requeue $jid" ;;
        timelimit) echo "job $jid: waiting for Slurm's USR1 warning before the 1-minute limit" ;;
    esac
    wait_for 75 "the first run to exit 75" grep -qs "restart 0 exit 75" "$rdir/starts.log" \
        || { show_job "$jid"; fail "job $jid: the signalled run did not exit 75"; }
    [ -f "$rdir/last.h5" ] || fail "no $rdir/last.h5 after the signal"
    step=$(step_of "$rdir/last.h5") || fail "reading global_step from last.h5"
    [ "$step" -gt 0 ] && [ "$step" -lt $steps ] || { show_job "$jid"; fail "checkpoint after the signal at global step $step, want 1..$((steps - 1))"; }
    echo "job $jid: checkpoint written at global step $step, state $(field "$jid" JobState) ($(field "$jid" Reason))"
    grep -q "signal received: checkpointing" "$log" || fail "no 'signal received' line in $log"
    if [ "$how" != requeue ]; then
        grep -q "caught SIGUSR1" "$log" || fail "the batch script did not trap USR1"
        grep -q "requeued job $jid" "$log" || { show_job "$jid"; fail "the batch script did not requeue job $jid"; }
    else
        grep -q "caught SIGTERM" "$log" || fail "the batch script did not trap TERM"
        grep -q "checkpointed after SIGTERM (exit 75)" "$log" || { show_job "$jid"; fail "no exit-75-after-TERM line"; }
    fi
    check_finished "$jid" 1
    grep -q "start 2 (restart count 1)" "$log" || { show_job "$jid"; fail "no second start in the log"; }
    grep -q "resume: $rdir/last.h5 at .* global step $step\$" "$log" || { show_job "$jid"; fail "the requeued job did not resume from global step $step"; }
    grep -q "training finished (exit 0)" "$log" || fail "no 'training finished' line"
    [ "$(step_of "$rdir/last.h5")" = $steps ] || fail "final last.h5 not at global step $steps"
    check_metrics "$rdir" $steps 2 1 || fail "metrics.jsonl of job $jid"
    check_env 1 SLURM_RESTART_COUNT=1
    [ "$env_n" = 2 ] || fail "the requeued run did not start 2 ranks"
}

case $case_ in
submit)
    jid=$(submit effnet-ci train.sbatch --gpus-per-node=0 --ntasks-per-node=2 --cpus-per-task=1 \
          -- configs/cpu-b0-32.ini "${common[@]}" --set train.max_steps=6) || fail "sbatch"
    echo "job $jid submitted (train.sbatch, --gpus-per-node=0 --ntasks-per-node=2 --cpus-per-task=1)"
    log=$work/effnet-ci-$jid.out rdir=$work/runs/effnet-ci-$jid
    check_finished "$jid" 0
    for pat in "launcher srun" "srun --mpi=pmix --cpus-per-task=1 " "--set output.dir=$rdir\$" \
               "parameters identical on all 2 ranks" "^Test set: Average loss" "training finished (exit 0)"; do
        grep -q -- "$pat" "$log" || { show_job "$jid"; fail "no '$pat' in the job log"; }
    done
    ! grep -q -- "--resume" "$log" || fail "a fresh job resumed"
    [ "$(grep -c '^Train Epoch' "$log")" = 6 ] || { show_job "$jid"; fail "the job log does not have 6 steps"; }
    [ "$(readlink "$rdir/slurm.out")" = "$log" ] || fail "$rdir/slurm.out does not point to the job log"
    check_metrics "$rdir" 6 2 1 || fail "metrics.jsonl"
    [ "$(step_of "$rdir/last.h5")" = 6 ] || fail "last.h5 not at global step 6"
    [ -f "$rdir/best.h5" ] || fail "no best.h5"
    check_env 0 OMP_NUM_THREADS=1 SLURM_CPUS_PER_TASK=1 SRUN_CPUS_PER_TASK=1
    [ "$env_n" = 2 ] || fail "$env_n ranks recorded their environment, want 2"
    ls "$work"/env/rank-0-* "$work"/env/rank-1-* > /dev/null 2>&1 || fail "no PMIX_RANK 0 and 1: not launched through PMIx"
    echo "job $jid: log, metrics.jsonl, last.h5 (global step 6), best.h5, 2 ranks with PMIX_RANK 0/1 and OMP_NUM_THREADS=1"
    # a bad config: the job fails (exit 1) and says why
    jid2=$(submit effnet-bad train-cpu.sbatch -- configs/no-such.ini) || fail "sbatch"
    wait_for 60 "job $jid2 to end" job_done "$jid2" || fail "job $jid2 did not end"
    [ "$(field "$jid2" JobState)" = FAILED ] && [ "$(field "$jid2" ExitCode)" = 1:0 ] || { show_job "$jid2"; fail "bad config: job $jid2 did not fail with exit 1"; }
    grep -q "config .*no-such.ini.* not found" "$work/effnet-bad-$jid2.out" || { show_job "$jid2"; fail "bad config message"; }
    pass "train.sbatch on real Slurm (srun --mpi=pmix, 2 tasks): job $jid completed with log, metrics and checkpoint; a bad config fails with exit 1" ;;
preempt)
    preempt usr1
    pass "scancel --signal=USR1 --batch: job $jid checkpointed at step $step, exit 75, requeued itself, resumed and finished" ;;
requeue)
    preempt requeue
    pass "scontrol requeue: job $jid checkpointed at step $step on SIGTERM, was requeued, resumed and finished" ;;
timelimit)
    preempt timelimit
    pass "--signal=B:USR1@15 before a 1-minute limit: the batch script forwarded USR1, job $jid checkpointed at step $step, requeued itself, resumed and finished" ;;
mpirun)
    # EFFNET_SRUN_MPI names a plugin srun lacks: auto picks mpirun; the USR1 preemption goes through mpirun
    EFFNET_SRUN_MPI=no_such_plugin preempt usr1
    log=$work/effnet-usr1-$jid.out
    for pat in "falling back to mpirun" "launcher mpirun" "mpirun -np 2 " "parameters identical on all 2 ranks"; do
        grep -q -- "$pat" "$log" || { show_job "$jid"; fail "no '$pat' in the job log"; }
    done
    check_env 0 OMP_NUM_THREADS=1
    [ "$env_n" = 2 ] || fail "$env_n ranks recorded their environment, want 2"
    ls "$work"/env/rank-0-* "$work"/env/rank-1-* > /dev/null 2>&1 || fail "no OMPI_COMM_WORLD_RANK 0 and 1"
    pass "no srun MPI plugin -> mpirun inside the allocation (2 ranks); USR1 through mpirun: job $jid checkpointed at step $step, requeued, resumed and finished" ;;
threads)
    jid=$(submit effnet-threads train-cpu.sbatch --ntasks-per-node=1 --cpus-per-task=2 -- "${common[@]}" --set train.max_steps=2) || fail "sbatch"
    rdir=$work/runs/effnet-threads-$jid
    check_finished "$jid" 0
    check_metrics "$rdir" 2 1 2 || fail "metrics.jsonl"
    check_env 0 OMP_NUM_THREADS=2 SLURM_CPUS_PER_TASK=2 SRUN_CPUS_PER_TASK=2
    [ "$env_n" = 1 ] || fail "$env_n ranks recorded their environment, want 1"
    grep -q "1 ranks x 2 threads" "$work/effnet-threads-$jid.out" || fail "no '1 ranks x 2 threads' in the log"
    pass "--cpus-per-task=2 -> SRUN_CPUS_PER_TASK=2, OMP_NUM_THREADS=2, train.threads=2 (job $jid)" ;;
*) fail "unknown case $case_" ;;
esac
