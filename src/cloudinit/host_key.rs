//! The VM's sshd host key: made on the host, written into the seed
//! (`ssh_keys`), and pinned by boxvirt, so the first SSH connection is
//! already verified.

use ssh_key::private::Ed25519Keypair;
use ssh_key::{LineEnding, PrivateKey, PublicKey};

use crate::error::{Failure, Result};

/// An ed25519 key pair in OpenSSH formats.
#[derive(Clone, PartialEq, Eq)]
pub struct HostKey {
    /// `-----BEGIN OPENSSH PRIVATE KEY-----` ... (ends with a newline).
    pub private_openssh: String,
    /// `ssh-ed25519 AAAA... comment`.
    pub public_line: String,
}

// Never print the private key (errors and debug logs end up in bug reports).
impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostKey")
            .field("public_line", &self.public_line)
            .finish_non_exhaustive()
    }
}

/// A new ed25519 host key seeded from /dev/urandom.
pub fn generate_host_key(comment: &str) -> Result<HostKey> {
    let seed = super::random_bytes::<32>("the VM's ssh host key")?;
    host_key_from_seed(&seed, comment)
}

/// The key pair for a given seed (tests use fixed seeds for exact texts).
pub(crate) fn host_key_from_seed(seed: &[u8; 32], comment: &str) -> Result<HostKey> {
    let mut private = PrivateKey::from(Ed25519Keypair::from_seed(seed));
    private.set_comment(comment);
    let fail =
        |e: ssh_key::Error| Failure::failed(format!("cannot encode the VM's ssh host key: {e}"));
    let private_openssh = private
        .to_openssh(LineEnding::LF)
        .map_err(fail)?
        .to_string();
    let public_line = private.public_key().to_openssh().map_err(fail)?;
    Ok(HostKey {
        private_openssh,
        public_line,
    })
}

impl HostKey {
    /// "type base64" without the comment: what known_hosts pins and what the
    /// guest reports.
    pub fn pinned(&self) -> String {
        self.public_line
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The private key must be an ed25519 OpenSSH key (cloud-init writes it as
    /// ssh_host_ed25519_key) and the public line must be its public half.
    pub fn check(&self) -> Result<()> {
        let bad = |why: String| Failure::usage(format!("the VM's ssh host key is unusable: {why}"));
        let private = PrivateKey::from_openssh(&self.private_openssh)
            .map_err(|e| bad(format!("private key: {e}")))?;
        if private.algorithm() != ssh_key::Algorithm::Ed25519 || private.is_encrypted() {
            return Err(bad("want an unencrypted ed25519 private key".into()));
        }
        if self.public_line.contains(['\n', '\r']) {
            return Err(bad("the public key must be one line".into()));
        }
        let public = PublicKey::from_openssh(self.public_line.trim())
            .map_err(|e| bad(format!("public key: {e}")))?;
        if public.key_data() != private.public_key().key_data() {
            return Err(bad(
                "the public key does not belong to the private key".into()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_fresh_consistent_and_pinnable() {
        let a = generate_host_key("tiny-1").unwrap();
        let b = generate_host_key("tiny-1").unwrap();
        assert_ne!(a.public_line, b.public_line);
        assert!(
            a.private_openssh
                .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n")
                && a.private_openssh
                    .ends_with("-----END OPENSSH PRIVATE KEY-----\n")
        );
        assert!(
            a.public_line.starts_with("ssh-ed25519 AAAA") && a.public_line.ends_with(" tiny-1"),
            "{}",
            a.public_line
        );
        assert_eq!(a.pinned().split(' ').count(), 2);
        a.check().unwrap();
        assert!(!format!("{a:?}").contains("PRIVATE"));
        let mixed = HostKey {
            private_openssh: a.private_openssh.clone(),
            public_line: b.public_line.clone(),
        };
        assert!(mixed
            .check()
            .unwrap_err()
            .message
            .contains("does not belong"));
        let garbage = HostKey {
            private_openssh: "nope".into(),
            public_line: a.public_line.clone(),
        };
        assert!(garbage.check().is_err());
    }
}
