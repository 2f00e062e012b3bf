#!/usr/bin/env bash
# boxvirt nested host: libvirtd's TLS listener (`boxvirt up --tls`). Called
# by the entrypoint only when the container runs with BOXVIRT_TLS=1.
#
#   libvirt-tls.sh setup    before supervisord starts: TLS-only listener
#                           settings in libvirtd.conf (the entrypoint then
#                           starts libvirtd with --listen)
#   libvirt-tls.sh reload   after `boxvirt tls rotate`: the same settings
#                           (the client DN changed), then restart libvirtd
#                           so it loads the new certificates and DN list
#
# Runtime contract (made by boxvirt on the host, mounted read-only):
#   /etc/pki/CA/cacert.pem                   the instance's CA
#   /etc/pki/libvirt/servercert.pem          server certificate (SAN: 127.0.0.1,
#                                            localhost, the host's name, --tls-san)
#   /etc/pki/libvirt/private/serverkey.pem   its key (0600)
#   /etc/pki/libvirt/allowed-dn              the one client DN let in
#
# The edits, and why:
#   listen_tls = 1, listen_tcp = 0   TLS only: nothing unencrypted or
#                                    unauthenticated on the network
#   tls_port = "16514"               the container side of the published port
#   listen_addr = "0.0.0.0"          docker's port forward arrives on the
#                                    container's address, not on loopback
#   ca_file, cert_file, key_file     the mounted files (libvirt's defaults,
#                                    written out so an edited conf cannot move them)
#   tls_no_verify_certificate = 0    a client must present a certificate
#   tls_no_sanity_certificate = 0    signed by the CA above,
#   tls_allowed_dn_list = [DN]       and carry the one DN boxvirt issued
set -euo pipefail

CONF=${BOXVIRT_LIBVIRT_ETC:-/etc/libvirt}/libvirtd.conf
CA=/etc/pki/CA/cacert.pem
CERT=/etc/pki/libvirt/servercert.pem
KEY=/etc/pki/libvirt/private/serverkey.pem
DN_FILE=/etc/pki/libvirt/allowed-dn
LIBEXEC=${BOXVIRT_LIBEXEC:-/usr/local/libexec/boxvirt}

log() { echo "libvirt-tls: $*" >&2; }

set_key() { "$LIBEXEC/libvirt-config.sh" set-key "$CONF" "$1" "$2"; }

# The DN boxvirt wrote, checked so it cannot break out of the quoted list.
allowed_dn() {
  local dn
  dn=$(head -n 1 "$DN_FILE" 2>/dev/null) || { log "cannot read $DN_FILE"; return 1; }
  case "$dn" in
    '' | *[!A-Za-z0-9=,._\ -]*) log "$DN_FILE holds no usable DN: '$dn'"; return 1 ;;
  esac
  printf '%s' "$dn"
}

setup() {
  local f dn
  for f in "$CA" "$CERT" "$KEY"; do
    [ -s "$f" ] || { log "missing $f: run 'boxvirt up --tls' (it makes the certificates)"; return 1; }
  done
  dn=$(allowed_dn) || return 1
  set_key listen_tcp 0
  set_key listen_tls 1
  set_key tls_port '"16514"'
  set_key listen_addr '"0.0.0.0"'
  set_key ca_file "\"$CA\""
  set_key cert_file "\"$CERT\""
  set_key key_file "\"$KEY\""
  set_key tls_no_verify_certificate 0
  set_key tls_no_sanity_certificate 0
  set_key tls_allowed_dn_list "[\"$dn\"]"
  log "TLS on port 16514 for client DN '$dn'"
}

reload() {
  setup || return 1
  supervisorctl -c /etc/supervisord.conf restart libvirtd >/dev/null || { log "cannot restart libvirtd"; return 1; }
  log "libvirtd restarted with the new certificates"
}

case "${1:-}" in
  setup) setup ;;
  reload) reload ;;
  *)
    log "usage: $0 setup | reload"
    exit 2
    ;;
esac
