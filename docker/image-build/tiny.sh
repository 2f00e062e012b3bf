#!/usr/bin/env bash
# `boxvirt image build tiny`: boxvirt's tiny direct-kernel-boot guest, built
# without internet access: Debian's cloud kernel plus an initramfs made of
# busybox, dropbear and the files in tiny/ (tiny/init says what it does at
# boot and which marker lines it prints on the serial console).
#
# Usage: tiny.sh OUTDIR
#   Writes OUTDIR/vmlinuz and OUTDIR/initrd.img (gzip'd newc cpio) and prints
#   their absolute paths, one per line. Lines starting with "==> " name the
#   stage (boxvirt shows them as progress).
#   With TINY_STAMP=1 (tests/harness/build-tiny-guest.sh) it rebuilds only
#   when a package version or a guest source file changed (OUTDIR/stamp).
# Needs: root, apt-get, dpkg, cpio, gzip, xz, zstd (the nested-host image).
set -euo pipefail
umask 022   # qemu (user libvirt-qemu) must be able to read the outputs

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$HERE/tiny
OUT=${1:?usage: tiny.sh OUTDIR}
STAMP=${TINY_STAMP:-0}

die() { echo "tiny: $*" >&2; exit 1; }
log() { echo "tiny: $*" >&2; }
stage() { echo "==> $*"; }

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [ "$STAMP" = 1 ]; then
  exec 9>"$OUT/.lock"
  flock 9   # one build at a time per OUTDIR
fi

# A fresh container of the nested-host image has no apt lists.
if ! apt-cache show --no-all-versions busybox-static >/dev/null 2>&1; then
  stage "reading the package lists"
  apt-get update -q=2 >&2 || die "apt-get update failed"
fi

# --- inputs: package versions + guest sources --------------------------------
# One apt-cache call (it is slow where apt keeps no binary cache): the
# candidate version of each package, and the versioned kernel image
# (linux-image-X-cloud-amd64) that the metapackage depends on, with its version.
PKGS=(linux-image-cloud-amd64 busybox-static dropbear-bin
  libc6 libcrypt1 libtomcrypt1 libtommath1 libgmp10 zlib1g)
versions=$(apt-cache show --no-all-versions "${PKGS[@]}" 2>/dev/null | awk '
  /^Package:/ { p = $2 }
  /^Version:/ { print p "=" $2 }
  /^Depends:/ && p == "linux-image-cloud-amd64" &&
    match($0, /linux-image-[0-9][^ ,]*-cloud-amd64 \(= [^)]*\)/) {
    d = substr($0, RSTART, RLENGTH); gsub(/[()=]/, "", d); split(d, a, " +")
    print a[1] "=" a[2]
  }')
for p in "${PKGS[@]}"; do
  grep -q "^$p=" <<<"$versions" || die "apt has no $p (run apt-get update)"
done
kpkg=$(grep -o '^linux-image-[0-9][^=]*-cloud-amd64' <<<"$versions") ||
  die "cannot tell which kernel linux-image-cloud-amd64 depends on"

mapfile -t pins <<<"$versions"   # pkg=version, as apt-get download takes them
mapfile -t srcs < <(cd "$HERE" && find tiny -type f | LC_ALL=C sort)
inputs=$(
  echo "$versions"
  cd "$HERE" && sha256sum tiny.sh "${srcs[@]}"
)

