#!/usr/bin/env bash
# boxvirt nested host: container entrypoint (ONE file, shared by the Debian
# and the Rocky image).
#
#   entrypoint.sh [run]      prepare the container, then exec supervisord
#   entrypoint.sh net-default  (supervisord one-shot) start + autostart the
#                            libvirt network "default" once libvirt answers
#   entrypoint.sh health     HEALTHCHECK: libvirt answers on its socket and
#                            sshd runs
#
# Runtime contract (docker run / compose / boxvirt's Docker API calls):
#   env    HOST_UID, HOST_GID        the host user's ids (socket group, user
#                                    record, owner of generated client keys)
#          BOXMAN_INSTANCE_NAME      instance name (ssh config host alias)
#          BOXMAN_SSH_PORT           host-side port of container port 22
#          BOXVIRT_TLS=1             optional: libvirtd also listens with TLS
#                                    (libvirt-tls.sh; certificates mounted
#                                    read-only under /etc/pki by boxvirt)
#          BOXVIRT_HARDENED          1: `up --hardened` (hardened.sh: SASL auth,
#                                    read-only root, unprivileged QEMU)
#          BOXMAN_HOST_DATA_DIR      optional, absolute host path of DATA:
#                                    when set, write DATA/ssh/boxman.conf and
#                                    DATA/ssh/known_hosts if missing
#   mounts DATA/libvirt-run  -> /run/libvirt
#          DATA/images       -> /var/lib/libvirt/images
#          DATA/ssh          -> /data/ssh
#          DATA/libvirt-etc  -> /etc/libvirt
#          DATA/libvirt-qemu -> /var/lib/libvirt/qemu
#          DATA/auth         -> /data/auth (read-only; --hardened only)
#
# Deliberately NOT `set -e`: every step logs and carries on, so a
# half-filled data dir degrades one feature instead of killing PID 1 and
# restart-looping the container. Only a missing supervisord is fatal.
set -o pipefail

SEED_DIR=/usr/share/boxvirt/seed
LIBEXEC=/usr/local/libexec/boxvirt
SSH_DIR=/data/ssh
HOST_KEY=$SSH_DIR/host/ssh_host_ed25519_key
QEMU_USER=qemu_user
HOST_USER_NAME=boxhost
LIBVIRT_URI=qemu:///system

INSTANCE=${BOXMAN_INSTANCE_NAME:-default}
SSH_PORT=${BOXMAN_SSH_PORT:-2222}
HOST_UID=${HOST_UID:-}
HOST_GID=${HOST_GID:-}
HARDENED=${BOXVIRT_HARDENED:-0}

log() { echo "entrypoint: $*" >&2; }
warn() { echo "entrypoint: WARNING: $*" >&2; }

is_uint() { case "$1" in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac; }

if [ "$HARDENED" = 1 ]; then
  # shellcheck source=docker/hardened.sh
  . "$LIBEXEC/hardened.sh" || { echo "entrypoint: FATAL: cannot read hardened.sh" >&2; exit 1; }
  # In-container clients (net-default, health) authenticate too.
  export LIBVIRT_AUTH_FILE=$HARDENED_AUTH_FILE
fi

