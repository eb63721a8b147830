#!/usr/bin/env bash
# A local Slurm cluster for tests and small studies: munged, slurmctld and one
# slurmd (or N, each in its own network/UTS/mount namespace) with a generated
# slurm.conf, everything (key, config, state, spool, logs, PIDs) under one
# state directory. Needs root and Debian's slurm-wlm + munge (slurmctld,
# slurmd, slurm-client, munge); --nodes N >= 2 also needs iproute2 (ip, tc)
# and util-linux (nsenter, unshare).
#
#   slurm/local-cluster.sh start  STATE_DIR [--cpus N] [--port P] [--nodes N]
#                                 [--share PATH]... [--link-gbit G] [--link-latency-ms MS]
#   slurm/local-cluster.sh stop   STATE_DIR
#   slurm/local-cluster.sh status STATE_DIR
#   slurm/local-cluster.sh env    STATE_DIR      # prints: export SLURM_CONF=...
#   slurm/local-cluster.sh exec   STATE_DIR NODE COMMAND...   # --nodes >= 2: run on node nK
#   slurm/local-cluster.sh link   STATE_DIR NODE up|down      # --nodes >= 2: node nK's cable
#
# start: writes STATE_DIR/slurm.conf, starts the daemons in the background
#   (their PIDs go to STATE_DIR/pids/{munged,slurmctld,slurmd}.pid), and waits
#   until the nodes are idle in partition "debug". --cpus (default:
#   $LOCAL_CLUSTER_CPUS, else 2) is each node's CPU count; --port P (default:
#   $LOCAL_CLUSTER_PORT, else the first free pair from 6817) gives slurmctld
#   port P and slurmd port P+1, so two clusters can coexist.
#   Clients find the cluster through SLURM_CONF=STATE_DIR/slurm.conf
#   (`eval "$(slurm/local-cluster.sh env DIR)"`); sbatch passes it on to jobs.
#   On failure it prints the daemon logs, stops what it started and exits 1.
#   --nodes 1 (the default, $LOCAL_CLUSTER_NODES): one node "localhost" on
#   127.0.0.1, no namespaces.
#   --nodes N >= 2: nodes n1..nN. start creates a bridge <P>br with address
#   10.213.S.254/24 (S: the first /24 of 10.213.0.0/16 that no route or
#   address on this host uses), and per node a network namespace <P>-nK, a
#   veth pair (<P>hK on the bridge, eth0 = 10.213.S.K inside) and no other
#   route: nodes reach each other and the controller, nothing else. <P> is
#   "emn" + 4 random hex digits; every name is recorded in STATE_DIR/net/
#   before it is created. Each slurmd runs as `slurmd -D -N nK` inside its
#   network namespace plus new UTS and mount namespaces (nsenter + unshare)
#   with hostname nK, a private /tmp (STATE_DIR/nodes/nK/tmp), /dev/shm
#   (tmpfs), Slurm spool (STATE_DIR/nodes/nK/spool on STATE_DIR/spool) and
#   /etc/hosts (n1..nN and the controller); its jobs inherit all of that. The
#   rest of the file system is shared; paths under /tmp that nodes must see
#   are bound back into the private /tmp: STATE_DIR, this repository if it is
#   under /tmp, and each --share PATH ($LOCAL_CLUSTER_SHARE, colon-separated).
#   munged and slurmctld run on the host, SlurmctldHost=$(hostname -s) with
#   the bridge address. --link-gbit G shapes both ends of every node's veth
#   with tc tbf (G Gbit/s each way); --link-latency-ms MS adds tc netem delay
#   where the kernel has netem (if not, it says so and goes on without).
# stop: cancels the cluster's jobs, kills any job processes left
#   (`scontrol listpids`; with --nodes >= 2, every process inside the
#   cluster's network namespaces), then stops the slurmd(s), slurmctld and
#   munged by the recorded PIDs (TERM, then KILL after 10 s), and deletes the
#   namespaces, veths and bridge by their recorded names. Safe to run twice,
#   or after a failed start; it never touches daemons or links it did not
#   start or create.
# status: the daemons' PIDs and liveness, then sinfo and squeue; exit 0 only
#   if all are alive.
# exec: runs COMMAND in node NODE's network, UTS and mount namespaces (those
#   of its slurmd). link: sets the host end of NODE's veth down or up, like
#   pulling and re-plugging its cable.
#
# Settings chosen for containers and CI VMs (docs/slurm.md): no cgroups
# (ProctrackType=proctrack/linuxproc, TaskPlugin=task/none), SlurmUser=root,
# no accounting database (jobcomp/filetxt keeps a record of finished jobs in
# STATE_DIR/log/jobcomp.txt), select/cons_tres with CR_CPU, requeued jobs may
# start again after 10 s (AuthInfo cred_expire; Slurm's default is 120 s).
# Environment: LOCAL_CLUSTER_CPUS, LOCAL_CLUSTER_PORT, LOCAL_CLUSTER_NODES,
# LOCAL_CLUSTER_SHARE (as --cpus, --port, --nodes, --share),
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
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
if [ ! -d "$state" ]; then
    case $cmd in
        start) mkdir -p "$state" ;;
        stop) echo "local-cluster: no state directory $state: nothing to stop"; exit 0 ;;
        status) echo "local-cluster: no state directory $state"; exit 1 ;;
        exec|link) die "no state directory $state" ;;
    esac
