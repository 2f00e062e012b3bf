#!/usr/bin/env bash
# Runs a real libvirtd (+ virtlogd) for boxvirt's live tests, inside the
# network namespace "boxvirt-live", so that libvirt's bridges, dnsmasq and
# firewall rules never touch the machine's own network. Clients on the host
# reach it through the unix socket /run/libvirt/libvirt-sock as usual.
#
# Usage: live-libvirtd.sh start|fresh|stop|status|env|teardown
#   start     create the netns (if missing) and start the daemons in it
#             (no-op if they already answer); defines nothing: each test
#             makes the pool and networks it needs, through boxvirt
#   fresh     teardown, then wipe the system libvirtd's persistent state
#             (domains, networks, pools, volumes in the default pool dir,
#             NVRAM, leases), then start: the daemon begins with EMPTY state,
#             as on a new machine. tests/run-all.sh does this on every run,
#             so a test that leans on another's leftovers fails here first.
#             This machine's system libvirt state is the test suite's.
#   stop      stop the daemons this script started (by its pid files); like
#             any libvirtd restart, running guests and networks keep running
#             (in the netns) and the next "start" adopts them again
#   status    say whether the daemon answers (exit 0) or not (exit 1)
#   env       print KEY=VALUE lines for tests (LIBVIRT_DEFAULT_URI, ...)
#   teardown  destroy every running domain and network of this daemon, stop
#             the daemons and delete the netns
# Logs: ${BOXVIRT_TEST_CACHE:-/var/cache/boxvirt-test}/live/. Needs root.
# There is no systemd here: the daemons are started directly with -d.
set -euo pipefail

NS=${BOXVIRT_LIVE_NETNS:-boxvirt-live}
CACHE=${BOXVIRT_TEST_CACHE:-/var/cache/boxvirt-test}
LOGDIR=$CACHE/live
RUNDIR=/run/$NS                    # pid files (gone after a reboot, like the daemons)
URI=qemu:///system
SOCK=/run/libvirt/libvirt-sock

log() { echo "live-libvirtd: $*" >&2; }
die() { echo "live-libvirtd: error: $*" >&2; exit 1; }

answers() { timeout 10 virsh -c "$URI" version >/dev/null 2>&1; }

# pid in FILE if that process is alive and is NAME
pid_of() { # FILE NAME
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] && echo "$pid"
}

in_ns() { ip netns identify "$1" 2>/dev/null | grep -qx "$NS"; }   # PID in our netns?

# pids of NAME that share this machine's /run (so /run/libvirt): daemons in
# containers have their own and are none of our business
host_pids() { # NAME
  local p me
  me=$(stat -L -c %d:%i /run)
  for p in $(pgrep -x "$1" || true); do
    [ "$(stat -L -c %d:%i "/proc/$p/root/run" 2>/dev/null)" = "$me" ] && echo "$p"
  done
  return 0
}

ns_exists() { ip netns list | awk '{ print $1 }' | grep -qx "$NS"; }

# libvirtd's own configuration (the system one would ask polkit, which needs
# a D-Bus system bus that is not here): root and group "libvirt" may connect.
write_conf() {
  cat > "$LOGDIR/libvirtd.conf" <<EOF
# written by tests/harness/live-libvirtd.sh
unix_sock_group = "libvirt"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0770"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:$LOGDIR/libvirtd.log"
EOF
  cat > "$LOGDIR/virtlogd.conf" <<EOF
# written by tests/harness/live-libvirtd.sh
log_outputs = "3:file:$LOGDIR/virtlogd.log"
EOF
}

fail_with_log() {
  echo "live-libvirtd: error: $*" >&2
  for f in "$LOGDIR/libvirtd.log" "$LOGDIR/libvirtd.out" "$LOGDIR/virtlogd.log" "$LOGDIR/virtlogd.out"; do
    [ -s "$f" ] && { echo "--- tail of $f" >&2; tail -n 30 "$f" >&2; }
  done
  exit 1
}