# --- 1. host user's ids ------------------------------------------------------
# libvirt resolves the uid of every unix-socket client to a user record
# ("Failed to find user record for uid '1000'" otherwise), and the socket
# group must carry the host user's GID for non-root access without sudo.
SOCK_GROUP=libvirt
setup_host_ids() {
  if [ "$HARDENED" = 1 ]; then
    hardened_skeleton
    hardened_host_ids
    return 0
  fi
  if ! is_uint "$HOST_GID"; then
    warn "HOST_GID unset or not a number ('$HOST_GID'): socket group stays '$SOCK_GROUP'; non-root host users cannot use the socket"
  else
    local grp
    grp=$(getent group "$HOST_GID" | cut -d: -f1)
    if [ -z "$grp" ]; then
      if getent group "$HOST_USER_NAME" >/dev/null; then
        # Left from an earlier start with another HOST_GID.
        groupmod -g "$HOST_GID" "$HOST_USER_NAME" || warn "groupmod -g $HOST_GID $HOST_USER_NAME failed"
      else
        groupadd -g "$HOST_GID" "$HOST_USER_NAME" || warn "groupadd -g $HOST_GID $HOST_USER_NAME failed"
      fi
      grp=$(getent group "$HOST_GID" | cut -d: -f1)
    fi
    if [ -n "$grp" ]; then
      SOCK_GROUP=$grp
      # usermod only when needed: every process costs here (start time).
      local members
      members=$(getent group "$grp")
      case ",${members##*:}," in
        *",$QEMU_USER,"*) ;;
        *) usermod -aG "$grp" "$QEMU_USER" || warn "cannot add $QEMU_USER to group $grp" ;;
      esac
      log "host GID $HOST_GID -> group '$grp' (libvirt socket group)"
    else
      warn "no group with GID $HOST_GID; socket group stays '$SOCK_GROUP'"
    fi
  fi

  if ! is_uint "$HOST_UID"; then
    warn "HOST_UID unset or not a number ('$HOST_UID'): no user record for the host user"
  elif getent passwd "$HOST_UID" >/dev/null; then
    log "host UID $HOST_UID -> user '$(getent passwd "$HOST_UID" | cut -d: -f1)' (existing)"
  else
    local gid=$HOST_GID
    is_uint "$gid" && getent group "$gid" >/dev/null || gid=$(id -g nobody 2>/dev/null || echo 65534)
    if id -u "$HOST_USER_NAME" >/dev/null 2>&1; then
      usermod -u "$HOST_UID" -g "$gid" "$HOST_USER_NAME" || warn "usermod -u $HOST_UID $HOST_USER_NAME failed"
    else
      useradd -M -N -u "$HOST_UID" -g "$gid" -d /nonexistent -s /usr/sbin/nologin \
        -c "boxvirt host user" "$HOST_USER_NAME" || warn "useradd -u $HOST_UID $HOST_USER_NAME failed"
    fi
    getent passwd "$HOST_UID" >/dev/null && log "host UID $HOST_UID -> user '$HOST_USER_NAME' (created)"
  fi
}

# --- 2. libvirt state: seed, never overwrite ---------------------------------
# seed SRC DST [own]: copy what is missing in DST from SRC; existing files
# win. With "own", the top directory (the bind mount itself) also gets the
# packaged owner/mode.
seed() {
  local src=$1 dst=$2 own=${3:-}
  if [ ! -d "$src" ]; then
    warn "seed $src missing in the image; $dst not seeded"
    return 0
  fi
  mkdir -p "$dst" || { warn "cannot create $dst"; return 0; }
  local top_owner top_mode
  top_owner=$(stat -c '%u:%g' "$dst" 2>/dev/null)
  top_mode=$(stat -c '%a' "$dst" 2>/dev/null)
  # -n: never overwrite; -a: keep owners/modes/symlinks. Exit status is
  # ignored (coreutils >= 9.2 reports skipped files as failures).
  cp -a -n "$src/." "$dst/" 2>/dev/null || true
  # cp -a of "src/." also copies the top directory's owner/mode onto dst.
  if [ "$own" = own ]; then
    chown --reference="$src" "$dst" 2>/dev/null || true
    chmod --reference="$src" "$dst" 2>/dev/null || true
  elif [ -n "$top_owner" ]; then
    chown "$top_owner" "$dst" 2>/dev/null || true
    chmod "$top_mode" "$dst" 2>/dev/null || true
  fi
  local missing
  missing=$(cd "$src" && find . -mindepth 1 | while read -r f; do [ -e "$dst/$f" ] || [ -L "$dst/$f" ] || echo "$f"; done | head -n 5)
  if [ -n "$missing" ]; then
    warn "could not seed into $dst: $(echo "$missing" | tr '\n' ' ')"
  fi
}

