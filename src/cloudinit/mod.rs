//! Cloud-init, written natively: a NoCloud seed (vfat labelled `CIDATA`)
//! holding meta-data, user-data and network-config for one VM.
//!
//! Identity is per create: a fresh instance-id ([`new_instance_id`]), the
//! VM's own MAC in network-config with a MAC-based DHCP client id, a new sshd
//! host key ([`generate_host_key`]) that boxvirt pins, and a boot command
//! that gives a cloned disk a new machine-id. Upload, attach and eject of the
//! image are the volume and domain code's business.

mod authorized_keys;
mod host_key;
mod merge;
mod meta_data;
mod multipart;
mod network_config;
mod user_data;
mod vfat;
mod yaml;

use std::io::Read;

pub use authorized_keys::read_authorized_keys_file;
pub use host_key::{generate_host_key, HostKey};
pub use meta_data::{meta_data, new_instance_id};
pub use network_config::network_config;
pub use user_data::{read_user_data_file, user_data};
pub use vfat::build_seed_image;

use crate::error::{Failure, Result};

/// The seed's volume label; cloud-init's NoCloud finds a vfat seed by it.
pub const SEED_LABEL: &str = "CIDATA";

/// Everything one VM's seed says.
#[derive(Debug, Clone)]
pub struct SeedSpec {
    /// Unique per create (see [`new_instance_id`]): a new id makes cloud-init
    /// treat a cloned disk as a new instance.
    pub instance_id: String,
    pub hostname: String,
    /// The default login user, e.g. "boxvirt".
    pub user: String,
    /// OpenSSH public key lines for `user` (the instance key plus --ssh-key files).
    pub authorized_keys: Vec<String>,
    /// The VM's sshd host key, so boxvirt can pin it.
    pub host_key: HostKey,
    /// The VM's (primary NIC's) MAC, matched in network-config.
    pub mac: String,
    /// The MACs of its further NICs, in order (eth1, eth2, ...).
    pub more_macs: Vec<String>,
    /// Contents of `--user-data FILE`, merged in (see [`user_data`]).
    pub extra_user_data: Option<String>,
}

impl SeedSpec {
    /// Checks the fields that end up in file names, shell words or YAML keys.
    pub fn validate(&self) -> Result<()> {
        check_word("instance id", &self.instance_id, 128)?;
        check_word("hostname", &self.hostname, 63)?;
        check_word("user name", &self.user, 32)?;
        check_mac(&self.mac)?;
        self.more_macs.iter().try_for_each(|m| check_mac(m))
    }
}

/// Non-empty, at most `max` characters of [A-Za-z0-9._-], not starting with
/// '-' or '.' (these become file names, user names and shell words).
fn check_word(what: &str, value: &str, max: usize) -> Result<()> {
    let ok_chars = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if value.is_empty() || value.len() > max || !ok_chars || value.starts_with(['-', '.']) {
        return Err(Failure::usage(format!(
            "invalid {what} {value:?} for the cloud-init seed: use 1-{max} of A-Z a-z 0-9 . _ - (not starting with - or .)"
        )));
    }
    Ok(())
}

/// Six colon-separated hex pairs.
fn check_mac(mac: &str) -> Result<()> {
    let parts: Vec<&str> = mac.split(':').collect();
    if parts.len() != 6
        || !parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(Failure::usage(format!(
            "invalid MAC address {mac:?} for the cloud-init seed: want six hex pairs like 52:54:00:12:34:56"
        )));
    }
    Ok(())
}

/// Bytes from the kernel's CSPRNG (keys and ids must not repeat across VMs).
fn random_bytes<const N: usize>(what: &str) -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| Failure::failed(format!("cannot read /dev/urandom for {what}: {e}")))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_macs_are_checked() {
        assert!(check_word("hostname", "tiny-1", 63).is_ok());
        for bad in ["", "-x", ".x", "a b", "a/b", "a:b", "ünï"] {
            let err = check_word("hostname", bad, 63).unwrap_err();
            assert!(
                err.message.starts_with("invalid hostname"),
                "{}",
                err.message
            );
        }
        assert!(check_word("hostname", &"a".repeat(64), 63).is_err());
        assert!(check_mac("52:54:00:AB:cd:01").is_ok());
        for bad in [
            "52:54:00:ab:cd",
            "52-54-00-ab-cd-01",
            "52:54:00:ab:cd:0g",
            "52:54:00:ab:cd:001",
        ] {
            assert!(check_mac(bad).is_err(), "{bad}");
        }
    }
}
