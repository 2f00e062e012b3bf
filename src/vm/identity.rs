//! A new VM's name and MAC address.

use sha2::{Digest, Sha256};

/// The first free `<template>-<n>` (n from 1).
pub fn default_name(template: &str, taken: &[String]) -> String {
    (1..)
        .map(|n| format!("{template}-{n}"))
        .find(|candidate| !taken.iter().any(|t| t == candidate))
        .unwrap_or_else(|| format!("{template}-x"))
}

/// A MAC derived from the VM name (QEMU's 52:54:00 prefix), so the same VM
/// gets the same address on every create and clones never share one.
pub fn mac_for(vm_name: &str) -> String {
    let digest = Sha256::digest(vm_name.as_bytes());
    format!(
        "52:54:00:{:02x}:{:02x}:{:02x}",
        digest[0], digest[1], digest[2]
    )
}

/// The MAC of NIC `index` (0: the primary, on `network`): the primary
/// keeps [`mac_for`] (what earlier boxvirt gave, and what leftovers are
/// found by); every further NIC's comes from the VM and its network, so it
/// is the same on every create and differs between the VM's NICs.
pub fn nic_mac(vm_name: &str, network: &str, index: usize) -> String {
    if index == 0 {
        mac_for(vm_name)
    } else {
        mac_for(&format!("{vm_name}@{network}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_name_skips_taken() {
        assert_eq!(default_name("tiny", &[]), "tiny-1");
        assert_eq!(
            default_name("tiny", &["tiny-1".into(), "tiny-3".into()]),
            "tiny-2"
        );
    }

    #[test]
    fn mac_is_stable_unicast_and_distinct() {
        let a = mac_for("tiny-1");
        assert_eq!(a, mac_for("tiny-1"));
        assert_ne!(a, mac_for("tiny-2"));
        assert!(a.starts_with("52:54:00:") && a.len() == 17);
    }

    #[test]
    fn nic_macs_are_per_vm_and_network() {
        assert_eq!(nic_mac("a", "mgmt", 0), mac_for("a"));
        let data = nic_mac("a", "data", 1);
        assert_eq!(
            data,
            nic_mac("a", "data", 2),
            "the network decides, not the place"
        );
        assert_ne!(data, nic_mac("a", "mgmt", 1));
        assert_ne!(data, nic_mac("b", "data", 1));
        assert_ne!(data, mac_for("a"));
    }
}
