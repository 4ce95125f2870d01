#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the tests marked `slurm` (docs/workflow.md).
#
#   tests/farm/slurm.sh [start]          install (apt), configure and start munge + Slurm
#   tests/farm/slurm.sh start --accounting   the same with slurmdbd accounting (MariaDB)
#   tests/farm/slurm.sh status           exit 0 when sinfo answers and the node is usable
#   tests/farm/slurm.sh stop             stop the daemons (slurmd, slurmctld, slurmdbd, MariaDB, munged)
#
# Idempotent: `start` on a running cluster of the same kind does nothing (a run with or
# without --accounting on a cluster of the other kind restarts it). Needs root and Debian
# (slurm-wlm 22.05, munge; slurmdbd and mariadb-server for --accounting). The cluster
# `hepline`: one node named after this host with its CPUs and memory (slurmd -C), one
# partition `debug`, Slurm run as root, ProctrackType=proctrack/linuxproc,
# TaskPlugin=task/none, no cgroups (none are available to a container). MinJobAge=300 s, so
# that `squeue` still lists a finished job for 5 minutes (the profile's status command).
# With --accounting: AccountingStorageEnforce=associations, account `hepline` for root.
set -euo pipefail

MODE=${1:-start}
ACCOUNTING=0
[[ "${2:-}" == "--accounting" || "${1:-}" == "--accounting" ]] && ACCOUNTING=1
[[ "${1:-}" == "--accounting" ]] && MODE=start

CLUSTER=hepline
PARTITION=debug
CONF=/etc/slurm/slurm.conf
DBDCONF=/etc/slurm/slurmdbd.conf
MARK="# written by hepline tests/farm/slurm.sh"
LOGDIR=/var/log/slurm
TIMEOUT=${HEPLINE_FARM_TIMEOUT:-60}   # seconds to wait for each daemon

