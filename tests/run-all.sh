#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (root): installs what
# is missing, starts the daemons the live tiers need, runs every tier, and
# stops what it started. `.ci/run` calls exactly this.
#
#   tier 1  unit tests                      (cargo test --lib)
#   tier 2  libvirt test driver             (tests/testdriver_*.rs, template_validate.rs)
#   tier 3  real libvirtd + QEMU + guest    (tests/live_libvirtd.rs)
#   tier 4  nested host in Docker           (tests/nested_e2e.rs)
set -euo pipefail
cd "$(dirname "$0")/.."
harness=tests/harness
step() { printf '\n==> %s\n' "$*"; }

step "system packages"
bash "$harness/install-deps.sh"

step "lint: Dockerfiles (hadolint) and shell scripts (shellcheck)"
bash "$harness/lint.sh"

step "build"
cargo build --lib --bins --tests --locked

step "tiny test guest (kernel + initramfs, cached)"
bash "$harness/build-tiny-guest.sh"

step "live libvirtd in its own network namespace"
bash "$harness/live-libvirtd.sh" start
stop_live() { bash "$harness/live-libvirtd.sh" stop || true; }
trap stop_live EXIT

step "Docker engine and base image"
bash "$harness/start-dockerd.sh"
bash "$harness/base-image.sh"

step "all test tiers"
# Two cores: run test binaries one at a time but their tests in parallel.
cargo test --lib --bins --tests --locked --no-fail-fast -- --test-threads=4