cmd_start() {
  [ "$(id -u)" -eq 0 ] || die "run as root"
  command -v libvirtd >/dev/null || die "libvirtd is not installed (tests/harness/install-deps.sh)"
  mkdir -p "$LOGDIR" "$RUNDIR"

  # 1. the network namespace, with loopback up
  ns_exists || ip netns add "$NS"
  ip netns exec "$NS" ip link set lo up

  # 2. refuse a libvirtd that is not ours to manage: one outside the netns
  #    (e.g. started by a package's postinst) would put bridges and firewall
  #    rules on the host's own network
  local ours p
  ours=$(pid_of "$RUNDIR/libvirtd.pid" libvirtd || true)
  for p in $(host_pids libvirtd); do
    [ "$p" = "$ours" ] && continue
    if in_ns "$p"; then
      log "note: libvirtd $p runs in $NS but was not started by this script"
      ours=$p
    else
      die "a libvirtd (pid $p: $(tr '\0' ' ' < "/proc/$p/cmdline")) runs outside netns $NS; stop it first (this script stops only daemons it started)"
    fi
  done
  if [ -n "$ours" ] && answers; then
    log "libvirtd already running in $NS (pid $ours)"
    return 0
  fi
  [ -n "$ours" ] && fail_with_log "libvirtd $ours runs in $NS but $SOCK does not answer"

  write_conf
  # 3. virtlogd (serial/console logs go through it); any running one will do
  if [ -z "$(host_pids virtlogd)" ]; then
    ip netns exec "$NS" virtlogd -d --pid-file "$RUNDIR/virtlogd.pid" \
      --config "$LOGDIR/virtlogd.conf" >>"$LOGDIR/virtlogd.out" 2>&1 ||
      fail_with_log "virtlogd did not start"
  elif [ -z "$(pid_of "$RUNDIR/virtlogd.pid" virtlogd || true)" ]; then
    log "note: using a virtlogd not started by this script (pid $(host_pids virtlogd | tr '\n' ' '))"
  fi

  # 4. libvirtd, then wait up to 30 s for its socket to answer
  ip netns exec "$NS" libvirtd -d --pid-file "$RUNDIR/libvirtd.pid" \
    --config "$LOGDIR/libvirtd.conf" >>"$LOGDIR/libvirtd.out" 2>&1 ||
    fail_with_log "libvirtd did not start"
  local i
  for i in $(seq 60); do
    answers && break
    [ -z "$(pid_of "$RUNDIR/libvirtd.pid" libvirtd || true)" ] && [ "$i" -gt 4 ] &&
      fail_with_log "libvirtd exited"
    sleep 0.5
  done
  answers || fail_with_log "$SOCK did not answer within 30 s"
  log "libvirtd running in netns $NS (pid $(cat "$RUNDIR/libvirtd.pid")), logs in $LOGDIR"
}

# What the system libvirtd keeps between runs (config, then state). Only the
# contents go: the directories themselves belong to the packages.
STATE_DIRS=(
  /etc/libvirt/qemu /etc/libvirt/qemu/autostart
  /etc/libvirt/qemu/networks /etc/libvirt/qemu/networks/autostart
  /etc/libvirt/storage /etc/libvirt/storage/autostart
  /var/lib/libvirt/images /var/lib/libvirt/qemu/nvram
  /var/lib/libvirt/qemu/snapshot /var/lib/libvirt/qemu/checkpoint
  /var/lib/libvirt/dnsmasq
  /run/libvirt/qemu /run/libvirt/network /run/libvirt/storage
)

