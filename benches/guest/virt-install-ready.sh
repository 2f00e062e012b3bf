#!/usr/bin/env bash
# The virt-install contender of the guest bench: what a user of the usual
# tools does to get the same Debian 12 guest ready. A qcow2 overlay on the
# same base image, a NoCloud seed from cloud-localds (the same user, key and
# hostname), `virt-install --import`, then poll until the guest has an
# address and `cloud-init status` over SSH says done. Run inside the
# network namespace of the live libvirtd, where the guests' bridge is.
# Prints "mark <stage> <unix time>" lines for the bench.
# Exit 0 when cloud-init is done, 1 on its error or a failed step, 6 when
# $TIMEOUT seconds pass.
# In: NAME BASE DIR PUBKEY KEY LOGIN DISK_GIB MEMORY URI TIMEOUT.
set -euo pipefail
mark() { echo "mark $1 $EPOCHREALTIME"; }
deadline=$(( $(date +%s) + TIMEOUT ))

overlay=$DIR/$NAME.qcow2 seed=$DIR/$NAME-seed.iso
qemu-img create -q -f qcow2 -F qcow2 -b "$BASE" "$overlay" "${DISK_GIB}G"
cat > "$DIR/$NAME.user-data" <<UD
#cloud-config
hostname: $NAME
users:
  - name: $LOGIN
    shell: /bin/sh
    sudo: ALL=(ALL) NOPASSWD:ALL
    ssh_authorized_keys:
      - $(cat "$PUBKEY")
UD
printf 'instance-id: %s\nlocal-hostname: %s\n' "$NAME" "$NAME" > "$DIR/$NAME.meta-data"
cloud-localds "$seed" "$DIR/$NAME.user-data" "$DIR/$NAME.meta-data"

# The same machine as boxvirt's debian12 template: q35, UEFI without
# secure boot, 1 vCPU, TCG; osinfo-db here knows no debian12 yet. The seed
# is a virtio disk, as cloud-localds's own usage shows (as a SATA CD-ROM it
# was not picked up in a trial here).
virt-install --connect "$URI" --import --noautoconsole --name "$NAME" \
  --memory "$MEMORY" --vcpus 1 --virt-type qemu --machine q35 \
  --boot uefi,firmware.feature0.name=secure-boot,firmware.feature0.enabled=no,firmware.feature1.name=enrolled-keys,firmware.feature1.enabled=no \
  --disk "path=$overlay,format=qcow2,bus=virtio" \
  --disk "path=$seed,format=raw,bus=virtio,readonly=on" \
  --network network=default,model=virtio \
  --osinfo debian11 --graphics none >/dev/null
mark started

ip=""
until [ -n "$ip" ]; do
  [ "$(date +%s)" -lt "$deadline" ] || { echo "no address within $TIMEOUT s" >&2; exit 6; }
  sleep 1
  ip=$(virsh -c "$URI" domifaddr "$NAME" 2>/dev/null | awk '$3 == "ipv4" { sub("/.*", "", $4); print $4; exit }')
done
mark address

ssh_opts=(-i "$KEY" -o BatchMode=yes -o ConnectTimeout=5 -o LogLevel=ERROR
  -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null)
while :; do
  [ "$(date +%s)" -lt "$deadline" ] || { echo "cloud-init not done within $TIMEOUT s (last: ${status:-no ssh})" >&2; exit 6; }
  status=$(ssh "${ssh_opts[@]}" "$LOGIN@$ip" cloud-init status 2>/dev/null) || status=""
  case "$status" in
    *"status: done"*) break ;;
    *"status: error"*) echo "cloud-init status: $status" >&2; exit 1 ;;
  esac
  sleep 1
done
mark ready
