#!/usr/bin/env bash
# Makes the base image `debian:bookworm-slim` locally when it is absent (no
# container registry is reachable here): debootstrap a minbase bookworm from the
# Debian mirror this machine's apt already uses, then `docker import` it.
# Idempotent and fast when the image is present.
#   BOXVIRT_BASE_IMAGE  image name (default debian:bookworm-slim)
#   BOXVIRT_MIRROR      override the mirror URI (default: from /etc/apt sources)
set -euo pipefail

IMAGE=${BOXVIRT_BASE_IMAGE:-debian:bookworm-slim}
SUITE=bookworm

die() { echo "base-image: error: $*" >&2; exit 1; }

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base-image: $IMAGE present"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap)"
command -v debootstrap >/dev/null 2>&1 || die "debootstrap not installed"

# The Debian mirror from the machine's apt sources (deb822 first, then the
# one-line format); skip security and non-Debian (e.g. third-party) sources by
# requiring a bookworm suite.
mirror_uri() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # Paragraph-wise: print the first URI of a stanza whose Suites has bookworm
    # (not bookworm-security).
    uri=$(awk '
      BEGIN { RS=""; FS="\n" }
      {
        u=""; s=""
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/)   { split($i, a, /[ \t]+/); u = a[2] }
          if ($i ~ /^Suites:/) { s = $i }
        }
        if (u != "" && s ~ /[ \t]bookworm([ \t]|-updates|-backports|$)/ && u !~ /security/) { print u; exit }
      }' "$f")
    if [ -n "$uri" ]; then echo "$uri"; return 0; fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk '$1 == "deb" && $0 ~ /[ \t]bookworm([ \t]|-updates|-backports)/ && $2 !~ /security/ {
                 for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { print $i; exit } }' "$f")
    if [ -n "$uri" ]; then echo "$uri"; return 0; fi
  done
  return 1
}

MIRROR=${BOXVIRT_MIRROR:-$(mirror_uri || true)}
[ -n "$MIRROR" ] || die "cannot find a Debian $SUITE mirror in /etc/apt/sources.list(.d); set BOXVIRT_MIRROR"

DIR=$(mktemp -d /var/tmp/boxvirt-rootfs.XXXXXX)
cleanup() { rm -rf --one-file-system "$DIR"; }
trap cleanup EXIT

echo "base-image: debootstrap $SUITE from $MIRROR into $DIR"
if ! debootstrap --variant=minbase "$SUITE" "$DIR" "$MIRROR" >"$DIR.log" 2>&1; then
  tail -n 30 "$DIR.log" >&2
  rm -f "$DIR.log"
  die "debootstrap failed"
fi
rm -f "$DIR.log"

# Like the official slim image: no apt caches baked in.
rm -rf "$DIR"/var/lib/apt/lists/* "$DIR"/var/cache/apt/*.bin "$DIR"/var/cache/apt/archives/*.deb

echo "base-image: importing as $IMAGE"
tar -C "$DIR" -c . | docker import \
  --change 'CMD ["bash"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$IMAGE" >/dev/null
echo "base-image: $IMAGE ready"
