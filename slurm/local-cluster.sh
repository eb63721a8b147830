#!/usr/bin/env bash
# A one-node Slurm cluster on localhost, for tests and small studies: munged,
# slurmctld and slurmd with a generated slurm.conf, everything (key, config,
# state, spool, logs, PIDs) under one state directory. Needs root and
# Debian's slurm-wlm + munge (slurmctld, slurmd, slurm-client, munge).
#
#   slurm/local-cluster.sh start  STATE_DIR [--cpus N] [--port P]
#   slurm/local-cluster.sh stop   STATE_DIR
#   slurm/local-cluster.sh status STATE_DIR
#   slurm/local-cluster.sh env    STATE_DIR      # prints: export SLURM_CONF=...
#
# start: writes STATE_DIR/slurm.conf, starts the three daemons in the
#   background (their PIDs go to STATE_DIR/pids/{munged,slurmctld,slurmd}.pid),
#   and waits until node "localhost" is idle in partition "debug". --cpus
#   (default: $LOCAL_CLUSTER_CPUS, else 2) is the node's CPU count; --port P
#   (default: $LOCAL_CLUSTER_PORT, else the first free pair from 6817) gives
#   slurmctld port P and slurmd port P+1, so two clusters can coexist.
#   Clients find the cluster through SLURM_CONF=STATE_DIR/slurm.conf
#   (`eval "$(slurm/local-cluster.sh env DIR)"`); sbatch passes it on to jobs.
#   On failure it prints the daemon logs, stops what it started and exits 1.
# stop: cancels the cluster's jobs, kills any job processes left
#   (`scontrol listpids`), then stops slurmd, slurmctld and munged by the
#   recorded PIDs (TERM, then KILL after 10 s). Safe to run twice, or after a
#   failed start; it never touches daemons it did not start.
# status: the daemons' PIDs and liveness, then sinfo and squeue; exit 0 only
#   if all three are alive.
#
# Settings chosen for containers and CI VMs (docs/slurm.md): no cgroups
# (ProctrackType=proctrack/linuxproc, TaskPlugin=task/none), SlurmUser=root,
# no accounting database (jobcomp/filetxt keeps a record of finished jobs in
# STATE_DIR/log/jobcomp.txt), select/cons_tres with CR_CPU, requeued jobs may
# start again after 10 s (AuthInfo cred_expire; Slurm's default is 120 s).
# Environment: LOCAL_CLUSTER_CPUS, LOCAL_CLUSTER_PORT (as --cpus, --port),
# LOCAL_CLUSTER_CRED_EXPIRE (10), LOCAL_CLUSTER_PROCTRACK (proctrack/linuxproc)
# and LOCAL_CLUSTER_TASK_PLUGIN (task/none): e.g. proctrack/cgroup and
# task/cgroup,task/affinity where cgroups are usable (a minimal cgroup.conf is
# then written next to slurm.conf).
set -euo pipefail

die() { echo "local-cluster: $*" >&2; exit 1; }
say() { echo "local-cluster: $*" 2> /dev/null || true; }   # never fails, even on a closed pipe
usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0" >&2; exit 2; }

[ $# -ge 2 ] || usage
cmd=$1 state=$2
shift 2
if [ ! -d "$state" ]; then
    case $cmd in
        start) mkdir -p "$state" ;;
        stop) echo "local-cluster: no state directory $state: nothing to stop"; exit 0 ;;
        status) echo "local-cluster: no state directory $state"; exit 1 ;;
    esac
fi
state=$(cd "$state" && pwd)
conf=$state/slurm.conf
pids=$state/pids
export SLURM_CONF=$conf

alive() { [ -s "$pids/$1.pid" ] && kill -0 "$(cat "$pids/$1.pid")" 2>/dev/null; }

port_free() { # port_free PORT: nothing listens on it and we can bind it
    python3 - "$1" <<'PY' 2>/dev/null
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", int(sys.argv[1]))); s.close()
PY
}

