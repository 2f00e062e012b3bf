//! Switching an existing instance between the default and the hardened
//! profile: the container is re-created (data dir, domains, networks and
//! images are kept); this says what changes for its users.

/// The note `up` prints when the profile changes; None when it does not.
pub fn describe(was_hardened: bool, hardened: bool) -> Option<String> {
    match (was_hardened, hardened) {
        (false, true) => Some(
            "switching to the hardened profile (domains, networks and images are kept): the socket now wants SASL credentials (DATA/auth/auth.conf; 'boxvirt uri' shows LIBVIRT_AUTH_FILE for virsh), the root filesystem becomes read-only, only NET_ADMIN is added, seccomp is confined (and AppArmor, where the kernel has it), memory/CPUs/pids are limited".into(),
        ),
        (true, false) => Some(
            "switching back to the default profile (domains, networks and images are kept): the socket no longer asks for credentials (group access only), the root filesystem is writable, the default capability list, seccomp=unconfined and apparmor=unconfined return, limits are only those passed".into(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_change_is_described_and_domains_are_said_to_be_kept() {
        assert!(describe(true, true).is_none());
        assert!(describe(false, false).is_none());
        assert!(describe(false, true).unwrap().contains("domains"));
        assert!(describe(true, false).unwrap().contains("kept"));
    }
}
