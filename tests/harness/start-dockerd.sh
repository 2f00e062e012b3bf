#!/usr/bin/env bash
# Starts a Docker engine in the background when none answers on
# /var/run/docker.sock, then waits (up to 60 s) until `docker info` answers.
# Idempotent: does nothing when an engine already answers.
#   log:      /var/log/boxvirt-dockerd.log
#   pid file: /run/boxvirt-dockerd.pid
set -euo pipefail

SOCK=/var/run/docker.sock
LOG=/var/log/boxvirt-dockerd.log
PIDFILE=/run/boxvirt-dockerd.pid
TIMEOUT=${BOXVIRT_DOCKERD_TIMEOUT:-60}

die() { echo "start-dockerd: error: $*" >&2; exit 1; }

engine_answers() {
  [ -S "$SOCK" ] && timeout 10 docker -H "unix://$SOCK" info >/dev/null 2>&1
}

if engine_answers; then
  echo "start-dockerd: engine already answers on $SOCK"
  exit 0
fi

command -v dockerd >/dev/null 2>&1 || die "dockerd not installed (apt-get install docker.io)"
command -v docker >/dev/null 2>&1 || die "docker CLI not installed"
[ "$(id -u)" -eq 0 ] || die "must run as root to start dockerd"

# A dockerd we started earlier may still be booting: wait for it instead of
# starting a second one (they would fight over /var/lib/docker).
pid=""
if [ -f "$PIDFILE" ]; then
  pid=$(cat "$PIDFILE" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q dockerd "/proc/$pid/comm" 2>/dev/null; then
    echo "start-dockerd: dockerd (pid $pid) already running, waiting for it"
  else
    pid=""
  fi
fi

if [ -z "$pid" ]; then
  # dockerd's own pid file (/var/run/docker.pid) left by a dead engine blocks a start.
  if [ -f /var/run/docker.pid ]; then
    old=$(cat /var/run/docker.pid 2>/dev/null || true)
    if [ -n "$old" ] && kill -0 "$old" 2>/dev/null; then
      die "a dockerd (pid $old) runs but does not answer on $SOCK; see $LOG"
    fi
    rm -f /var/run/docker.pid
  fi
  echo "start-dockerd: starting dockerd (log $LOG)"
  nohup dockerd >>"$LOG" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDFILE"
fi

for _ in $(seq 1 "$TIMEOUT"); do
  if engine_answers; then
    echo "start-dockerd: engine answers (dockerd pid $pid)"
    exit 0
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "start-dockerd: dockerd (pid $pid) exited; last log lines:" >&2
    tail -n 30 "$LOG" >&2 || true
    rm -f "$PIDFILE"
    exit 1
  fi
  sleep 1
done

echo "start-dockerd: engine did not answer within ${TIMEOUT}s; last log lines:" >&2
tail -n 30 "$LOG" >&2 || true
exit 1
