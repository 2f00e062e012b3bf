//! The generated ssh config (DATA/ssh/boxman.conf) and its link in
//! ~/.ssh/config.d/boxman/. Paths are always absolute host paths (LESSONS:
//! a relative data dir once put a container path into IdentityFile).

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Failure, Result};
use crate::quote;
use crate::settings::{Settings, NESTED_SSH_USER};

/// The text of boxman.conf for an instance whose sshd is on `port`. Paths
/// are quoted for ssh_config (a data dir with a space, `%` or `#` is fine;
/// one with `"` is refused).
pub fn config_text(alias: &str, port: u16, data_dir: &Path) -> Result<String> {
    let ssh = data_dir.join("ssh");
    Ok(format!(
        "Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User {NESTED_SSH_USER}\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n",
        quote::ssh_config_path(&ssh.join("id_ed25519"))?,
        quote::ssh_config_path(&ssh.join("known_hosts"))?,
    ))
}

/// Where link-ssh puts the link: ~/.ssh/config.d/boxman/boxman-<instance>.conf.
pub fn link_path(settings: &Settings) -> Result<PathBuf> {
    let home = settings
        .process
        .home
        .as_ref()
        .filter(|h| !h.as_os_str().is_empty())
        .ok_or_else(|| Failure::failed("HOME is not set; cannot find ~/.ssh"))?;
    Ok(home
        .join(".ssh")
        .join("config.d")
        .join("boxman")
        .join(format!("{}.conf", settings.ssh_host_alias())))
}

/// Creates (or re-points) the link; directories are made 0700 as ssh wants.
pub fn link(settings: &Settings) -> Result<PathBuf> {
    let target = settings.ssh_config_path();
    if !target.exists() {
        return Err(Failure::not_found(format!(
            "no ssh config at {}; run 'boxvirt up' (instance '{}') first",
            target.display(),
            settings.instance
        )));
    }
    let link = link_path(settings)?;
    if let Some(dir) = link.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Failure::failed(format!("cannot create {}: {e}", dir.display())))?;
    }
    match fs::symlink_metadata(&link) {
        Ok(m) if m.file_type().is_symlink() => fs::remove_file(&link)
            .map_err(|e| Failure::failed(format!("cannot replace {}: {e}", link.display())))?,
        Ok(_) => {
            return Err(Failure::conflict(format!(
                "{} exists and is not a link; move it away, then run 'boxvirt link-ssh'",
                link.display()
            )))
        }
        Err(_) => {}
    }
    std::os::unix::fs::symlink(&target, &link).map_err(|e| {
        Failure::failed(format!(
            "cannot link {} -> {}: {e}",
            link.display(),
            target.display()
        ))
    })?;
    Ok(link)
}

/// Removes the link only (never a regular file someone put there).
/// Returns false when there was no link.
pub fn unlink(settings: &Settings) -> Result<bool> {
    let link = link_path(settings)?;
    match fs::symlink_metadata(&link) {
        Ok(m) if m.file_type().is_symlink() => {
            fs::remove_file(&link)
                .map_err(|e| Failure::failed(format!("cannot remove {}: {e}", link.display())))?;
            Ok(true)
        }
        Ok(_) => Err(Failure::conflict(format!(
            "{} is not a link; leaving it alone",
            link.display()
        ))),
        Err(_) => Ok(false),
    }
}

/// Writes boxman.conf and known_hosts (0644, owned by the host user).
pub fn write_files(settings: &Settings, port: u16, known_hosts: &str) -> Result<()> {
    let write = |path: PathBuf, text: &str| -> Result<()> {
        fs::write(&path, text)
            .map_err(|e| Failure::failed(format!("cannot write {}: {e}", path.display())))?;
        let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o644));
        super::ssh_keys::hand_over(&path, settings.host_uid, settings.host_gid);
        Ok(())
    };
    write(settings.known_hosts_path(), known_hosts)?;
    write(
        settings.ssh_config_path(),
        &config_text(&settings.ssh_host_alias(), port, &settings.data_dir)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_absolute_paths_and_pins_the_host_key() {
        let text = config_text("boxman-dev02", 2223, Path::new("/home/u/p/data-dev02")).unwrap();
        assert_eq!(
            text,
            r#"Host boxman-dev02
  HostName 127.0.0.1
  Port 2223
  User qemu_user
  IdentityFile "/home/u/p/data-dev02/ssh/id_ed25519"
  IdentitiesOnly yes
  UserKnownHostsFile "/home/u/p/data-dev02/ssh/known_hosts"
  StrictHostKeyChecking yes
"#
        );
        let text = config_text("boxman-x", 2223, Path::new("/p/a b%c")).unwrap();
        assert!(
            text.contains("IdentityFile \"/p/a b%%c/ssh/id_ed25519\""),
            "{text}"
        );
        assert!(config_text("boxman-x", 2223, Path::new("/p/a\"b")).is_err());
    }
}
