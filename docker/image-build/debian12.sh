#!/usr/bin/env bash
# `boxvirt image build debian12`: a Debian 12 cloud image made from Debian
# packages alone, with no loop device and no mount of the image:
#   debootstrap a root tree -> ext4 made from it (mkfs.ext4 -d) and an EFI
#   system partition made with mtools (systemd-boot + kernel + initrd) ->
#   both written into a GPT disk file at their offsets -> qcow2.
# It boots from its own disk under UEFI (OVMF), runs real cloud-init from a
# NoCloud seed and grows its root filesystem to the disk's size.
#
# Usage: debian12.sh OUTDIR   ->  OUTDIR/debian12.qcow2
# Lines starting with "==> " name the stage (boxvirt shows them as progress).
# Needs root with CAP_SYS_ADMIN (debootstrap mounts /proc in the chroot) and
# MKNOD; the tools of the nested-host image (debootstrap, sfdisk, mtools,
# dosfstools, e2fsprogs, qemu-utils).
set -euo pipefail
umask 022

OUT=${1:?usage: debian12.sh OUTDIR}
SUITE=bookworm
DISK_MIB=2048        # virtual size; vm create grows it to --disk-size
ESP_MIB=256          # holds systemd-boot, the kernel and the initrd
ROOT_LABEL=debian12-root
PACKAGES=(
  systemd-sysv udev dbus
  cloud-init cloud-guest-utils fdisk
  python3-cffi-backend   # debootstrap leaves cloud-init unconfigured without it
  openssh-server sudo locales qemu-guest-agent
  linux-image-cloud-amd64 systemd-boot-efi
  ifupdown isc-dhcp-client iproute2 netbase
)

die() { echo "debian12: $*" >&2; exit 1; }
stage() { echo "==> $*"; }

# The mirror of this container's own apt sources (never written anywhere
# else): deb822 in the slim image, one-line sources.list otherwise.
mirror() {
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ && !/security/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && !/security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || die "cannot find the Debian mirror in this container's apt sources"
  echo "$uri"
}

work=$(mktemp -d /var/tmp/debian12.XXXXXX)
ROOT=$work/root
cleanup() {
  umount "$ROOT/proc" 2>/dev/null || true
  umount "$ROOT/sys" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# --- 1. root tree --------------------------------------------------------------
MIRROR=$(mirror)
stage "debootstrap $SUITE (${#PACKAGES[@]} packages and their dependencies)"
include=$(IFS=,; echo "${PACKAGES[*]}")
debootstrap --variant=minbase --include="$include" "$SUITE" "$ROOT" "$MIRROR" >&2 ||
  { tail -n 20 "$ROOT/debootstrap/debootstrap.log" >&2 2>/dev/null; die "debootstrap failed"; }

stage "configuring the guest"
mount -t proc proc "$ROOT/proc"
in_root() { LC_ALL=C DEBIAN_FRONTEND=noninteractive chroot "$ROOT" "$@"; }
# Whatever debootstrap left half-configured (virtual dependencies).
in_root dpkg --configure -a >&2
audit=$(in_root dpkg --audit || true)
[ -z "$audit" ] || { echo "$audit" >&2; die "packages are not fully configured (dpkg --audit)"; }

# cloud-init's locale module wants its default locale to exist.
sed -i 's/^# *\(en_US.UTF-8 UTF-8\)/\1/' "$ROOT/etc/locale.gen"
in_root locale-gen >&2
echo 'LANG=en_US.UTF-8' > "$ROOT/etc/default/locale"

cat > "$ROOT/etc/fstab" <<EOF
LABEL=$ROOT_LABEL / ext4 rw,discard,errors=remount-ro 0 1
EOF
cat > "$ROOT/etc/network/interfaces" <<'EOF'
# cloud-init writes the interfaces it configures into interfaces.d.
auto lo
iface lo inet loopback
source /etc/network/interfaces.d/*
EOF
cat > "$ROOT/etc/cloud/cloud.cfg.d/90_boxvirt.cfg" <<'EOF'
# boxvirt: the seed is a NoCloud disk; never probe cloud metadata services.
datasource_list: [ NoCloud, None ]
EOF
echo debian > "$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$ROOT/etc/hosts"

# Every clone must get its own identity.
rm -f "$ROOT"/etc/ssh/ssh_host_*
: > "$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id"
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb
rm -rf "$ROOT/debootstrap" "$ROOT"/var/log/*.log "$ROOT"/tmp/*
umount "$ROOT/proc"

# --- 2. EFI system partition: systemd-boot, kernel, initrd ----------------------
stage "making the EFI system partition"
kernel=$(find "$ROOT/boot" -maxdepth 1 -name "vmlinuz-*" -printf "%f\n" | sort -V | tail -n1)
initrd=initrd.img-${kernel#vmlinuz-}
[ -f "$ROOT/boot/$initrd" ] || die "no $initrd in the root tree"
efi=$ROOT/usr/lib/systemd/boot/efi/systemd-bootx64.efi
[ -f "$efi" ] || die "no $efi (systemd-boot-efi)"
esp=$work/esp.img
mkfs.fat -F 32 -n ESP -C "$esp" $((ESP_MIB * 1024)) >&2
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
mcopy -i "$esp" "$efi" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$esp" "$ROOT/boot/$kernel" ::/vmlinuz
mcopy -i "$esp" "$ROOT/boot/$initrd" ::/initrd.img
printf 'default debian.conf\ntimeout 0\n' > "$work/loader.conf"
cat > "$work/debian.conf" <<EOF
title Debian 12 (${kernel#vmlinuz-})
linux /vmlinuz
initrd /initrd.img
options root=LABEL=$ROOT_LABEL ro console=tty0 console=ttyS0,115200
EOF
mcopy -i "$esp" "$work/loader.conf" ::/loader/loader.conf
mcopy -i "$esp" "$work/debian.conf" ::/loader/entries/debian.conf

# --- 3. GPT disk: ESP + root, written at their offsets -------------------------
stage "making the disk (GPT, ESP, ext4 root)"
disk=$work/disk.raw
truncate -s ${DISK_MIB}M "$disk"
sfdisk -q "$disk" >&2 <<EOF
label: gpt
start=1MiB, size=${ESP_MIB}MiB, type=uefi, name=ESP
start=$((ESP_MIB + 1))MiB, type=linux, name=root
EOF
# start and size of partition 2, in 512-byte sectors
read -r root_start root_sectors < <(sfdisk -d "$disk" | awk -v d="${disk}2" '
  $1 == d { for (i = 2; i <= NF; i++) { gsub(/,/, "", $(i+1)); if ($i == "start=") s = $(i+1); if ($i == "size=") n = $(i+1) } print s, n }')
[ -n "${root_sectors:-}" ] || die "cannot read the root partition from the new partition table"
rootfs=$work/root.img
truncate -s $((root_sectors * 512)) "$rootfs"
mkfs.ext4 -q -F -L "$ROOT_LABEL" -d "$ROOT" "$rootfs" >&2
dd if="$esp" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$rootfs" of="$disk" bs=1M seek=$((root_start * 512)) oflag=seek_bytes conv=notrunc,sparse status=none
rm -f "$esp" "$rootfs"

stage "converting to qcow2"
qemu-img convert -f raw -O qcow2 "$disk" "$work/debian12.qcow2"
chmod 0644 "$work/debian12.qcow2"
mkdir -p "$OUT"
mv "$work/debian12.qcow2" "$OUT/debian12.qcow2"
echo "$OUT/debian12.qcow2"
