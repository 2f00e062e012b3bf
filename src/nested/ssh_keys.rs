//! The instance's SSH client key pair, generated natively on the host before
//! the container starts (the entrypoint installs the .pub as qemu_user's
//! authorized_keys), and the pinned sshd host key (known_hosts).

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use ssh_key::private::Ed25519Keypair;
use ssh_key::{LineEnding, PrivateKey};

use crate::error::{Failure, Result};

/// Gives a file or directory we created to the host user when running as
/// root (e.g. under sudo), so the user can read their own key and config.
pub fn hand_over(path: &Path, uid: u32, gid: u32) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let _ = std::os::unix::fs::chown(path, Some(uid), Some(gid));
    }
}

/// Creates `key` (0600) and `key.pub` when missing; derives a missing .pub
/// from an existing private key. Returns true when a new pair was made.
pub fn ensure_client_key(key: &Path, comment: &str, uid: u32, gid: u32) -> Result<bool> {
    let pub_path = key.with_extension("pub");
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        Failure::failed(format!("cannot {what} {}: {e}", key.display()))
    };
    if let Some(dir) = key.parent() {
        fs::create_dir_all(dir).map_err(|e| fail("create the directory of", &e))?;
    }
    let exists = fs::metadata(key).map(|m| m.len() > 0).unwrap_or(false);
    let (private, created) = if exists {
        let text = fs::read_to_string(key).map_err(|e| fail("read", &e))?;
        let private = PrivateKey::from_openssh(&text).map_err(|e| fail("parse the ssh key", &e))?;
        // ssh refuses a private key that others can read.
        let _ = fs::set_permissions(key, fs::Permissions::from_mode(0o600));
        (private, false)
    } else {
        let mut seed = [0u8; 32];
        fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut seed))
            .map_err(|e| fail("get randomness for", &e))?;
        let mut private = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
        private.set_comment(comment);
        let text = private
            .to_openssh(LineEnding::LF)
            .map_err(|e| fail("encode", &e))?;
        let _ = fs::remove_file(key);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(key)
            .map_err(|e| fail("write", &e))?;
        f.write_all(text.as_bytes())
            .map_err(|e| fail("write", &e))?;
        hand_over(key, uid, gid);
        (private, true)
    };
    if created
        || !fs::metadata(&pub_path)
            .map(|m| m.len() > 0)
            .unwrap_or(false)
    {
        let line = private
            .public_key()
            .to_openssh()
            .map_err(|e| fail("encode the public key of", &e))?;
        fs::write(&pub_path, format!("{line}\n"))
            .map_err(|e| fail("write the public key of", &e))?;
        let _ = fs::set_permissions(&pub_path, fs::Permissions::from_mode(0o644));
        hand_over(&pub_path, uid, gid);
    }
    Ok(created)
}

/// The sshd host public key the entrypoint keeps in the data dir, as
/// "type base64" (comment dropped), if it is there yet.
pub fn host_public_key(ssh_dir: &Path) -> Option<String> {
    let text = fs::read_to_string(ssh_dir.join("host").join("ssh_host_ed25519_key.pub")).ok()?;
    let mut parts = text.split_whitespace();
    let (kind, b64) = (parts.next()?, parts.next()?);
    kind.starts_with("ssh-").then(|| format!("{kind} {b64}"))
}

/// known_hosts line for the published port (OpenSSH writes `[host]:port`
/// for any port but 22).
pub fn known_hosts_line(port: u16, host_key: &str) -> String {
    if port == 22 {
        format!("127.0.0.1 {host_key}\n")
    } else {
        format!("[127.0.0.1]:{port} {host_key}\n")
    }
}

/// The key file's mode, for `status` (ssh refuses keys others can read).
pub fn key_mode(key: &Path) -> Option<u32> {
    fs::metadata(key)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_a_0600_pair_once_and_reuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("ssh/id_ed25519");
        assert!(ensure_client_key(&key, "boxman-t", 0, 0).unwrap());
        assert_eq!(key_mode(&key), Some(0o600));
        let public = fs::read_to_string(key.with_extension("pub")).unwrap();
        assert!(
            public.starts_with("ssh-ed25519 AAAA") && public.trim_end().ends_with("boxman-t"),
            "{public}"
        );
        let private = fs::read_to_string(&key).unwrap();
        assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        // Second call keeps the pair; a lost .pub is derived again.
        fs::remove_file(key.with_extension("pub")).unwrap();
        assert!(!ensure_client_key(&key, "boxman-t", 0, 0).unwrap());
        assert_eq!(fs::read_to_string(&key).unwrap(), private);
        assert_eq!(
            fs::read_to_string(key.with_extension("pub")).unwrap(),
            public
        );
    }

    #[test]
    fn known_hosts_uses_bracketed_port() {
        assert_eq!(
            known_hosts_line(2222, "ssh-ed25519 AAAAC3"),
            "[127.0.0.1]:2222 ssh-ed25519 AAAAC3\n"
        );
        assert_eq!(
            known_hosts_line(22, "ssh-ed25519 AAAAC3"),
            "127.0.0.1 ssh-ed25519 AAAAC3\n"
        );
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("host")).unwrap();
        fs::write(
            dir.path().join("host/ssh_host_ed25519_key.pub"),
            "ssh-ed25519 AAAAC3xyz root@c\n",
        )
        .unwrap();
        assert_eq!(
            host_public_key(dir.path()).as_deref(),
            Some("ssh-ed25519 AAAAC3xyz")
        );
    }
}