setup_libvirt() {
  # /etc/libvirt's top directory keeps the host's owner (the host user can
  # still tidy DATA/libvirt-etc); /var/lib/libvirt/qemu must belong to the
  # qemu user (per-domain dirs there are used by the QEMU process).
  seed "$SEED_DIR/etc-libvirt" /etc/libvirt
  seed "$SEED_DIR/var-lib-libvirt-qemu" /var/lib/libvirt/qemu own
  local profile=default
  [ "$HARDENED" = 1 ] && profile=hardened
  "$LIBEXEC/libvirt-config.sh" runtime "$SOCK_GROUP" "$profile" || warn "libvirt config edits failed"
  [ "$HARDENED" = 1 ] && hardened_sasl
  # /run/libvirt is a bind mount that outlives the container: whatever is in
  # it (sockets, pid files, status XML of domains and networks) belongs to
  # processes that died with the previous container. libvirtd must not try
  # to reconnect to them.
  mkdir -p /run/libvirt
  find /run/libvirt -mindepth 1 -delete 2>/dev/null || warn "could not clear stale /run/libvirt"
  mkdir -p /var/lib/libvirt/images
}

# Passed-through device nodes keep the HOST's group id, which means nothing
# here: /dev/kvm owned by the host's kvm gid is not usable by the container's
# qemu user, so libvirt falls back to TCG and, worse, re-probes QEMU's
# capabilities on every start ("KVM was enabled when probing ... but it is
# not available now"). The nodes live in the container's own /dev, so
# regrouping them changes nothing on the host.
setup_devices() {
  if [ -c /dev/kvm ]; then
    if getent group kvm >/dev/null; then
      if ! { chgrp kvm /dev/kvm && chmod 0660 /dev/kvm; }; then
        warn "cannot hand /dev/kvm to group kvm"
      fi
    fi
    log "/dev/kvm present"
  else
    log "no /dev/kvm: guests run with TCG (type='qemu') only"
  fi
  [ -c /dev/net/tun ] || warn "no /dev/net/tun: libvirt cannot create tap devices for guest NICs"
}

# --- 3. ssh ------------------------------------------------------------------
keygen() { # keygen FILE COMMENT
  ssh-keygen -q -t ed25519 -N '' -C "$2" -f "$1" </dev/null >/dev/null
}

host_owned() { # host_owned FILE...: hand generated files to the host user
  if is_uint "$HOST_UID" && is_uint "$HOST_GID"; then
    chown "$HOST_UID:$HOST_GID" "$@" 2>/dev/null || warn "cannot chown $* to $HOST_UID:$HOST_GID"
  fi
}

