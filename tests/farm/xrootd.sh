#!/usr/bin/env bash
# An XRootD server on localhost, for the tests marked `xrootd` (inputs read as on the grid).
#
#   tests/farm/xrootd.sh [start]     install (apt) and start it
#   tests/farm/xrootd.sh status      exit 0 when it accepts connections
#   tests/farm/xrootd.sh stop        stop it
#
# Debian's xrootd-server (5.5), run as the `xrootd` user, read-only, on port
# ${HEPLINE_XROOTD_PORT:-1094} of 127.0.0.1 only (`xrd.allow host`). It serves the folder
# ${HEPLINE_XROOTD_ROOT:-/var/lib/hepline-xrootd/data} (world-writable, sticky, like /tmp):
# a file D/x/y.root there is root://localhost:1094//x/y.root. Idempotent.
set -euo pipefail

MODE=${1:-start}
PORT=${HEPLINE_XROOTD_PORT:-1094}
ROOT=${HEPLINE_XROOTD_ROOT:-/var/lib/hepline-xrootd/data}
BASE=/var/lib/hepline-xrootd
CFG=$BASE/xrootd.cfg
PIDDIR=$BASE/run
LOG=/var/log/hepline-xrootd/xrootd.log
TIMEOUT=${HEPLINE_FARM_TIMEOUT:-60}

log() { echo "xrootd.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

listening() {  # the port accepts a TCP connection
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null
}

pidfile() { ls "$PIDDIR"/*/xrootd.pid "$PIDDIR"/xrootd.pid 2>/dev/null | head -1 || true; }

start() {
    [[ $EUID -eq 0 ]] || die "run as root (it installs packages and starts a daemon)"
    if ! dpkg-query -W -f='${Status}' xrootd-server 2>/dev/null | grep -q "ok installed"; then
        log "installing xrootd-server (apt)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            xrootd-server >/dev/null 2>&1 || {
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                xrootd-server >/dev/null
        }
    fi
    install -d -m 1777 "$ROOT"
    install -d -o xrootd -g xrootd "$PIDDIR" "$(dirname "$LOG")" "$BASE/adm"
    local want
    want=$(cat <<CONF
# written by hepline tests/farm/xrootd.sh
all.export / r/o
oss.localroot $ROOT
all.adminpath $BASE/adm
all.pidpath $PIDDIR
xrd.port $PORT
xrd.allow host localhost
xrd.allow host 127.0.0.1
CONF
)
    local pf
    pf=$(pidfile)
    if [[ "$(cat "$CFG" 2>/dev/null)" == "$want" && -n "$pf" ]] && kill -0 "$(cat "$pf")" 2>/dev/null \
        && listening; then
        log "already serving $ROOT on root://localhost:$PORT"
        return 0
    fi
    stop >/dev/null 2>&1 || true
    printf '%s\n' "$want" >"$CFG"
    # its working folder (-n hepline: <cwd>/hepline) must be writable by the xrootd user
    (cd "$PIDDIR" && xrootd -b -R xrootd -c "$CFG" -l "$LOG" -p "$PORT" -n hepline >/dev/null)
    local deadline=$((SECONDS + TIMEOUT))
    until listening; do
        ((SECONDS < deadline)) || die "xrootd not listening on port $PORT after ${TIMEOUT}s (log: $LOG*)"
        sleep 0.2
    done
    log "serving $ROOT on root://localhost:$PORT (read-only)"
}

stop() {
    local pf
    pf=$(pidfile)
    if [[ -n "$pf" ]] && kill -0 "$(cat "$pf")" 2>/dev/null; then
        local pid
        pid=$(cat "$pf")
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        rm -f "$pf"
        log "stopped"
    else
        log "not running"
    fi
}

case "$MODE" in
    start) start ;;
    stop) stop ;;
    status) listening ;;
    *) die "usage: $0 [start | stop | status]" ;;
esac
