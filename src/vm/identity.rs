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
}
