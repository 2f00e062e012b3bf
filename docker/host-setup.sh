#!/usr/bin/env bash
# Prepares this machine (Debian 12, root) to run the nested libvirt host:
# system packages (libvirt client library for building boxvirt, Docker),
# a running Docker engine, and the debian:bookworm-slim base image (made
# locally with debootstrap when no registry can be reached). Idempotent.
set -euo pipefail
harness="$(cd "$(dirname "$0")/../tests/harness" && pwd)"
bash "$harness/install-deps.sh"
bash "$harness/start-dockerd.sh"
bash "$harness/base-image.sh"
