//! Guideline 5, seccomp half: the profile embedded in the binary and passed
//! through the Engine API ("seccomp=<json>", what `docker run --security-opt
//! seccomp=FILE` sends). It is Docker's default profile (Docker 20.10, the
//! engine's own, from the Debian package golang-github-docker-docker-dev)
//! with nothing added: libvirtd, QEMU (TCG and KVM) and dnsmasq booted the
//! tiny guest under it once SYS_ADMIN was gone (its syscalls are the
//! capability-gated part of the profile). The default profile's
//! "seccomp=unconfined" is what was needed before, not any more.

/// Docker's default seccomp profile (JSON).
pub const PROFILE: &str = include_str!("seccomp.json");

/// The security option that carries the profile.
pub fn security_opt() -> String {
    format!("seccomp={PROFILE}")
}

/// Whether a container's security options carry a seccomp profile (not
/// "unconfined", not absent).
pub fn is_confined(security_opt: &[String]) -> bool {
    security_opt
        .iter()
        .any(|o| o.starts_with("seccomp=") && o != "seccomp=unconfined")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_is_json_that_denies_by_default() {
        let v: serde_json::Value = serde_json::from_str(PROFILE).unwrap();
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(v["syscalls"].as_array().unwrap().len() > 10);
        assert!(is_confined(&[security_opt()]));
        assert!(!is_confined(&["seccomp=unconfined".into()]));
    }
}
