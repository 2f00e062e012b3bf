#!/usr/bin/env bash
# Installs every system package boxvirt's build, tests and main job need, when
# missing. Idempotent; safe to run on every CI run. Debian 12 (bookworm), root.
set -euo pipefail

need_root() { [ "$(id -u)" -eq 0 ] || { echo "error: run as root (apt-get needs it)" >&2; exit 1; }; }

# The mirror the machine already uses: backports go on the same URI.
mirror_uri() {
  local uri
  uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1=="deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
  fi
  echo "$uri"
}

PACKAGES=(
  libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients libvirt-dev
  libvirt-daemon-driver-network
  qemu-system-x86 qemu-utils dnsmasq-base iptables nftables bridge-utils iproute2
  openssh-server openssh-client pkg-config libssl-dev
  virtinst xmlstarlet libxml2-utils
  cpio busybox-static dropbear-bin debootstrap mtools dosfstools python3-yaml
  ovmf
  cloud-image-utils   # cloud-localds: the seed of the guest bench's virt-install contender
  docker.io shellcheck hyperfine procps curl
  apparmor            # apparmor_parser: tests/apparmor_profile.rs compiles the nested host's profile
)

main() {
  need_root
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all system packages present"
    return 0
  fi
  echo "install-deps: installing ${missing[*]}"
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    local uri; uri=$(mirror_uri)
    [ -n "$uri" ] || { echo "error: cannot find the Debian mirror in /etc/apt sources" >&2; exit 1; }
    cat > /etc/apt/sources.list.d/boxvirt-backports.sources <<SRC
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Keep package scripts from starting libvirtd/dockerd on the host's own
  # network: the harness starts each daemon where it belongs.
  local policy=/usr/sbin/policy-rc.d made_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1
    trap '[ -n "$made_policy" ] && rm -f "$policy"' EXIT
  fi
  # Retries: a mirror hiccup should not fail a whole CI run.
  apt-get -o Acquire::Retries=3 update -qq
  # libvirt 11 + QEMU 10 come from backports (bookworm's qemu 7.2 conflicts
  # with the preinstalled qemu-utils 10).
  apt-get -o Acquire::Retries=3 install -y -qq --no-install-recommends -t bookworm-backports "${missing[@]}" >/dev/null
  echo "install-deps: done"
}
main "$@"
