//! How to reach a VM: its address (reservation -> DHCP leases -> guest agent
//! -> ARP) and the SSH endpoints (the guest, and the jump host in front of
//! it when libvirtd runs in the nested host or on a remote host).

use std::path::PathBuf;

use serde::Serialize;

use super::metadata::VmMetadata;
use crate::error::{Failure, Result};
use crate::libvirt::Libvirt;
use crate::settings::{Settings, NESTED_SSH_USER};
use crate::sshjump::{Endpoint, HostKey};
use crate::xml;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Address {
    pub ip: String,
    /// "reservation", "lease", "agent" or "arp".
    pub source: &'static str,
}

/// The VM's first NIC: (network, mac).
pub fn first_nic(domain_xml: &str) -> Option<(Option<String>, String)> {
    let macs = xml::find_all(domain_xml, &["domain", "devices", "interface", "mac"]);
    let mac = macs.first()?.attr("address")?.to_ascii_lowercase();
    let network = xml::find_first(domain_xml, &["domain", "devices", "interface", "source"])
        .and_then(|s| s.attr("network").map(str::to_string));
    Some((network, mac))
}

/// The address, trying each source in order; `live` sources (leases, agent,
/// ARP) only when the domain runs.
pub fn discover(
    conn: &Libvirt,
    name: &str,
    meta: Option<&VmMetadata>,
    running: bool,
) -> Result<Option<Address>> {
    if let Some(r) = meta.and_then(|m| m.reservation()) {
        if super::nic_addresses::still_reserved(conn, &r.network, &r.mac, &r.ip) {
            return Ok(Some(Address {
                ip: r.ip.clone(),
                source: "reservation",
            }));
        }
    }
    if !running {
        return Ok(None);
    }
    let dom_xml = conn.domain_xml(name, false)?;
    if let Some((Some(network), mac)) = first_nic(&dom_xml) {
        if let Ok(leases) = conn.dhcp_leases(&network, Some(&mac)) {
            if let Some(l) = leases.into_iter().find(|l| !l.ip.contains(':')) {
                return Ok(Some(Address {
                    ip: l.ip,
                    source: "lease",
                }));
            }
        }
    }
    for source in ["agent", "arp"] {
        if let Ok(addrs) = conn.domain_addresses(name, source) {
            if let Some((_, ip)) = addrs.into_iter().find(|(_, ip)| !ip.starts_with("127.")) {
                return Ok(Some(Address {
                    ip,
                    source: if source == "agent" { "agent" } else { "arp" },
                }));
            }
        }
    }
    Ok(None)
}

/// The jump host in front of the guests, if any: the nested host's sshd for
/// the instance socket, the remote host of a qemu+ssh URI, none for a local
/// libvirtd (guests are on a local bridge).
pub fn jump_host(settings: &Settings) -> Result<Option<Endpoint>> {
    if settings.uses_instance() {
        return Ok(Some(Endpoint {
            host: "127.0.0.1".into(),
            port: settings.ssh_port,
            user: NESTED_SSH_USER.into(),
            key: settings.ssh_key_path(),
            host_key: HostKey::KnownHosts {
                file: settings.known_hosts_path(),
                pattern: format!("[127.0.0.1]:{}", settings.ssh_port),
            },
        }));
    }
    let uri = settings.uri();
    if !matches!(uri.transport(), Some("ssh" | "libssh" | "libssh2")) {
        return Ok(None);
    }
    let user = match uri.user() {
        Some(u) => u.to_string(),
        None => settings
            .process
            .user
            .clone()
            .unwrap_or_else(|| "root".into()),
    };
    let host = uri.host().to_string();
    let port = uri.port().unwrap_or(22);
    let home = settings
        .process
        .home
        .clone()
        .unwrap_or_else(|| PathBuf::from("/root"));
    let keyfile = uri
        .param_path("keyfile")
        .unwrap_or_else(|| home.join(".ssh/id_ed25519"));
    let pattern = if port == 22 {
        host.clone()
    } else {
        format!("[{host}]:{port}")
    };
    Ok(Some(Endpoint {
        host,
        port,
        user,
        key: keyfile,
        host_key: HostKey::KnownHosts {
            file: home.join(".ssh/known_hosts"),
            pattern,
        },
    }))
}

/// The guest's SSH endpoint from its metadata.
pub fn guest_endpoint(
    settings: &Settings,
    name: &str,
    meta: &VmMetadata,
    ip: &str,
) -> Result<Endpoint> {
    let host_key = meta.host_key.clone().ok_or_else(|| {
        Failure::failed(format!("vm '{name}' has no pinned host key (it was not created with a cloud-init seed by boxvirt)"))
    })?;
    Ok(Endpoint {
        host: ip.to_string(),
        port: 22,
        user: meta.user.clone().unwrap_or_else(|| "boxvirt".into()),
        key: settings.ssh_key_path(),
        host_key: HostKey::Pinned(host_key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_nic_reads_network_and_mac() {
        let x = "<domain><devices><interface type='network'><mac address='52:54:00:AA:bb:cc'/><source network='default'/></interface></devices></domain>";
        assert_eq!(
            first_nic(x),
            Some((Some("default".into()), "52:54:00:aa:bb:cc".into()))
        );
        assert_eq!(first_nic("<domain><devices/></domain>"), None);
    }

    #[test]
    fn jump_host_for_instance_and_qemu_ssh() {
        let src = crate::settings::Sources {
            cwd: "/w".into(),
            uid: 1,
            gid: 1,
            ..Default::default()
        };
        let s = Settings::resolve(&Default::default(), &src).unwrap();
        let j = jump_host(&s).unwrap().unwrap();
        assert_eq!(
            (j.host.as_str(), j.port, j.user.as_str()),
            ("127.0.0.1", 2222, "qemu_user")
        );
        let flags = crate::cli::GlobalArgs {
            connect: Some("qemu+ssh://ops@lab1:2200/system?keyfile=/k%20%26y&x=1".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&flags, &src).unwrap();
        let j = jump_host(&s).unwrap().unwrap();
        assert_eq!(
            (
                j.host.as_str(),
                j.port,
                j.user.as_str(),
                j.key.to_str().unwrap()
            ),
            ("lab1", 2200, "ops", "/k &y")
        );
        let flags = crate::cli::GlobalArgs {
            connect: Some("qemu+libssh2://[fd00::7]/system".into()),
            ..Default::default()
        };
        let src = crate::settings::Sources {
            env: [("USER".to_string(), "me".to_string())].into(),
            ..src
        };
        let j = jump_host(&Settings::resolve(&flags, &src).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(
            (j.host.as_str(), j.port, j.user.as_str()),
            ("fd00::7", 22, "me")
        );
        match j.host_key {
            HostKey::KnownHosts { pattern, .. } => assert_eq!(pattern, "fd00::7"),
            other => panic!("{other:?}"),
        }
        for local in ["qemu:///system", "qemu+tls://hv/system", "test:///default"] {
            let flags = crate::cli::GlobalArgs {
                connect: Some(local.into()),
                ..Default::default()
            };
            assert!(
                jump_host(&Settings::resolve(&flags, &src).unwrap())
                    .unwrap()
                    .is_none(),
                "{local}"
            );
        }
    }
}
