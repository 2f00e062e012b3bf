#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (root): installs what
# is missing, starts the daemons the live tiers need, runs every tier, and
# stops what it started. `.ci/run` calls exactly this.
#
#   tier 1  unit tests                      (cargo test --lib)
#   tier 2  libvirt test driver             (tests/testdriver_*.rs, template_validate.rs)
#   tier 3  real libvirtd + QEMU + guests   (every other tests/*.rs)
#   tier 4  nested host in Docker           (tests/nested_*.rs)
# The live libvirtd starts with empty state on every run (live-libvirtd.sh
# fresh), and each tier prints its time at the end.
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

step "live libvirtd in its own network namespace, with empty state"
bash "$harness/live-libvirtd.sh" fresh
stop_live() { bash "$harness/live-libvirtd.sh" stop || true; }
trap stop_live EXIT

step "Docker engine and base image"
bash "$harness/start-dockerd.sh"
bash "$harness/base-image.sh"

# Test files go to tiers by name: testdriver_*/template_* (tier 2),
# nested_* (tier 4), every other tests/*.rs (tier 3: the live daemon).
tier_targets() { # 2|3|4
  local f name
  for f in tests/*.rs; do
    name=$(basename "$f" .rs)
    case "$1:$name" in
      2:testdriver_* | 2:template_*) echo "--test $name" ;;
      4:nested_*) echo "--test $name" ;;
      3:testdriver_* | 3:template_* | 3:nested_*) ;;
      3:*) echo "--test $name" ;;
    esac
  done
}

# Every tier runs even after a failure; the summary names the failed ones.
failed=()
timings=()
run_tier() { # NAME CARGO-TEST-ARGS...
  local name=$1 start rc
  shift
  step "tier $name"
  start=$(date +%s)
  # Two cores: test binaries one at a time, their tests in parallel.
  set +e
  # shellcheck disable=SC2068
  cargo test --locked --no-fail-fast $@ -- --test-threads=4
  rc=$?
  set -e
  timings+=("$(printf '%-34s %4ds  %s' "$name" $(($(date +%s) - start)) "$([ $rc -eq 0 ] && echo ok || echo FAILED)")")
  [ $rc -eq 0 ] || failed+=("$name")
}

run_tier "1 unit" --lib --bins
# shellcheck disable=SC2046
run_tier "2 libvirt test driver" $(tier_targets 2)
# shellcheck disable=SC2046
run_tier "3 live libvirtd + QEMU guests" $(tier_targets 3)
# shellcheck disable=SC2046
run_tier "4 nested host in Docker" $(tier_targets 4)

step "tier times"
printf '%s\n' "${timings[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed tiers: ${failed[*]}" >&2
  exit 1
fi