fi
state=$(cd "$state" && pwd)
conf=$state/slurm.conf
pids=$state/pids
net=$state/net
export SLURM_CONF=$conf

alive() { [ -s "$pids/$1.pid" ] && kill -0 "$(cat "$pids/$1.pid")" 2>/dev/null; }

# The daemons this state directory records: munged slurmctld slurmd (one
# node) or slurmd-n1 .. slurmd-nN (namespaced nodes).
slurmds() {
    local f
    for f in "$pids"/slurmd.pid "$pids"/slurmd-n*.pid; do [ -e "$f" ] && basename "$f" .pid; done
    return 0
}

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
             "$state"/log/slurmd-*.log "$state"/log/*.stdout; do
        [ -s "$f" ] || continue
        echo "----- $f (last 30 lines) -----" >&2
        tail -n 30 "$f" >&2
    done
}

# ---- namespaced nodes: names recorded in $net before they are created -------

recorded() { [ -s "$net/$1" ] && cat "$net/$1"; return 0; }   # recorded FILE: its lines
ours() { [[ $1 = "$(cat "$net/prefix" 2>/dev/null)"* ]]; }    # a name with our prefix

netns_sweep() { # netns_sweep NS: TERM, then KILL, every process inside our namespace NS
    local ns=$1 left
    [ -e "/run/netns/$ns" ] || return 0
    left=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ' || true)
    [ -n "${left// /}" ] || return 0
    say "ending processes left in $ns: $left"
    # shellcheck disable=SC2086
    kill -TERM $left 2>/dev/null || true
    for _ in $(seq 50); do
        [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && return 0
        sleep 0.1
    done
    left=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ' || true)
    # shellcheck disable=SC2086
    [ -n "${left// /}" ] && kill -KILL $left 2>/dev/null
    return 0
}

net_teardown() { # delete our namespaces, veths and bridge, by recorded name
    [ -d "$net" ] || return 0
    local ns link
    for ns in $(recorded netns); do
        ours "$ns" || continue
        netns_sweep "$ns"
        if [ -e "/run/netns/$ns" ]; then
            ip netns del "$ns" 2>/dev/null && say "deleted namespace $ns" || say "could not delete namespace $ns"
        fi
    done
    for link in $(recorded veths | awk '{print $2}') $(recorded bridge); do
        ours "$link" || continue
        if ip link show dev "$link" > /dev/null 2>&1; then
            # a veth may vanish by itself meanwhile, with its deleted namespace
            if ip link del dev "$link" 2>/dev/null; then say "deleted link $link"
            elif ip link show dev "$link" > /dev/null 2>&1; then say "could not delete link $link"; fi
        fi
    done
    # All gone: forget the names (a later start may record new ones).
    for ns in $(recorded netns); do ours "$ns" && [ -e "/run/netns/$ns" ] && return 0; done
    for link in $(recorded veths | awk '{print $2}') $(recorded bridge); do
        ours "$link" && ip link show dev "$link" > /dev/null 2>&1 && return 0
    done
    rm -f "$net"/{prefix,subnet,netns,veths,bridge,shares}
    rmdir "$net" 2>/dev/null
    return 0
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
    local d
    for d in $(slurmds); do stop_pid "$d"; done
    # Namespaced nodes: whatever still runs inside their network namespaces
    # (slurmstepd, job processes) was started by their slurmd.
    for d in $(recorded netns); do ours "$d" && netns_sweep "$d"; done
    stop_pid slurmctld
    stop_pid munged
    net_teardown
}

write_conf() { # write_conf CPUS PORT [NODES SUBNET]: one node on localhost, or NODES namespaced nodes
    local cpus=$1 port=$2 nodes=${3:-1} subnet=${4:-} mem ctld spool_comment="" slurmd_pid slurmd_log nodelines k
    mem=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    if [ "$nodes" -eq 1 ]; then
        ctld=localhost slurmd_pid=$state/run/slurmd.pid slurmd_log=$state/log/slurmd.log
        nodelines="NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP"
    else
        mem=$((mem / nodes))
        # slurmctld checks that SlurmctldHost names this host; the nodes reach it on the bridge.
        ctld="$(hostname -s)($subnet.254)" slurmd_pid=$state/run/slurmd-%n.pid slurmd_log=$state/log/slurmd-%n.log
        spool_comment="# Each node mounts its own STATE_DIR/nodes/nK/spool here (a node-local disk)."$'\n'
        nodelines=""
        for ((k = 1; k <= nodes; k++)); do
            nodelines+="NodeName=n$k NodeAddr=$subnet.$k CPUs=$cpus RealMemory=$mem State=UNKNOWN"$'\n'
        done
        nodelines+="PartitionName=debug Nodes=n[1-$nodes] Default=YES MaxTime=INFINITE State=UP"
    fi
    cat > "$conf" <<EOF
# Generated by slurm/local-cluster.sh: $([ "$nodes" -eq 1 ] && echo "a one-node cluster on localhost." || echo "$nodes nodes in network namespaces on bridge $(cat "$net/bridge") ($subnet.0/24).")
ClusterName=effnet-local
SlurmctldHost=$ctld
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job waits this long before it may start again (default 120 s).
AuthInfo=socket=$state/munge/munge.socket,cred_expire=${LOCAL_CLUSTER_CRED_EXPIRE:-10}
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$state/ctld
${spool_comment}SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$slurmd_pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$slurmd_log
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
$nodelines
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

# net_setup NODES GBIT LATENCY_MS: bridge, namespaces, veths (under the start lock)
net_setup() {
    local nodes=$1 gbit=$2 lat=$3 prefix s k ns host_if burst
    ip netns list > /dev/null 2>&1 || die "'ip netns' does not work here"
    # A prefix no link or namespace on this host has.
    for _ in $(seq 20); do
        prefix=$(printf 'emn%04x' $((RANDOM % 65536)))
        ! ip -o link show 2>/dev/null | grep -q ": $prefix" && [ ! -e "/run/netns/$prefix-n1" ] && break
        prefix=""
    done
    [ -n "$prefix" ] || die "no free link name prefix"
    # The first 10.213.S.0/24 that nothing on this host routes to or uses
    # (the default route is the only one allowed to cover it).
    subnet=""
    for ((s = 0; s < 256; s++)); do
        if [ -z "$(ip -4 route show match "10.213.$s.0/24" 2>/dev/null | grep -v '^default ')" ] &&
           ! ip -4 -o addr show 2>/dev/null | grep -q " inet 10\.213\.$s\."; then
            subnet=10.213.$s
            break
        fi
    done
    [ -n "$subnet" ] || die "every /24 in 10.213.0.0/16 is in use on this host"
    mkdir -p "$net"
    echo "$prefix" > "$net/prefix"
    echo "$subnet" > "$net/subnet"
    : > "$net/netns"; : > "$net/veths"
    echo "${prefix}br" > "$net/bridge"
    ip link add "${prefix}br" type bridge
    sysctl -qw "net.ipv6.conf.${prefix}br.disable_ipv6=1" 2>/dev/null || true
    ip addr add "$subnet.254/24" dev "${prefix}br"
    ip link set "${prefix}br" up
    if [ -n "$gbit" ]; then
        # burst: 4 ms at the rate (tbf needs at least rate/HZ), at least 64 KiB
        burst=$(awk -v g="$gbit" 'BEGIN {b = g * 1e9 / 8 / 250; if (b < 65536) b = 65536; printf "%d", b}')
    fi
    for ((k = 1; k <= nodes; k++)); do
        ns=$prefix-n$k host_if=${prefix}h$k
        echo "$ns" >> "$net/netns"
        ip netns add "$ns"
        echo "n$k $host_if" >> "$net/veths"
        ip link add "$host_if" type veth peer name "${prefix}p$k" netns "$ns"
        sysctl -qw "net.ipv6.conf.$host_if.disable_ipv6=1" 2>/dev/null || true
        ip link set "$host_if" master "${prefix}br" up
        ip -n "$ns" link set "${prefix}p$k" name eth0
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null || true
        ip -n "$ns" addr add "$subnet.$k/24" dev eth0
        ip -n "$ns" link set lo up
        ip -n "$ns" link set eth0 up
        # Only the bridge's /24 (from the address) and loopback: no default route, no NAT.
        local qdisc_args=(root)
        if [ -n "$lat" ]; then
            if tc qdisc add dev "$host_if" root handle 1: netem delay "${lat}ms" 2>/dev/null; then
                ip netns exec "$ns" tc qdisc add dev eth0 root handle 1: netem delay "${lat}ms"
                qdisc_args=(parent 1:1)
            else
                [ $k -eq 1 ] && say "tc netem is not available on this kernel: no latency shaping (--link-latency-ms $lat ignored)"
                lat=""
            fi
        fi
        if [ -n "$gbit" ]; then
            tc qdisc add dev "$host_if" "${qdisc_args[@]}" tbf rate "${gbit}gbit" burst "$burst" latency 50ms
            ip netns exec "$ns" tc qdisc add dev eth0 "${qdisc_args[@]}" tbf rate "${gbit}gbit" burst "$burst" latency 50ms
        fi
    done
    # Node-side files: private /tmp and spool, /etc/hosts, and the shared paths.
    {
        echo "127.0.0.1 localhost"
        echo "::1 localhost ip6-localhost ip6-loopback"
        for ((k = 1; k <= nodes; k++)); do echo "$subnet.$k n$k"; done
        echo "$subnet.254 $(hostname -s)"
    } > "$state/hosts"
    for ((k = 1; k <= nodes; k++)); do
        mkdir -p "$state/nodes/n$k/tmp" "$state/nodes/n$k/spool"
        chmod 1777 "$state/nodes/n$k/tmp"
    done
}

# Runs as the namespaced node's first process (nsenter + unshare exec it):
# hostname, mounts, then exec slurmd with the same PID.
node_init() { # node_init NODE
    local node=$1 p fd i
    local -a shares=() fds=()
    hostname "$node"
    mapfile -t shares < "$net/shares"
    # Handles on the shared directories under /tmp, taken before /tmp is covered.
    for p in "${shares[@]}"; do exec {fd}< "$p"; fds+=("$fd"); done
    mount --bind "$state/nodes/$node/tmp" /tmp
    for i in "${!shares[@]}"; do
        mkdir -p "${shares[$i]}"
        mount --no-canonicalize --bind "/proc/self/fd/${fds[$i]}" "${shares[$i]}"
        fd=${fds[$i]}
        exec {fd}<&-
    done
    mount -t tmpfs -o mode=1777,size=1g effnet-shm /dev/shm
    mount --bind "$state/nodes/$node/spool" "$state/spool"
    mount --bind "$state/hosts" /etc/hosts
    exec slurmd -D -N "$node" -f "$conf"
}

node_pid() { # node_pid NODE: its slurmd's PID (the holder of its namespaces)
    [[ $1 =~ ^n[0-9]+$ ]] || die "no node '$1' (n1, n2, ...)"
    alive "slurmd-$1" || die "node $1 is not running (no live slurmd-$1 in $pids)"
    cat "$pids/slurmd-$1.pid"
}

do_start() {
    local cpus=${LOCAL_CLUSTER_CPUS:-2} port=${LOCAL_CLUSTER_PORT:-} nodes=${LOCAL_CLUSTER_NODES:-1}
    local gbit="" lat="" p
    local -a shares=()
    IFS=: read -r -a shares <<< "${LOCAL_CLUSTER_SHARE:-}"
    while [ $# -gt 0 ]; do
        case $1 in
            --cpus) cpus=$2; shift 2 ;;
            --port) port=$2; shift 2 ;;
            --nodes) nodes=$2; shift 2 ;;
            --share) shares+=("$2"); shift 2 ;;
            --link-gbit) gbit=$2; shift 2 ;;
            --link-latency-ms) lat=$2; shift 2 ;;
            *) die "unknown option '$1'" ;;
        esac
    done
    [[ $nodes =~ ^[1-9][0-9]?$ ]] && [ "$nodes" -le 64 ] || die "--nodes must be 1..64"
    if [ "$nodes" -eq 1 ] && [ -n "$gbit$lat" ]; then die "--link-gbit and --link-latency-ms need --nodes 2 or more"; fi
    [ -z "$gbit" ] || [[ $gbit =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--link-gbit wants a number of Gbit/s"
    [ -z "$lat" ] || [[ $lat =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--link-latency-ms wants a number of milliseconds"
    [ "$(id -u)" -eq 0 ] || die "needs root (slurmd and munged run as root here)"
    local b
    for b in munged slurmctld slurmd sbatch squeue scontrol sinfo python3; do
        command -v "$b" > /dev/null || die "'$b' not found: install slurm-wlm and munge (Debian: apt-get install slurmctld slurmd slurm-client munge)"
    done
    if [ "$nodes" -gt 1 ]; then
        for b in ip tc nsenter unshare mount; do
            command -v "$b" > /dev/null || die "'$b' not found: --nodes $nodes needs iproute2 and util-linux"
        done
        unshare --net --uts --mount true 2>/dev/null || die "cannot create network/UTS/mount namespaces here (unshare --net --uts --mount failed)"
    fi
    if alive munged || alive slurmctld || [ -n "$(for d in $(slurmds); do alive "$d" && echo "$d"; done)" ]; then
        die "a cluster is already running in $state (local-cluster.sh stop $state)"
    fi
    [ ! -s "$net/netns" ] && [ ! -s "$net/bridge" ] || die "$state/net records links from an earlier start: run local-cluster.sh stop $state first"
    # One start at a time on this machine, so two starts cannot pick the same ports (or subnets).
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

    # Anything that fails from here on (set -e, die) stops what was started.
    trap start_exit EXIT

    local subnet=""
    if [ "$nodes" -gt 1 ]; then
        # Paths under /tmp the nodes must see through their private /tmp: the
        # state directory, this repository, --share; outermost ones only.
        local -a cand=("$state" "$(dirname "$(dirname "$self")")") keep=()
        for p in "${shares[@]}"; do
            [ -n "$p" ] || continue
            [ -d "$p" ] || die "--share $p: no such directory"
            cand+=("$(cd "$p" && pwd -P)")
        done
        for p in "${cand[@]}"; do
            [ "$p" != /tmp ] || die "--share /tmp: the nodes' /tmp is private; share directories below it"
            [[ $p = /tmp/* ]] && keep+=("$p")
        done
        mkdir -p "$net"
        printf '%s\n' "${keep[@]}" | sort -u | awk 'NF == 0 {next} {for (i = 1; i <= n; i++) if (index($0 "/", p[i] "/") == 1) next; p[++n] = $0; print}' > "$net/shares"
        net_setup "$nodes" "$gbit" "$lat"
    fi
    write_conf "$cpus" "$port" "$nodes" "$subnet"
    if [[ "$(sed -n 's/^\(ProctrackType\|TaskPlugin\)=//p' "$conf")" = *cgroup* ]]; then
        printf 'CgroupAutomount=yes\nConstrainCores=no\nConstrainRAMSpace=no\n' > "$state/cgroup.conf"
    else
        rm -f "$state/cgroup.conf"
    fi

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
    local names=localhost k
    if [ "$nodes" -eq 1 ]; then
        slurmd -D -N localhost -f "$conf" < /dev/null > "$state/log/slurmd.stdout" 2>&1 9>&- &
        echo $! > "$pids/slurmd.pid"
    else
        names=n[1-$nodes]
        for ((k = 1; k <= nodes; k++)); do
            # nsenter and unshare exec (no fork), node_init execs slurmd: $! is slurmd's PID.
            nsenter --net="/run/netns/$(sed -n "${k}p" "$net/netns")" -- \
                unshare --uts --mount --propagation private -- \
                bash "$self" _node "$state" "n$k" < /dev/null > "$state/log/slurmd-n$k.stdout" 2>&1 9>&- &
            echo $! > "$pids/slurmd-n$k.pid"
        done
    fi

    local state_now="" d
    for _ in $(seq 150); do
        alive slurmctld || die "slurmctld exited"
        for d in $(slurmds); do alive "$d" || die "$d exited"; done
        state_now=$(sinfo -h -n "$names" -o %T 2>/dev/null | sort -u | tr '\n' ' ' || true)
        [ "$state_now" = "idle " ] && [ "$(sinfo -h -N -n "$names" -o %N 2>/dev/null | wc -l)" -eq "$nodes" ] && break
        sleep 0.2
    done
    [ "$state_now" = "idle " ] || die "nodes $names are '${state_now:-unknown}' after 30 s, not idle"
    trap - EXIT
    if [ "$nodes" -eq 1 ]; then
        echo "local-cluster: up in $state: munged $(cat "$pids/munged.pid"), slurmctld $(cat "$pids/slurmctld.pid")" \
             "(port $port), slurmd $(cat "$pids/slurmd.pid") (port $((port + 1))), node localhost with $cpus CPUs"
    else
        echo "local-cluster: up in $state: munged $(cat "$pids/munged.pid"), slurmctld $(cat "$pids/slurmctld.pid")" \
             "(port $port, $subnet.254 on bridge $(cat "$net/bridge")), nodes $names ($subnet.1-$nodes, $cpus CPUs each," \
             "slurmd PIDs $(for ((k = 1; k <= nodes; k++)); do printf '%s ' "$(cat "$pids/slurmd-n$k.pid")"; done | sed 's/ $//'))${gbit:+, links shaped to $gbit Gbit/s}"
    fi
    echo "local-cluster: export SLURM_CONF=$conf"
}

do_status() {
    local ok=0 n
    for n in munged slurmctld $(slurmds); do
        if alive "$n"; then echo "$n: running (pid $(cat "$pids/$n.pid"))"
        else echo "$n: not running"; ok=1; fi
    done
    if [ -s "$net/bridge" ]; then
        echo "bridge $(cat "$net/bridge") ($(cat "$net/subnet").0/24), namespaces $(recorded netns | tr '\n' ' ')"
    fi
    if alive slurmctld; then sinfo; squeue; fi
    return $ok
}

do_link() { # do_link NODE up|down
    [ $# -eq 2 ] && [[ $2 = up || $2 = down ]] || die "usage: local-cluster.sh link STATE_DIR NODE up|down"
    local dev
    dev=$(recorded veths | awk -v n="$1" '$1 == n {print $2}')
    [ -n "$dev" ] && ours "$dev" || die "no recorded veth for node '$1' in $net/veths"
    ip link set dev "$dev" "$2"
    say "node $1: $dev $2"
}

case $cmd in
    start) do_start "$@" ;;
    stop) do_stop ;;
    status) do_status ;;
    env) echo "export SLURM_CONF=$conf" ;;
    exec) [ $# -ge 2 ] || die "usage: local-cluster.sh exec STATE_DIR NODE COMMAND..."
          node=$1; shift
          exec nsenter -t "$(node_pid "$node")" -n -u -m -- "$@" ;;
    link) do_link "$@" ;;
    _node) node_init "$@" ;;
    *) usage ;;
esac
