//! ssh config entries for VMs, for the system `ssh` (`vm ssh`, `vm
//! ssh-config`): the guest's pinned host key goes into a known_hosts file in
//! the data dir, and a ProxyCommand jumps through the nested host's sshd.

use std::path::{Path, PathBuf};

use crate::error::{Failure, Result};
use crate::quote;
use crate::settings::Settings;

/// DATA/ssh/vm_known_hosts: one line per VM address, rewritten on each use.
pub fn known_hosts_path(settings: &Settings) -> PathBuf {
    settings.ssh_dir().join("vm_known_hosts")
}

/// How ssh reaches guests: through the instance (its own ssh config), or
/// through the remote host of a qemu+ssh URI, or directly.
pub fn proxy_command(settings: &Settings) -> Option<String> {
    if settings.uses_instance() {
        return Some(format!(
            "ssh -F {} -W %h:%p {}",
            quote::ssh_proxy_command_path(&settings.ssh_config_path()),
            settings.ssh_host_alias()
        ));
    }
    let jump = super::reach::jump_host(settings).ok().flatten()?;
    Some(format!(
        "ssh -i {} -p {} -W %h:%p {}",
        quote::ssh_proxy_command_path(&jump.key),
        jump.port,
        quote::shell(&format!("{}@{}", jump.user, jump.host)).replace('%', "%%")
    ))
}

/// One `Host` entry (paths quoted for ssh_config, see [`quote`]).
pub fn host_entry(
    vm: &str,
    ip: &str,
    user: &str,
    key: &Path,
    known_hosts: &Path,
    proxy: Option<&str>,
) -> Result<String> {
    let mut s = format!(
        "Host {vm}\n  HostName {ip}\n  User {user}\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n",
        quote::ssh_config_path(key)?,
        quote::ssh_config_path(known_hosts)?
    );
    if let Some(p) = proxy {
        s.push_str(&format!("  ProxyCommand {p}\n"));
    }
    Ok(s)
}

/// Replaces the known_hosts lines of `ip` with the pinned key.
pub fn known_hosts_with(existing: &str, ip: &str, host_key: &str) -> String {
    let key: String = host_key
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let mut out: String = existing
        .lines()
        .filter(|l| l.split_whitespace().next() != Some(ip))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(&format!("{ip} {key}\n"));
    out
}

pub fn pin(settings: &Settings, ip: &str, host_key: &str) -> Result<PathBuf> {
    let path = known_hosts_path(settings);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::failed(format!("cannot create {}: {e}", dir.display())))?;
    }
    // Other boxvirt processes pin their VMs in the same file meanwhile.
    let fail = |e: std::io::Error| Failure::failed(format!("cannot write {}: {e}", path.display()));
    crate::atomic_file::locked(&path, || {
        let existing = std::fs::read_to_string(&path).unwrap_or_default();
        let text = known_hosts_with(&existing, ip, host_key);
        crate::atomic_file::write_whole(&path, text.as_bytes(), 0o644)
    })
    .and_then(|written| written)
    .map_err(fail)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_command_quotes_the_config_path_for_the_shell_and_ssh() {
        let src = crate::settings::Sources {
            cwd: "/w".into(),
            ..Default::default()
        };
        let flags = crate::cli::GlobalArgs {
            data_dir: Some("it's 100%".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&flags, &src).unwrap();
        assert_eq!(
            proxy_command(&s).unwrap(),
            r"ssh -F '/w/it'\''s 100%%/ssh/boxman.conf' -W %h:%p boxman-default"
        );
    }

    #[test]
    fn entry_and_known_hosts_text() {
        let e = host_entry(
            "tiny-1",
            "192.168.122.7",
            "boxvirt",
            Path::new("/d/ssh/id_ed25519"),
            Path::new("/d/ssh/vm_known_hosts"),
            Some("ssh -F /d/ssh/boxman.conf -W %h:%p boxman-default"),
        )
        .unwrap();
        assert_eq!(
            e,
            "Host tiny-1\n  HostName 192.168.122.7\n  User boxvirt\n  IdentityFile \"/d/ssh/id_ed25519\"\n  IdentitiesOnly yes\n  UserKnownHostsFile \"/d/ssh/vm_known_hosts\"\n  StrictHostKeyChecking yes\n  ProxyCommand ssh -F /d/ssh/boxman.conf -W %h:%p boxman-default\n"
        );
        let kh = known_hosts_with(
            "10.0.0.1 ssh-ed25519 OLD\n10.0.0.2 ssh-ed25519 KEEP\n",
            "10.0.0.1",
            "ssh-ed25519 NEW comment",
        );
        assert_eq!(kh, "10.0.0.2 ssh-ed25519 KEEP\n10.0.0.1 ssh-ed25519 NEW\n");
    }
}
