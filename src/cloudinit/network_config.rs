//! network-config (version 2): DHCP on the VM's NIC, found by its MAC.

use super::SeedSpec;

/// The NIC with the VM's MAC gets DHCPv4 with a MAC-based client id
/// (`dhcp-identifier: mac`): systemd-networkd would otherwise send a DUID
/// made from /etc/machine-id, and clones of one disk would share a lease.
/// `set-name` is there because cloud-init's networkd and sysconfig renderers
/// otherwise match the entry's id as the interface name too (so a NIC called
/// ens3 would get no configuration); cloud-init renames the NIC first.
pub fn network_config(spec: &SeedSpec) -> String {
    // Quoted: PyYAML (YAML 1.1) reads an all-digit MAC such as
    // 52:54:00:12:34:56 as a base-60 integer.
    let mac = spec.mac.to_ascii_lowercase().replace('\'', "''");
    format!(
        "version: 2\nethernets:\n  eth0:\n    match:\n      macaddress: '{mac}'\n    set-name: eth0\n    dhcp4: true\n    dhcp-identifier: mac\n"
    )
}