cmd_fresh() {
  [ "$(id -u)" -eq 0 ] || die "run as root"
  cmd_teardown
  # A daemon that is not ours (refused by start) must not lose its state.
  [ -z "$(host_pids libvirtd)" ] || die "a libvirtd still runs (pids $(host_pids libvirtd | tr '\n' ' ')); not wiping its state"
  local d n=0 f
  for d in "${STATE_DIRS[@]}"; do
    [ -d "$d" ] || continue
    for f in "$d"/*; do
      [ -e "$f" ] || [ -L "$f" ] || continue
      # subdirectories listed above are emptied in their own turn
      [ -d "$f" ] && [ ! -L "$f" ] && continue
      chattr -i "$f" 2>/dev/null || true   # a test may have left a file immutable
      rm -f "$f" && n=$((n + 1))
    done
  done
  log "wiped $n leftover files of libvirt's state (domains, networks, pools, volumes)"
  cmd_start
  local left
  left=$(virsh -c "$URI" list --all --name; virsh -c "$URI" net-list --all --name; virsh -c "$URI" pool-list --all --name)
  [ -z "$(echo "$left" | tr -d '[:space:]')" ] || die "state not empty after wiping: $left"
  log "daemon state is empty: no domain, network or pool"
}

stop_pid() { # FILE NAME
  local pid i
  pid=$(pid_of "$1" "$2") || { rm -f "$1"; return 0; }
  kill -TERM "$pid"
  for i in $(seq 50); do
    [ -d "/proc/$pid" ] || break
    sleep 0.2
  done
  if [ -d "/proc/$pid" ]; then
    log "$2 $pid ignored SIGTERM for 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
  log "stopped $2 ($pid)"
}

cmd_stop() {
  [ "$(id -u)" -eq 0 ] || die "run as root"
  stop_pid "$RUNDIR/libvirtd.pid" libvirtd
  # running guests write their serial logs through virtlogd: keep it for them
  local guests=0 p
  if ns_exists; then
    for p in $(ip netns pids "$NS"); do
      case "$(cat "/proc/$p/comm" 2>/dev/null)" in qemu-system-*) guests=$((guests + 1)) ;; esac
    done
  fi
  if [ "$guests" -gt 0 ] && [ -n "$(pid_of "$RUNDIR/virtlogd.pid" virtlogd || true)" ]; then
    log "virtlogd left running: $guests guest(s) still log through it"
  else
    stop_pid "$RUNDIR/virtlogd.pid" virtlogd
  fi
}

# Running guests and networks (qemu, dnsmasq) outlive libvirtd, as with any
# libvirtd restart; the next "start" adopts them again. "teardown" ends them.
destroy_all() {
  local d n
  [ -n "$(pid_of "$RUNDIR/libvirtd.pid" libvirtd || true)" ] && answers || return 0
  for d in $(virsh -c "$URI" list --name); do
    virsh -c "$URI" destroy "$d" >/dev/null && log "destroyed domain $d"
  done
  for n in $(virsh -c "$URI" net-list --name); do
    virsh -c "$URI" net-destroy "$n" >/dev/null && log "stopped network $n"
  done
}

cmd_status() {
  local pid
  pid=$(pid_of "$RUNDIR/libvirtd.pid" libvirtd || true)
  if answers; then
    echo "libvirtd answers on $SOCK (pid ${pid:-unknown: not started by this script}, netns $NS)"
    return 0
  fi
  echo "libvirtd does not answer on $SOCK${pid:+ (pid $pid is running)}"
  return 1
}

cmd_env() {
  echo "LIBVIRT_DEFAULT_URI=$URI"
  echo "BOXVIRT_LIVE_URI=$URI"
  echo "BOXVIRT_LIVE_NETNS=$NS"
  echo "BOXVIRT_LIVE_LOGDIR=$LOGDIR"
  echo "BOXVIRT_TEST_CACHE=$CACHE"
  echo "BOXVIRT_TINY_DIR=$CACHE/tiny"
}

cmd_teardown() {
  [ "$(id -u)" -eq 0 ] || die "run as root"
  if ns_exists; then
    # guests left by a stopped daemon: start it again so that it can end them
    [ -n "$(ip netns pids "$NS")" ] && ! answers && cmd_start
    destroy_all
    cmd_stop
    local left
    left=$(ip netns pids "$NS" | tr '\n' ' ')
    [ -z "$left" ] || die "processes still in netns $NS (pids $left); not deleting it"
    ip netns del "$NS"
    log "deleted netns $NS"
  else
    cmd_stop
  fi
}

case "${1:-}" in
  start) cmd_start ;;
  fresh) cmd_fresh ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  teardown) cmd_teardown ;;
  *) echo "usage: $0 start|fresh|stop|status|env|teardown" >&2; exit 2 ;;
esac
