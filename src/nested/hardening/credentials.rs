//! Guideline 2: the libvirt socket wants SASL (SCRAM-SHA-256). `up` makes the
//! one user's random password in DATA/auth/password and a libvirt auth.conf
//! beside it (both mode 0600, owned by the host user); the entrypoint sets the
//! password in libvirtd's sasldb (docker/hardened.sh), boxvirt reads it to
//! authenticate, and virsh / virt-manager use the auth.conf through
//! LIBVIRT_AUTH_FILE.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::atomic_file;
use crate::error::{Failure, Result};

/// Data dir subdirectory (bound read-only to /data/auth under --hardened).
pub const DIR: &str = "auth";
/// The SASL user's name (docker/hardened.sh: SASL_USER).
pub const USER: &str = "boxvirt";
pub const PASSWORD: &str = "password";
pub const AUTH_CONF: &str = "auth.conf";

pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join(DIR)
}

pub fn auth_conf(data_dir: &Path) -> PathBuf {
    dir(data_dir).join(AUTH_CONF)
}

/// The auth.conf text: the credential, for unix-socket connections
/// ("localhost") and any other host the URI names ("default").
pub fn auth_conf_text(password: &str) -> String {
    format!(
        "[credentials-boxvirt]\nauthname={USER}\npassword={password}\n\n[auth-libvirt-localhost]\ncredentials=boxvirt\n\n[auth-libvirt-default]\ncredentials=boxvirt\n"
    )
}

/// Makes the password (once) and the auth.conf, owned by the host user.
/// Files that exist are checked first: a wrong owner or mode is refused,
/// never silently fixed.
pub fn ensure(data_dir: &Path, uid: u32, gid: u32) -> Result<String> {
    check(data_dir, uid)?;
    let dir = dir(data_dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::failed(format!("cannot create {}: {e}", dir.display())))?;
    let _ = std::os::unix::fs::chown(&dir, Some(uid), Some(gid));
    let _ = std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700));
    let pw_path = dir.join(PASSWORD);
    let password = match read_password(data_dir)? {
        Some(p) => p,
        None => {
            let p = random_password()?;
            write_private(&pw_path, &format!("{p}\n"), uid, gid)?;
            p
        }
    };
    write_private(&dir.join(AUTH_CONF), &auth_conf_text(&password), uid, gid)?;
    Ok(password)
}

fn write_private(path: &Path, text: &str, uid: u32, gid: u32) -> Result<()> {
    atomic_file::write_whole(path, text.as_bytes(), 0o600)
        .map_err(|e| Failure::failed(format!("cannot write {}: {e}", path.display())))?;
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|e| Failure::failed(format!("cannot hand {} to uid {uid}: {e}", path.display())))
}

/// When the data dir holds a credential, boxvirt authenticates with it to
/// this instance's URIs (socket, ssh, and the one the settings resolve to).
pub fn register(settings: &crate::settings::Settings) -> Result<()> {
    if let Some(password) = read_password(&settings.data_dir)? {
        let mut uris = vec![settings.socket_uri(), settings.ssh_uri()];
        if settings.uses_instance() {
            uris.push(settings.libvirt_uri());
        }
        for uri in uris {
            crate::libvirt::register_credential(&uri, USER, &password);
        }
    }
    Ok(())
}

/// The stored password, if there is one.
pub fn read_password(data_dir: &Path) -> Result<Option<String>> {
    let path = dir(data_dir).join(PASSWORD);
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure::failed(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Refuses credential files that others could read or that belong to
/// someone else than the host user (or root), naming the file.
pub fn check(data_dir: &Path, uid: u32) -> Result<()> {
    for name in [PASSWORD, AUTH_CONF] {
        let path = dir(data_dir).join(name);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let mode = meta.mode() & 0o7777;
        let bad = if !meta.file_type().is_file() {
            Some("is not a regular file".to_string())
        } else if meta.uid() != uid && meta.uid() != 0 {
            Some(format!("belongs to uid {}, not {uid}", meta.uid()))
        } else if mode & 0o077 != 0 {
            Some(format!("has mode {mode:04o}, readable by others"))
        } else {
            None
        };
        if let Some(why) = bad {
            return Err(Failure::failed(format!(
                "refusing to start: credential file {} {why}; it must be a file of uid {uid} with mode 0600 (chown {uid} / chmod 600 it, or remove it to make a new password)",
                path.display()
            )));
        }
    }
    Ok(())
}

/// 32 random bytes from the kernel, hex.
fn random_password() -> Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Failure::failed(format!("cannot read /dev/urandom: {e}")))?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn me() -> (u32, u32) {
        // SAFETY: getuid/getgid have no preconditions.
        unsafe { (libc::getuid(), libc::getgid()) }
    }

    #[test]
    fn ensure_makes_a_private_password_once_and_an_auth_conf() {
        let d = tempfile::tempdir().unwrap();
        let (uid, gid) = me();
        let p1 = ensure(d.path(), uid, gid).unwrap();
        assert_eq!(p1.len(), 64);
        assert_eq!(ensure(d.path(), uid, gid).unwrap(), p1);
        for f in [PASSWORD, AUTH_CONF] {
            let m = std::fs::metadata(dir(d.path()).join(f)).unwrap();
            assert_eq!(m.mode() & 0o777, 0o600, "{f}");
        }
        let conf = std::fs::read_to_string(auth_conf(d.path())).unwrap();
        assert!(conf.contains(&format!("password={p1}")), "{conf}");
    }

    #[test]
    fn a_readable_credential_file_is_refused_by_name() {
        let d = tempfile::tempdir().unwrap();
        let (uid, gid) = me();
        ensure(d.path(), uid, gid).unwrap();
        let pw = dir(d.path()).join(PASSWORD);
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = ensure(d.path(), uid, gid).unwrap_err();
        assert!(
            e.message.contains(&pw.display().to_string()),
            "{}",
            e.message
        );
        assert!(e.message.contains("0644"), "{}", e.message);
    }
}