if [ "$STAMP" = 1 ] && [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/initrd.img" ] && [ -f "$OUT/stamp" ] &&
  [ "$(cat "$OUT/stamp")" = "$inputs" ]; then
  echo "$OUT/vmlinuz"
  echo "$OUT/initrd.img"
  exit 0
fi

# --- fetch and unpack ---------------------------------------------------------
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debs" "$work/x" "$work/root"
chmod 0755 "$work"
chown _apt "$work/debs" 2>/dev/null || true   # apt's download sandbox user
stage "downloading ${#pins[@]} packages"
log "downloading ${pins[*]}"
(cd "$work/debs" && apt-get -o Acquire::Retries=3 download -q=2 "${pins[@]}") >&2 ||
  die "apt-get download failed"
for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$work/x"; done

x=$work/x
r=$work/root
kver=${kpkg#linux-image-}
moddir=$x/lib/modules/$kver
[ -d "$moddir" ] || die "no $moddir in $kpkg"

stage "assembling the initramfs"
# --- initramfs tree -----------------------------------------------------------
mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,lib/modules,lib64,etc/dropbear,etc/acpi/PWRF} \
  "$r"/{proc,sys,dev,run,tmp,mnt,root,home,var/log,var/lib/cloud} \
  "$r"/usr/share/udhcpc "$r"/usr/lib/boxvirt-tiny
chmod 0700 "$r/root"
chmod 1777 "$r/tmp"
ln -s ../run "$r/var/run"

# busybox and its applet links
install -m 0755 "$x/bin/busybox" "$r/bin/busybox"
"$r/bin/busybox" --list-full | while read -r applet; do
  [ -e "$r/$applet" ] || [ -L "$r/$applet" ] || {
    mkdir -p "$(dirname "$r/$applet")"
    ln -s /bin/busybox "$r/$applet"
  }
done

# dropbear and the shared libraries it needs (resolved by the packages' own loader)
ldso=$x/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
libpath=$x/lib/x86_64-linux-gnu:$x/usr/lib/x86_64-linux-gnu
for bin in usr/sbin/dropbear usr/bin/dropbearkey usr/bin/dropbearconvert; do
  install -m 0755 "$x/$bin" "$r/$bin"
  "$ldso" --library-path "$libpath" --list "$x/$bin" |
    awk '$2 == "=>" { print $3 }' | while read -r lib; do
      case "$lib" in "$x"/*) ;; *) die "$bin needs $lib, which none of the packages ship" ;; esac
      rel=${lib#"$x"/}
      mkdir -p "$(dirname "$r/$rel")"
      cp -L "$lib" "$r/$rel"
    done
done
install -m 0755 "$ldso" "$r/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
ln -sf /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$r/lib64/ld-linux-x86-64.so.2"

# kernel modules, flat in /lib/modules, in tiny/modules' load order
while read -r mod _; do
  case "$mod" in ''|'#'*) continue ;; esac
  ko=$(find "$moddir/kernel" -name "$mod.ko*" | head -n1)
  case "$ko" in
    "") if grep -q "/$mod.ko" "$moddir/modules.builtin" 2>/dev/null; then
          log "module $mod is built into $kver"
        else
          log "warning: module $mod not in $kpkg; skipped"
        fi ;;
    *.ko.xz) xz -dc "$ko" > "$r/lib/modules/$mod.ko" ;;
    *.ko.zst) zstd -qdc "$ko" > "$r/lib/modules/$mod.ko" ;;
    *) cp "$ko" "$r/lib/modules/$mod.ko" ;;
  esac
done < "$SRC/modules"

# guest scripts and configuration
install -m 0755 "$SRC/init" "$r/init"
install -m 0644 "$SRC/modules" "$r/etc/boxvirt-modules"
install -m 0644 "$SRC/inittab" "$r/etc/inittab"
install -m 0755 "$SRC/default.script" "$r/usr/share/udhcpc/default.script"
install -m 0644 "$SRC/cloud-config.awk" "$r/usr/lib/boxvirt-tiny/cloud-config.awk"
install -m 0755 "$SRC/cloud-init" "$r/usr/bin/cloud-init"
install -m 0755 "$SRC/power-button" "$r/etc/acpi/PWRF/00000080"
echo 'root:x:0:0:root:/root:/bin/sh' > "$r/etc/passwd"
printf 'root:x:0:\ntty:x:5:\n' > "$r/etc/group"
printf '/bin/sh\n/bin/ash\n' > "$r/etc/shells"
printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' > "$r/etc/nsswitch.conf"

# the kernel opens /dev/console for /init before devtmpfs is mounted
if [ "$(id -u)" -eq 0 ]; then
  mknod -m 0600 "$r/dev/console" c 5 1
  mknod -m 0666 "$r/dev/null" c 1 3
  # smoke test: the copied libraries are enough for dropbear's tools
  chroot "$r" /usr/bin/dropbearkey -t ed25519 -f /tmp/k >/dev/null 2>&1 ||
    die "dropbearkey does not run inside the initramfs tree"
  rm -f "$r/tmp/k"
fi

stage "packing the initramfs"
# --- write the outputs (atomically) -------------------------------------------
(cd "$r" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
  cpio --null -o -H newc -R 0:0 --quiet) | gzip -9n > "$OUT/initrd.img.tmp"
cp "$x/boot/vmlinuz-$kver" "$OUT/vmlinuz.tmp"
chmod 0644 "$OUT/initrd.img.tmp" "$OUT/vmlinuz.tmp"
mv -f "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
mv -f "$OUT/initrd.img.tmp" "$OUT/initrd.img"
[ "$STAMP" = 1 ] && echo "$inputs" > "$OUT/stamp"
log "built $kver guest: initrd $(du -h "$OUT/initrd.img" | cut -f1)"
echo "$OUT/vmlinuz"
echo "$OUT/initrd.img"