setup_ssh() {
  local new_host_key=0
  mkdir -p "$SSH_DIR" "$SSH_DIR/host" /run/sshd
  chmod 0755 /run/sshd 2>/dev/null

  # Client key pair (boxvirt writes it from the host; compose users get one).
  if [ ! -s "$SSH_DIR/id_ed25519" ]; then
    rm -f "$SSH_DIR/id_ed25519.pub"
    if keygen "$SSH_DIR/id_ed25519" "boxman-$INSTANCE"; then
      log "generated client key $SSH_DIR/id_ed25519"
    else
      warn "ssh-keygen for the client key failed"
    fi
  elif [ ! -s "$SSH_DIR/id_ed25519.pub" ]; then
    ssh-keygen -y -f "$SSH_DIR/id_ed25519" >"$SSH_DIR/id_ed25519.pub" 2>/dev/null ||
      warn "cannot derive $SSH_DIR/id_ed25519.pub"
  fi
  if [ -f "$SSH_DIR/id_ed25519" ]; then
    chmod 0600 "$SSH_DIR/id_ed25519"
    chmod 0644 "$SSH_DIR/id_ed25519.pub" 2>/dev/null
    host_owned "$SSH_DIR/id_ed25519" "$SSH_DIR/id_ed25519.pub"
  fi

  # qemu_user's authorized_keys: the client public key.
  local home
  home=$(getent passwd "$QEMU_USER" | cut -d: -f6)
  home=${home:-/home/$QEMU_USER}
  install -d -m 0700 -o "$QEMU_USER" -g "$QEMU_USER" "$home/.ssh"
  if [ -s "$SSH_DIR/id_ed25519.pub" ]; then
    install -m 0600 -o "$QEMU_USER" -g "$QEMU_USER" "$SSH_DIR/id_ed25519.pub" "$home/.ssh/authorized_keys"
  else
    warn "no $SSH_DIR/id_ed25519.pub: nobody can log in over SSH"
  fi

  # sshd host key: generated once, kept in the data dir so it survives
  # rebuilds and re-creation (the host pins it). Private part root 0600;
  # the directory and .pub are readable so the host user can pin the key.
  if [ ! -s "$HOST_KEY" ]; then
    rm -f "$HOST_KEY" "$HOST_KEY.pub"
    if keygen "$HOST_KEY" "boxman-$INSTANCE-host"; then
      new_host_key=1
      log "generated sshd host key $HOST_KEY"
    else
      warn "ssh-keygen for the host key failed: sshd will not start"
    fi
  fi
  if [ -s "$HOST_KEY" ] && [ ! -s "$HOST_KEY.pub" ]; then
    ssh-keygen -y -f "$HOST_KEY" >"$HOST_KEY.pub" 2>/dev/null
  fi
  chown root:root "$HOST_KEY" 2>/dev/null
  chmod 0600 "$HOST_KEY" 2>/dev/null
  chmod 0644 "$HOST_KEY.pub" 2>/dev/null
  chmod 0755 "$SSH_DIR/host" 2>/dev/null
  host_owned "$SSH_DIR/host" "$HOST_KEY.pub"
  # The fingerprint only when the key is new (ssh-keygen costs start time).
  [ "$new_host_key" = 1 ] && [ -s "$HOST_KEY.pub" ] && log "sshd host key: $(ssh-keygen -l -f "$HOST_KEY.pub" 2>/dev/null)"

  # Compose users: an ssh config + known_hosts with absolute HOST paths
  # (boxvirt writes the same two files itself, in the same format).
  if [ -n "${BOXMAN_HOST_DATA_DIR:-}" ]; then
    case "$BOXMAN_HOST_DATA_DIR" in
      /*) write_ssh_config "$new_host_key" ;;
      *) warn "BOXMAN_HOST_DATA_DIR='$BOXMAN_HOST_DATA_DIR' is not absolute: no boxman.conf written" ;;
    esac
  fi
}

known_hosts_line() {
  local hostpat="[127.0.0.1]:$SSH_PORT"
  [ "$SSH_PORT" = 22 ] && hostpat=127.0.0.1
  # "<host> <type> <base64>" (the key's comment dropped)
  awk -v h="$hostpat" '{ print h, $1, $2 }' "$HOST_KEY.pub"
}

write_ssh_config() {
  local new_host_key=$1 d=${BOXMAN_HOST_DATA_DIR%/}
  if [ ! -e "$SSH_DIR/boxman.conf" ]; then
    cat >"$SSH_DIR/boxman.conf" <<EOF
Host boxman-$INSTANCE
    HostName 127.0.0.1
    Port $SSH_PORT
    User $QEMU_USER
    IdentityFile $d/ssh/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $d/ssh/known_hosts
    StrictHostKeyChecking yes
EOF
    chmod 0644 "$SSH_DIR/boxman.conf"
    host_owned "$SSH_DIR/boxman.conf"
    log "wrote $d/ssh/boxman.conf (ssh -F $d/ssh/boxman.conf boxman-$INSTANCE)"
  fi
  if [ -s "$HOST_KEY.pub" ] && { [ ! -s "$SSH_DIR/known_hosts" ] || [ "$new_host_key" = 1 ]; }; then
    known_hosts_line >"$SSH_DIR/known_hosts"
    chmod 0644 "$SSH_DIR/known_hosts"
    host_owned "$SSH_DIR/known_hosts"
    log "wrote $d/ssh/known_hosts"
  fi
}

# --- 4. network "default" (run by supervisord after libvirtd) ---------------
net_default() {
  local up=0 state
  # boxvirt's `up` defines it natively, with boxvirt's block of address
  # slots; defining it here too would race with that.
  if [ "${BOXVIRT_NET_DEFAULT:-}" = client ]; then
    echo "net-default: left to boxvirt up (BOXVIRT_NET_DEFAULT=client)"
    return 0
  fi
  # A connection waits while libvirtd initializes; the loop only covers the
  # time before libvirtd has made its socket.
  for _ in $(seq 1 600); do
    if virsh -q -c "$LIBVIRT_URI" version >/dev/null 2>&1; then up=1; break; fi
    sleep 0.2
  done
  if [ "$up" != 1 ]; then
    echo "net-default: libvirt did not answer on $LIBVIRT_URI within 120 s" >&2
    return 1
  fi
  if ! virsh -q -c "$LIBVIRT_URI" net-info default >/dev/null 2>&1; then
    local xml=/usr/share/libvirt/networks/default.xml
    if [ -f "$xml" ] && virsh -q -c "$LIBVIRT_URI" net-define "$xml" >/dev/null; then
      echo "net-default: defined network default from $xml"
    else
      echo "net-default: network default is not defined and cannot be defined" >&2
      return 1
    fi
  fi
  virsh -q -c "$LIBVIRT_URI" net-autostart default >/dev/null || echo "net-default: net-autostart default failed" >&2
  state=$(virsh -q -c "$LIBVIRT_URI" net-info default 2>/dev/null | awk '$1 == "Active:" { print $2 }')
  if [ "$state" != yes ]; then
    local out
    if ! out=$(virsh -q -c "$LIBVIRT_URI" net-start default 2>&1); then
      case "$out" in
        *"already active"*) ;;
        *) echo "net-default: net-start default failed: $out" >&2; return 1 ;;
      esac
    fi
  fi
  echo "net-default: network default active, autostart on"
}

health() {
  timeout 8 virsh -q -c "$LIBVIRT_URI" version >/dev/null 2>&1 || { echo "libvirt does not answer"; return 1; }
  [ -S /run/libvirt/libvirt-sock ] || { echo "no /run/libvirt/libvirt-sock"; return 1; }
  pgrep -x sshd >/dev/null 2>&1 || { echo "sshd not running"; return 1; }
  echo ok
}

main() {
  log "boxvirt nested host '$INSTANCE' starting (HOST_UID=${HOST_UID:-unset} HOST_GID=${HOST_GID:-unset} ssh port ${SSH_PORT})"
  setup_host_ids
  setup_devices
  setup_libvirt
  setup_ssh
  # supervisord.conf expands it (it must exist); --listen only for TLS.
  export BOXVIRT_LIBVIRTD_ARGS=""
  if [ "${BOXVIRT_TLS:-}" = 1 ]; then
    if "$LIBEXEC/libvirt-tls.sh" setup; then
      BOXVIRT_LIBVIRTD_ARGS=--listen
    else
      warn "TLS setup failed: libvirtd serves the unix socket only"
    fi
  fi
  mkdir -p /var/log/supervisor
  log "libvirt socket: /run/libvirt/libvirt-sock (group '$SOCK_GROUP', 0770); exec supervisord"
  local conf=/etc/supervisord.conf
  # supervisord-fast.py: the same supervisord, woken by signals instead of
  # its 1 s clock (programs start at once, docker stop is acted on at once).
  if [ -x "$LIBEXEC/supervisord-fast.py" ]; then
    exec "$LIBEXEC/supervisord-fast.py" -n -c "$conf"
  fi
  exec /usr/bin/supervisord -n -c "$conf"
  # Only reached when exec failed.
  echo "entrypoint: FATAL: cannot exec supervisord" >&2
  exit 1
}

case "${1:-run}" in
  run) main ;;
  net-default) net_default ;;
  health) health ;;
  *) exec "$@" ;;
esac