stop_pid() { # stop_pid NAME: TERM, wait up to 10 s, then KILL
    local name=$1 pid
    [ -s "$pids/$name.pid" ] || return 0
    pid=$(cat "$pids/$name.pid")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            say "$name ($pid) still alive after 10 s, sending KILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        say "stopped $name (pid $pid)"
    fi
    rm -f "$pids/$name.pid"
}

show_logs() {
    local f
    for f in "$state"/log/munged.log "$state"/log/slurmctld.log "$state"/log/slurmd.log \
             "$state"/log/*.stdout; do
        [ -s "$f" ] || continue
        echo "----- $f (last 30 lines) -----" >&2
        tail -n 30 "$f" >&2
    done
}

do_stop() {
    trap '' PIPE   # a closed stdout must not stop us half-way
    # The cluster's jobs first, while slurmctld and slurmd can still end them.
    if alive slurmctld; then
        local ids
        ids=$(squeue -h -o %A 2>/dev/null | tr '\n' ' ' || true)
        if [ -n "${ids// /}" ]; then
            say "cancelling jobs $ids"
            # shellcheck disable=SC2086
            scancel $ids 2>/dev/null || true
            for _ in $(seq 100); do
                [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break
                sleep 0.2
            done
        fi
    fi
    # Any job process left on the node (slurmd's spool knows them), by PID.
    if alive slurmd; then
        local left
        left=$(scontrol listpids 2>/dev/null | awk 'NR > 1 && $1 ~ /^[0-9]+$/ {print $1}' | sort -u || true)
        if [ -n "$left" ]; then
            say "killing leftover job processes: ${left//$'\n'/ }"
            # shellcheck disable=SC2086
            kill -KILL $left 2>/dev/null || true
        fi
    fi
    stop_pid slurmd
    stop_pid slurmctld
    stop_pid munged
}

write_conf() { # write_conf CPUS PORT
    local cpus=$1 port=$2 mem
    mem=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    cat > "$conf" <<EOF
# Generated by slurm/local-cluster.sh: a one-node cluster on localhost.
ClusterName=effnet-local
SlurmctldHost=localhost
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job waits this long before it may start again (default 120 s).
AuthInfo=socket=$state/munge/munge.socket,cred_expire=${LOCAL_CLUSTER_CRED_EXPIRE:-10}
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$state/run/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: works in containers and VMs whatever their cgroup setup.
ProctrackType=${LOCAL_CLUSTER_PROCTRACK:-proctrack/linuxproc}
TaskPlugin=${LOCAL_CLUSTER_TASK_PLUGIN:-task/none}
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$state/log/jobcomp.txt
MailProg=/bin/true
MpiDefault=none
SchedulerType=sched/backfill
# Look at pending jobs every 2 s (defaults: 60 s main loop, 30 s backfill), so
# a requeued job starts soon after its BeginTime.
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobRequeue=1
MinJobAge=600
KillWait=15
InactiveLimit=0
SlurmctldTimeout=60
SlurmdTimeout=60
# Trust this file over what slurmd detects (e.g. CPUs=2 on a bigger machine).
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

start_exit() {
    local rc=$?
    if [ $rc -ne 0 ]; then
        echo "local-cluster: start failed" >&2
        show_logs
        do_stop
    fi
    exit $rc
}

do_start() {
    local cpus=${LOCAL_CLUSTER_CPUS:-2} port=${LOCAL_CLUSTER_PORT:-}
    while [ $# -gt 0 ]; do
        case $1 in
            --cpus) cpus=$2; shift 2 ;;
            --port) port=$2; shift 2 ;;
            *) die "unknown option '$1'" ;;
        esac
    done
    [ "$(id -u)" -eq 0 ] || die "needs root (slurmd and munged run as root here)"
    local b
    for b in munged slurmctld slurmd sbatch squeue scontrol sinfo python3; do
        command -v "$b" > /dev/null || die "'$b' not found: install slurm-wlm and munge (Debian: apt-get install slurmctld slurmd slurm-client munge)"
    done
    if alive munged || alive slurmctld || alive slurmd; then
        die "a cluster is already running in $state (local-cluster.sh stop $state)"
    fi
    # One start at a time on this machine, so two starts cannot pick the same ports.
    exec 9> "${TMPDIR:-/tmp}/effnet-local-cluster.lock"
    flock -w 120 9 || die "another local-cluster start holds ${TMPDIR:-/tmp}/effnet-local-cluster.lock"
    if [ -z "$port" ]; then
        port=6817
        while ! port_free "$port" || ! port_free $((port + 1)); do
            port=$((port + 2))
            [ "$port" -lt 6917 ] || die "no free port pair in 6817..6916"
        done
    else
        if ! port_free "$port" || ! port_free $((port + 1)); then die "port $port or $((port + 1)) is in use"; fi
    fi
    mkdir -p "$state"/{munge,ctld,spool,run,log,pids}
    chmod 700 "$state" "$state/munge"
    rm -f "$state"/ctld/* 2>/dev/null || true   # a fresh controller state every start
    write_conf "$cpus" "$port"
    if [[ "$(sed -n 's/^\(ProctrackType\|TaskPlugin\)=//p' "$conf")" = *cgroup* ]]; then
        printf 'CgroupAutomount=yes\nConstrainCores=no\nConstrainRAMSpace=no\n' > "$state/cgroup.conf"
    else
        rm -f "$state/cgroup.conf"
    fi

    # Anything that fails from here on (set -e, die) stops what was started.
    trap start_exit EXIT

    # munged with its own key, socket, PID file, seed and log.
    [ -s "$state/munge/munge.key" ] || {
        dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none
        chmod 400 "$state/munge/munge.key"
    }
    munged -F --force --key-file="$state/munge/munge.key" --socket="$state/munge/munge.socket" \
        --pid-file="$state/munge/munged.pid" --seed-file="$state/munge/munged.seed" \
        --log-file="$state/log/munged.log" < /dev/null > "$state/log/munged.stdout" 2>&1 9>&- &
    echo $! > "$pids/munged.pid"
    for _ in $(seq 50); do [ -S "$state/munge/munge.socket" ] && break; alive munged || break; sleep 0.1; done
    munge -n -S "$state/munge/munge.socket" | unmunge -S "$state/munge/munge.socket" > /dev/null \
        || die "munged does not answer on $state/munge/munge.socket"

    slurmctld -D -i -f "$conf" < /dev/null > "$state/log/slurmctld.stdout" 2>&1 9>&- &
    echo $! > "$pids/slurmctld.pid"
    slurmd -D -N localhost -f "$conf" < /dev/null > "$state/log/slurmd.stdout" 2>&1 9>&- &
    echo $! > "$pids/slurmd.pid"

    local state_now=""
    for _ in $(seq 150); do
        alive slurmctld || die "slurmctld exited"
        alive slurmd || die "slurmd exited"
        state_now=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
        [ "$state_now" = idle ] && break
        sleep 0.2
    done
    [ "$state_now" = idle ] || die "node localhost is '${state_now:-unknown}' after 30 s, not idle"
    trap - EXIT
    echo "local-cluster: up in $state: munged $(cat "$pids/munged.pid"), slurmctld $(cat "$pids/slurmctld.pid")" \
         "(port $port), slurmd $(cat "$pids/slurmd.pid") (port $((port + 1))), node localhost with $cpus CPUs"
    echo "local-cluster: export SLURM_CONF=$conf"
}

do_status() {
    local ok=0 n
    for n in munged slurmctld slurmd; do
        if alive "$n"; then echo "$n: running (pid $(cat "$pids/$n.pid"))"
        else echo "$n: not running"; ok=1; fi
    done
    if alive slurmctld; then sinfo; squeue; fi
    return $ok
}

case $cmd in
    start) do_start "$@" ;;
    stop) do_stop ;;
    status) do_status ;;
    env) echo "export SLURM_CONF=$conf" ;;
    *) usage ;;
esac