log() { echo "slurm.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() {  # wait_for DESCRIPTION COMMAND...: poll once a 0.2 s until COMMAND succeeds
    local what=$1; shift
    local deadline=$((SECONDS + TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "$what not up after ${TIMEOUT}s (logs: $LOGDIR)"
        sleep 0.2
    done
}

node_ready() {  # the node is idle/mixed/allocated (not down, drained or unknown)
    local state
    state=$(timeout 10 sinfo -h -N -o '%T' 2>/dev/null | head -1) || return 1
    [[ "$state" =~ ^(idle|mixed|allocated|completing)$ ]]
}

install_packages() {
    local pkgs=(slurm-wlm munge)
    ((ACCOUNTING)) && pkgs+=(slurmdbd mariadb-server)
    local missing=()
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    log "installing ${missing[*]} (apt)"
    [[ -n "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v -e lock -e partial)" ]] \
        || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null || {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    }
}

write_slurm_conf() {  # the wanted slurm.conf on stdout
    local host node
    host=$(hostname -s)
    # NodeName=<host> CPUs=.. Boards=.. SocketsPerBoard=.. CoresPerSocket=.. ThreadsPerCore=.. RealMemory=..
    node=$(slurmd -C | head -1)
    cat <<CONF
$MARK: do not edit, rerun the script
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=300
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=60
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
CONF
    if ((ACCOUNTING)); then
        cat <<CONF
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageEnforce=associations
CONF
    else
        echo "AccountingStorageType=accounting_storage/none"
    fi
    echo "$node State=UNKNOWN"
    echo "PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
}

start_munge() {
    if [[ ! -s /etc/munge/munge.key ]]; then
        mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key
    fi
    if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        install -d -o munge -g munge -m 755 /run/munge
        install -d -o munge -g munge -m 700 /var/lib/munge /var/log/munge
        runuser -u munge -- /usr/sbin/munged
        wait_for munged bash -c 'munge -n </dev/null | unmunge'
    fi
}

start_mariadb() {
    if ! mysqladmin ping >/dev/null 2>&1; then
        install -d -o mysql -g mysql /run/mysqld
        [[ -d /var/lib/mysql/mysql ]] || mariadb-install-db --user=mysql >/dev/null
        (setsid mysqld_safe --user=mysql >/dev/null 2>&1 &)
        wait_for MariaDB mysqladmin ping
    fi
    mysql -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
              CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'hepline';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
}

start_slurmdbd() {
    local want
    want=$(cat <<CONF
$MARK
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=/run/slurmdbd.pid
LogFile=$LOGDIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=hepline
StorageLoc=slurm_acct_db
CONF
)
    if [[ "$(cat "$DBDCONF" 2>/dev/null)" != "$want" ]]; then
        printf '%s\n' "$want" >"$DBDCONF"
        chmod 600 "$DBDCONF"
        stop_daemon slurmdbd /run/slurmdbd.pid
    fi
    pid_alive /run/slurmdbd.pid || /usr/sbin/slurmdbd
    # sacctmgr reads slurm.conf (AccountingStorageHost): it must name slurmdbd already
    wait_for slurmdbd timeout 10 sacctmgr -n list cluster
    timeout 20 sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" \
        || timeout 20 sacctmgr -i add cluster "$CLUSTER" >/dev/null
    timeout 20 sacctmgr -n -P list account format=account | grep -qx "$CLUSTER" \
        || timeout 20 sacctmgr -i add account "$CLUSTER" Cluster="$CLUSTER" \
            Description=tests Organization=hepline >/dev/null
    timeout 20 sacctmgr -n -P list user format=user | grep -qx root \
        && timeout 20 sacctmgr -n -P list assoc user=root format=account | grep -qx "$CLUSTER" \
        || timeout 20 sacctmgr -i add user root Account="$CLUSTER" DefaultAccount="$CLUSTER" >/dev/null
}

stop_daemon() {  # stop_daemon NAME PIDFILE
    local name=$1 pidfile=$2
    pid_alive "$pidfile" || return 0
    local pid
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }; sleep 0.2; done
    log "$name ($pid) did not stop in 10 s: SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

start() {
    [[ $EUID -eq 0 ]] || die "run as root (it installs packages and starts daemons)"
    install_packages
    install -d "$LOGDIR" /var/spool/slurmctld /var/spool/slurmd /etc/slurm
    if [[ -f "$CONF" ]] && ! grep -q "^$MARK" "$CONF"; then
        die "$CONF exists and was not written by this script: this host has its own Slurm"
    fi
    local want
    want=$(write_slurm_conf)
    if [[ "$(cat "$CONF" 2>/dev/null)" == "$want" ]] && pid_alive /run/slurmctld.pid \
        && pid_alive /run/slurmd.pid && node_ready; then
        log "cluster '$CLUSTER' already running ($(sinfo -h -o '%P %D %c CPUs %m MB' | head -1))"
        return 0
    fi
    start_munge
    if [[ "$(cat "$CONF" 2>/dev/null)" != "$want" ]]; then
        stop_daemon slurmd /run/slurmd.pid
        stop_daemon slurmctld /run/slurmctld.pid
        printf '%s\n' "$want" >"$CONF"
    fi
    if ((ACCOUNTING)); then
        start_mariadb
        start_slurmdbd
    fi
    # -c: a clean start (no saved jobs or node states from a former cluster)
    pid_alive /run/slurmctld.pid || /usr/sbin/slurmctld -c
    wait_for slurmctld timeout 5 scontrol ping
    pid_alive /run/slurmd.pid || /usr/sbin/slurmd
    if ! (TIMEOUT=20 wait_for "node" node_ready) 2>/dev/null; then
        scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true
        wait_for "node $(hostname -s)" node_ready
    fi
    log "cluster '$CLUSTER' up ($( ((ACCOUNTING)) && echo with || echo without) accounting):" \
        "$(sinfo -h -o '%P %D node(s) %c CPUs %m MB %T' | head -1)"
}

stop() {
    if [[ -f "$CONF" ]] && grep -q "^$MARK" "$CONF"; then
        timeout 10 scancel --user=root 2>/dev/null || true
        stop_daemon slurmd /run/slurmd.pid
        stop_daemon slurmctld /run/slurmctld.pid
        stop_daemon slurmdbd /run/slurmdbd.pid
        if [[ -f "$DBDCONF" ]] && grep -q "^$MARK" "$DBDCONF" && mysqladmin ping >/dev/null 2>&1; then
            mysqladmin shutdown || true
        fi
        stop_daemon munged /run/munge/munged.pid
        log "stopped"
    else
        log "no cluster of this script to stop"
    fi
}

case "$MODE" in
    start) start ;;
    stop) stop ;;
    status) node_ready && sinfo ;;
    *) die "usage: $0 [start [--accounting] | stop | status]" ;;
esac
