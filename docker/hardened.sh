#!/usr/bin/env bash
# boxvirt nested host: the `up --hardened` steps of the entrypoint (sourced
# by entrypoint.sh when BOXVIRT_HARDENED=1; ONE file for both images).
#
# Under --hardened the root filesystem is read-only (Docker ReadonlyRootfs);
# what the entrypoint and the daemons write lives on tmpfs mounts that boxvirt
# adds (/run, /tmp, /var/tmp, /var/log, /var/lib/libvirt, /root,
# /var/lib/extrausers, the SSH user's ~/.ssh) or on the data dir's binds.
#
#   hardened_skeleton   the directories the image has below those tmpfs
#                       mounts (Docker 20.10 copies nothing up), from the list
#                       `hardened.sh snapshot` made at build time
#   hardened_host_ids   host user/group records: /etc/passwd and /etc/group
#                       cannot be edited, so they go to libnss-extrausers'
#                       files (nsswitch.conf: "files extrausers")
#   hardened_sasl       the SASL user libvirtd checks (SCRAM-SHA-256): its
#                       password comes from DATA/auth/password, which boxvirt
#                       made (mode 0600) and binds read-only to /data/auth

EXTRA=/var/lib/extrausers
SKELETON=/usr/share/boxvirt/tmpfs-skeleton
# The tmpfs mounts of --hardened (src/nested/hardening/rootfs.rs).
TMPFS_DIRS="/run /tmp /var/tmp /var/log /var/lib/libvirt /root /home/qemu_user/.ssh"

# Build time: "MODE UID GID PATH" of every directory below the tmpfs paths,
# except the binds (their content is the data dir's).
hardened_snapshot() {
  mkdir -p "${SKELETON%/*}"
  # shellcheck disable=SC2086
  find $TMPFS_DIRS -mindepth 1 \( -path /run/libvirt -o -path /var/lib/libvirt/images \
    -o -path /var/lib/libvirt/qemu \) -prune -o -type d -printf '%m %U %G %p\n' >"$SKELETON"
}

hardened_skeleton() {
  [ -f "$SKELETON" ] || { warn "no $SKELETON in the image"; return 0; }
  local mode uid gid path
  while read -r mode uid gid path; do
    [ -d "$path" ] && continue
    if ! { mkdir -p "$path" && chown "$uid:$gid" "$path" && chmod "$mode" "$path"; }; then
      warn "cannot recreate $path"
    fi
  done <"$SKELETON"
}
AUTH_DIR=/data/auth
SASL_DB=/etc/libvirt/passwd.db
SASL_USER=boxvirt
# auth.conf for the container's own clients (net-default, health).
HARDENED_AUTH_FILE=/run/boxvirt/libvirt-auth.conf

# Sets SOCK_GROUP like setup_host_ids does, without touching /etc.
hardened_host_ids() {
  if ! { mkdir -p "$EXTRA" && touch "$EXTRA/passwd" "$EXTRA/group" "$EXTRA/shadow"; }; then
    warn "cannot write $EXTRA: no host user records"
    return 0
  fi
  if is_uint "$HOST_GID"; then
    local grp members
    grp=$(getent group "$HOST_GID" | cut -d: -f1)
    if [ -z "$grp" ]; then
      echo "$HOST_USER_NAME:x:$HOST_GID:$QEMU_USER" >>"$EXTRA/group"
      grp=$HOST_USER_NAME
    else
      members=$(getent group "$grp")
      case ",${members##*:}," in
        *",$QEMU_USER,"*) ;;
        # A second record with the same id: initgroups finds qemu_user in it.
        *) echo "$HOST_USER_NAME-sock:x:$HOST_GID:$QEMU_USER" >>"$EXTRA/group" ;;
      esac
    fi
    SOCK_GROUP=$grp
    log "host GID $HOST_GID -> group '$grp' (libvirt socket group; read-only /etc: $EXTRA)"
  else
    warn "HOST_GID unset or not a number ('$HOST_GID'): socket group stays '$SOCK_GROUP'"
  fi
  if is_uint "$HOST_UID" && ! getent passwd "$HOST_UID" >/dev/null; then
    local gid=$HOST_GID
    is_uint "$gid" || gid=65534
    echo "$HOST_USER_NAME:x:$HOST_UID:$gid:boxvirt host user:/nonexistent:/usr/sbin/nologin" >>"$EXTRA/passwd"
    log "host UID $HOST_UID -> user '$HOST_USER_NAME' ($EXTRA)"
  fi
}

# libvirtd reads the SASL database at each authentication: setting the
# password before supervisord starts libvirtd is enough.
hardened_sasl() {
  if [ ! -s "$AUTH_DIR/password" ]; then
    warn "no $AUTH_DIR/password: nobody can authenticate to libvirt"
    return 0
  fi
  if ! command -v saslpasswd2 >/dev/null; then
    warn "saslpasswd2 missing in the image: nobody can authenticate to libvirt"
    return 0
  fi
  # -p: the password from stdin; -c: create or replace the user.
  if tr -d '\n' <"$AUTH_DIR/password" | saslpasswd2 -p -c -a libvirt -f "$SASL_DB" "$SASL_USER"; then
    chmod 0600 "$SASL_DB"
    mkdir -p "${HARDENED_AUTH_FILE%/*}"
    ( umask 077
      printf '[credentials-boxvirt]\nauthname=%s\npassword=%s\n\n[auth-libvirt-localhost]\ncredentials=boxvirt\n\n[auth-libvirt-default]\ncredentials=boxvirt\n' \
        "$SASL_USER" "$(tr -d '\n' <"$AUTH_DIR/password")" >"$HARDENED_AUTH_FILE" )
    log "SASL user '$SASL_USER' set in $SASL_DB (SCRAM-SHA-256)"
  else
    warn "saslpasswd2 failed: nobody can authenticate to libvirt"
  fi
}

# `hardened.sh snapshot` (Dockerfile): the skeleton list.
if [ "${BASH_SOURCE[0]}" = "$0" ] && [ "${1:-}" = snapshot ]; then
  hardened_snapshot
fi
