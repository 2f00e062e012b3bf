#!/usr/bin/env bash
# boxvirt nested host: the ONE set of libvirt configuration edits, shared by
# the Debian and the Rocky image.
#
#   libvirt-config.sh build
#       At image build time: apply the edits to /etc/libvirt, then snapshot
#       pristine copies of /etc/libvirt and /var/lib/libvirt/qemu into
#       /usr/share/boxvirt/seed/ (the entrypoint seeds empty or half-filled
#       bind mounts from them).
#       Also removes the node-device driver module (see drop_nodedev_driver).
#   libvirt-config.sh runtime GROUP [default|hardened]
#       At container start (entrypoint): re-assert the same keys on the
#       bind-mounted /etc/libvirt (it may come from an older image or be hand
#       edited) and set the socket group to GROUP (the group with the host
#       user's GID). Only these keys are touched; a key already at its value
#       leaves the file untouched.
#   libvirt-config.sh set-key FILE KEY VALUE
#       One key, the same way (libvirt-tls.sh sets the TLS listener with it).
#
# The edits, and why:
#   qemu.conf    cgroup_controllers = [ ]   the container's cgroup fs is
#                read-only: "Failed to create v1 controller cpu for group"
#   libvirtd.conf
#     unix_sock_group    = GROUP    host user's GID: non-root host access
#     unix_sock_rw_perms = "0770"   owner + that group only
#     auth_unix_rw/ro    = "none"   polkit needs a system bus the container
#                                   has not got ("Unable to get system bus")
#     listen_tcp = 0, listen_tls = 0  no network listener at all (the
#                                   original published 16509/16514 with
#                                   nothing behind them); libvirtd runs
#                                   without --listen anyway
#   Profile "hardened" (`up --hardened`) instead:
#     auth_unix_rw/ro    = "sasl"   SCRAM-SHA-256 against the sasldb
#                                   /etc/libvirt/passwd.db (/etc/sasl2/libvirt.conf)
#     qemu.conf user/group = the packaged unprivileged QEMU user, with
#                dynamic_ownership = 1 (libvirt chowns each guest's files)
#     qemu.conf remember_owner = 0  its trusted.* xattrs need CAP_SYS_ADMIN
#     qemu.conf namespaces = [ ]    a mount namespace per QEMU needs
#                                   CAP_SYS_ADMIN too (dropped under --hardened)
#   Profile "default" removes those qemu.conf keys again (packaged defaults).
set -euo pipefail

LIBVIRT_ETC=${BOXVIRT_LIBVIRT_ETC:-/etc/libvirt}
QEMU_STATE=${BOXVIRT_QEMU_STATE:-/var/lib/libvirt/qemu}
SEED_DIR=${BOXVIRT_SEED_DIR:-/usr/share/boxvirt/seed}

log() { echo "libvirt-config: $*" >&2; }

# set_key FILE KEY VALUE
# Makes KEY = VALUE the one active assignment of KEY in FILE (libvirt's
# config syntax). Removes every uncommented assignment of KEY, including a
# multi-line list value, and appends the new one. Does not rewrite the file
# when KEY already has exactly VALUE. Keeps the file's inode and mode.
set_key() {
  local file=$1 key=$2 value=$3 current tmp
  [ -f "$file" ] || : >"$file"
  current=$(awk -v k="$key" '
      $0 ~ "^[ \t]*" k "[ \t]*=" { n++; line = $0 }
      END { if (n == 1) { sub("^[ \t]*" k "[ \t]*=[ \t]*", "", line); sub("[ \t]*#.*$", "", line); sub("[ \t]+$", "", line); print line } }
    ' "$file")
  if [ "$current" = "$value" ]; then
    return 0
  fi
  tmp=$(mktemp)
  awk -v k="$key" '
      skipping {                      # inside a removed multi-line [ ... ]
        if ($0 ~ /\]/) skipping = 0
        next
      }
      $0 ~ "^[ \t]*" k "[ \t]*=" {
        rest = $0; sub("^[^=]*=", "", rest)
        if (rest ~ /\[/ && rest !~ /\]/) skipping = 1
        next
      }
      { print }
    ' "$file" >"$tmp"
  printf '%s = %s  # set by boxvirt\n' "$key" "$value" >>"$tmp"
  cat "$tmp" >"$file"
  rm -f "$tmp"
  log "$file: $key = $value"
}

# del_key FILE KEY: no assignment of KEY that set_key made (a hand-made one
# stays); the file is untouched when there is none.
del_key() {
  local file=$1 key=$2 tmp
  [ -f "$file" ] || return 0
  grep -Eq "^[[:space:]]*${key}[[:space:]]*=.*# set by boxvirt" "$file" || return 0
  tmp=$(mktemp)
  awk -v k="$key" '!($0 ~ "^[ \t]*" k "[ \t]*=" && /# set by boxvirt/) { print }' "$file" >"$tmp"
  cat "$tmp" >"$file"
  rm -f "$tmp"
  log "$file: $key removed"
}

