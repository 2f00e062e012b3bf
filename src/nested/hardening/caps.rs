//! Guideline 1: no --privileged, and under --hardened only the capabilities
//! that were found necessary by removing each in turn from the default list
//! (SYS_ADMIN NET_ADMIN NET_RAW SYS_PTRACE MKNOD SYS_NICE) and booting the
//! tiny guest (README, "Hardened host"):
//! - NET_ADMIN: needed; without it network "default" does not start (bridge,
//!   firewall rules), so no guest gets an address.
//! - SYS_ADMIN: only needed for libvirt's trusted.* ownership xattrs and a
//!   mount namespace per QEMU; qemu.conf `remember_owner = 0` and
//!   `namespaces = [ ]` (set under --hardened) make it unnecessary.
//! - SYS_PTRACE: only needed to enter QEMU's mount namespace ("Kernel does
//!   not provide mount namespace: Permission denied"); gone with it.
//! - NET_RAW, MKNOD, SYS_NICE: the guest booted and got its address without.

/// Capabilities added under --hardened (on top of Docker's default set).
pub const HARDENED: &[&str] = &["NET_ADMIN"];

/// Whether `added` (the container's CapAdd) is no more than the hardened list.
pub fn is_minimal(added: &[String]) -> bool {
    added
        .iter()
        .all(|c| HARDENED.iter().any(|h| c.trim_start_matches("CAP_") == *h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_list_is_not_minimal_and_the_hardened_one_is() {
        let default: Vec<String> = crate::nested::container::CAPABILITIES
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert!(!is_minimal(&default));
        assert!(is_minimal(&["NET_ADMIN".into()]));
        assert!(is_minimal(&[]));
    }
}
