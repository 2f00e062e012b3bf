//! The instance's SSH client key pair, generated natively on the host before
//! the container starts (the entrypoint installs the .pub as qemu_user's
//! authorized_keys), and the pinned sshd host key (known_hosts).

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ssh_key::private::Ed25519Keypair;
use ssh_key::{LineEnding, PrivateKey};

use crate::atomic_file;
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
/// Safe when several boxvirt processes make the first key at once (two
/// `vm create`s in one project): the key appears whole or not at all, and
/// every racer ends up using the one that won.
pub fn ensure_client_key(key: &Path, comment: &str, uid: u32, gid: u32) -> Result<bool> {
    let pub_path = key.with_extension("pub");
    if let Some(dir) = key.parent() {
        fs::create_dir_all(dir).map_err(|e| key_fail("create the directory of", key, &e))?;
    }
    let (private, created) = match read_private(key)? {
        Some(private) => {
            // ssh refuses a private key that others can read.
            let _ = fs::set_permissions(key, fs::Permissions::from_mode(0o600));
            (private, false)
        }
        None => create_private(key, comment, uid, gid)?,
    };
    if created
        || !fs::metadata(&pub_path)
            .map(|m| m.len() > 0)
            .unwrap_or(false)
    {
        let line = private
            .public_key()
            .to_openssh()
            .map_err(|e| key_fail("encode the public key of", key, &e))?;
        atomic_file::write_whole(&pub_path, format!("{line}\n").as_bytes(), 0o644)
            .map_err(|e| key_fail("write the public key of", key, &e))?;
        hand_over(&pub_path, uid, gid);
    }
    Ok(created)
}

fn key_fail(what: &str, key: &Path, e: &dyn std::fmt::Display) -> Failure {
    Failure::failed(format!("cannot {what} {}: {e}", key.display()))
}

/// The private key at `key`; None when it is missing or empty (an empty
/// file is what a writer killed by an older boxvirt left).
fn read_private(key: &Path) -> Result<Option<PrivateKey>> {
    match fs::read_to_string(key) {
        Ok(text) if text.is_empty() => Ok(None),
        Ok(text) => PrivateKey::from_openssh(&text)
            .map(Some)
            .map_err(|e| key_fail("parse the ssh key", key, &e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(key_fail("read", key, &e)),
    }
}

/// Writes a new key beside `key` and links it into place, which fails if
/// another process got there first; then theirs is used.
fn create_private(key: &Path, comment: &str, uid: u32, gid: u32) -> Result<(PrivateKey, bool)> {
    let mut seed = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(|e| key_fail("get randomness for", key, &e))?;
    let mut private = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    private.set_comment(comment);
    let text = private
        .to_openssh(LineEnding::LF)
        .map_err(|e| key_fail("encode", key, &e))?;
    let tmp = atomic_file::sibling(key, "new");
    atomic_file::write_whole(&tmp, text.as_bytes(), 0o600)
        .map_err(|e| key_fail("write", key, &e))?;
    hand_over(&tmp, uid, gid);
    // An empty leftover is not a key: clear it so the link can succeed.
    if fs::metadata(key).is_ok_and(|m| m.len() == 0) {
        let _ = fs::remove_file(key);
    }
    let linked = fs::hard_link(&tmp, key);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok((private, true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match read_private(key)? {
            Some(theirs) => Ok((theirs, false)),
            None => Err(key_fail("write", key, &e)),
        },
        Err(e) => Err(key_fail("write", key, &e)),
    }
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
    fn racing_first_keys_agree_on_one_pair() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("ssh/id_ed25519");
        let gate = std::sync::Arc::new(std::sync::Barrier::new(16));
        let racers: Vec<_> = (0..16)
            .map(|_| {
                let (key, gate) = (key.clone(), gate.clone());
                std::thread::spawn(move || {
                    gate.wait();
                    let created = ensure_client_key(&key, "boxman-t", 0, 0).unwrap();
                    // What this racer would sign with: the file as it is now.
                    (created, fs::read_to_string(&key).unwrap())
                })
            })
            .collect();
        let results: Vec<(bool, String)> = racers.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(results.iter().filter(|(created, _)| *created).count(), 1);
        let first = &results[0].1;
        assert!(
            results.iter().all(|(_, k)| k == first),
            "racers saw different keys"
        );
        let public = PrivateKey::from_openssh(first)
            .unwrap()
            .public_key()
            .to_openssh()
            .unwrap();
        assert_eq!(
            fs::read_to_string(key.with_extension("pub"))
                .unwrap()
                .trim_end(),
            public
        );
        // No temporary file is left beside the key.
        assert_eq!(fs::read_dir(key.parent().unwrap()).unwrap().count(), 2);
    }

    #[test]
    fn an_empty_key_file_left_by_a_killed_writer_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id_ed25519");
        fs::write(&key, "").unwrap();
        assert!(ensure_client_key(&key, "boxman-t", 0, 0).unwrap());
        assert!(fs::read_to_string(&key)
            .unwrap()
            .starts_with("-----BEGIN OPENSSH"));
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