# The unprivileged user the packages made for QEMU.
qemu_user() {
  local u
  for u in libvirt-qemu qemu; do
    if id -u "$u" >/dev/null 2>&1; then echo "$u"; return 0; fi
  done
  return 1
}

apply_profile() {
  local profile=$1 qemu=$LIBVIRT_ETC/qemu.conf daemon=$LIBVIRT_ETC/libvirtd.conf user
  if [ "$profile" = hardened ] && user=$(qemu_user); then
    set_key "$daemon" auth_unix_rw '"sasl"'
    set_key "$daemon" auth_unix_ro '"sasl"'
    set_key "$qemu" user "\"$user\""
    set_key "$qemu" group "\"$(id -gn "$user")\""
    set_key "$qemu" dynamic_ownership 1
    set_key "$qemu" remember_owner 0
    set_key "$qemu" namespaces '[ ]'
    return 0
  fi
  [ "$profile" = hardened ] && log "no unprivileged QEMU user in the image: default profile"
  set_key "$daemon" auth_unix_rw '"none"'
  set_key "$daemon" auth_unix_ro '"none"'
  local key
  for key in user group dynamic_ownership remember_owner namespaces; do
    del_key "$qemu" "$key"
  done
}

# SCRAM-SHA-256 only, against a sasldb on the data dir's /etc/libvirt (it
# survives re-creation). Only read when libvirtd.conf says "sasl".
sasl_config() {
  mkdir -p /etc/sasl2
  printf 'mech_list: scram-sha-256\nsasldb_path: /etc/libvirt/passwd.db\n' >/etc/sasl2/libvirt.conf
  log "/etc/sasl2/libvirt.conf: scram-sha-256, sasldb /etc/libvirt/passwd.db"
}

apply_edits() {
  local group=$1 profile=${2:-default}
  mkdir -p "$LIBVIRT_ETC"
  set_key "$LIBVIRT_ETC/qemu.conf" cgroup_controllers '[ ]'
  set_key "$LIBVIRT_ETC/libvirtd.conf" unix_sock_group "\"$group\""
  set_key "$LIBVIRT_ETC/libvirtd.conf" unix_sock_rw_perms '"0770"'
  apply_profile "$profile"
  set_key "$LIBVIRT_ETC/libvirtd.conf" listen_tcp 0
  set_key "$LIBVIRT_ETC/libvirtd.conf" listen_tls 0
}

# The node-device driver has nothing to offer in a container (no udevd, no
# devices to pass through) and its udev thread can hold libvirtd's shutdown:
# a `docker stop` within seconds of a start hung for the full stop timeout
# (10 s, then SIGKILL) in about one stop in three, with libvirtd's
# daemon-shutdown thread waiting on the udev-event thread. Without the
# module libvirtd starts and stops promptly; `virsh nodedev-*` says the
# driver is missing.
drop_nodedev_driver() {
  local so
  for so in /usr/lib*/libvirt/connection-driver/libvirt_driver_nodedev.so \
    /usr/lib/*/libvirt/connection-driver/libvirt_driver_nodedev.so; do
    if [ -e "$so" ]; then
      rm -f "$so"
      log "removed $so (node devices: not in a container)"
    fi
  done
}

snapshot_seed() {
  mkdir -p "$SEED_DIR"
  rm -rf "$SEED_DIR/etc-libvirt" "$SEED_DIR/var-lib-libvirt-qemu"
  cp -a "$LIBVIRT_ETC" "$SEED_DIR/etc-libvirt"
  mkdir -p "$QEMU_STATE"
  cp -a "$QEMU_STATE" "$SEED_DIR/var-lib-libvirt-qemu"
  log "seed snapshot in $SEED_DIR"
}

case "${1:-}" in
  build)
    # "libvirt" exists on both distributions (created by the libvirt
    # packages); the entrypoint replaces it with the host GID's group.
    apply_edits libvirt
    sasl_config
    drop_nodedev_driver
    snapshot_seed
    ;;
  runtime)
    [ -n "${2:-}" ] || { log "usage: $0 runtime GROUP"; exit 2; }
    apply_edits "$2" "${3:-default}"
    ;;
  set-key)
    [ $# -eq 4 ] || { log "usage: $0 set-key FILE KEY VALUE"; exit 2; }
    set_key "$2" "$3" "$4"
    ;;
  *)
    log "usage: $0 build | runtime GROUP | set-key FILE KEY VALUE"
    exit 2
    ;;
esac
