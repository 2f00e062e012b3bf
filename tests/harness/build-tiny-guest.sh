#!/usr/bin/env bash
# Builds the tiny test guest on this machine (root, apt) with the recipe that
# `boxvirt image build tiny` runs in a container: docker/image-build/tiny.sh.
# Usage: build-tiny-guest.sh [OUTDIR]
#   OUTDIR defaults to ${BOXVIRT_TEST_CACHE:-/var/cache/boxvirt-test}/tiny.
#   Prints the paths of vmlinuz and initrd.img; rebuilds only when a package
#   version or a guest source file changed (OUTDIR/stamp).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${1:-${BOXVIRT_TEST_CACHE:-/var/cache/boxvirt-test}/tiny}
# The recipe's stage lines go to stderr: stdout is the two paths.
TINY_STAMP=1 bash "$HERE/../../docker/image-build/tiny.sh" "$OUT" |
  awk '/^==> / { print "build-tiny-guest: " substr($0, 5) > "/dev/stderr"; next } { print }'
