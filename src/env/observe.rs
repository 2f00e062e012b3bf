//! Reads what each host has (memory, networks, domains and their
//! environment marks) through the libvirt layer. Read-only; a host that
//! cannot be reached or read becomes [`Reach::Down`] with the reason, and
//! the plan decides what that means.

use super::hosts::Target;
use super::mark::EnvMark;
use super::observed::{HostState, Observed, ObservedDomain, ObservedNetwork, Reach};
use crate::error::Result;
use crate::libvirt::Libvirt;

/// Every host, in the order given, read at the same time (a host that does
/// not answer costs its connect timeout once, not once per host before it).
pub fn observe_all(targets: &[Target]) -> Vec<HostState> {
    std::thread::scope(|scope| {
        let reads: Vec<_> = targets
            .iter()
            .map(|t| (t, scope.spawn(move || observe(t))))
            .collect();
        reads
            .into_iter()
            .map(|(t, read)| {
                read.join().unwrap_or_else(|_| HostState {
                    name: t.name.clone(),
                    uri: t.uri.clone(),
                    reach: Reach::Down("reading the host failed unexpectedly".to_string()),
                })
            })
            .collect()
    })
}

pub fn observe(target: &Target) -> HostState {
    let reach = match read(target) {
        Ok(o) => Reach::Up(o),
        Err(f) => Reach::Down(f.message),
    };
    HostState {
        name: target.name.clone(),
        uri: target.uri.clone(),
        reach,
    }
}

fn read(target: &Target) -> Result<Observed> {
    let conn = connect(target)?;
    let memory = conn.node_memory()?;
    let domains = domains(&conn)?;
    Ok(Observed {
        total_mib: memory.total_mib,
        free_mib: memory
            .free_mib
            .unwrap_or_else(|| Observed::estimate_free(memory.total_mib, &domains)),
        networks: networks(&conn)?,
        domains,
    })
}

/// A connection to the host, with a next step in its error.
pub fn connect(target: &Target) -> Result<Libvirt> {
    let next_step = match &target.instance {
        Some(s) => {
            // A socket path too deep for a unix address goes through a link.
            crate::nested::socket_link::ensure(s)?;
            format!(
                "run 'boxvirt up --instance {} --data-dir {}' or check the host's entry in the file",
                s.instance,
                crate::quote::shell_path(&s.data_dir)
            )
        }
        None => "check the host's uri in the file and that libvirtd runs there".to_string(),
    };
    Libvirt::open(&target.uri, &next_step)
}

/// Every domain with its environment mark, when it has one.
pub fn domains(conn: &Libvirt) -> Result<Vec<ObservedDomain>> {
    let mut out = Vec::new();
    for d in conn.list_domains()? {
        let mark = match conn.domain_metadata(&d.name) {
            // Left unfinished by a killed create: absent to the plan, and
            // the create clears it (vm/leftovers.rs).
            Ok(Some(raw)) if crate::vm::leftovers::is_template_metadata(&raw) => continue,
            Ok(meta) => meta.as_deref().and_then(EnvMark::parse),
            // Undefined by someone else since the listing.
            Err(f) if f.exit == crate::error::Exit::NotFound => continue,
            // A transient domain has no persistent config to hold metadata;
            // no environment made it.
            Err(_) if !d.persistent => None,
            Err(f) => return Err(f),
        };
        out.push(ObservedDomain {
            name: d.name,
            memory_mib: d.memory_mib,
            vcpus: d.vcpus,
            active: d.state.is_active(),
            mark,
        });
    }
    Ok(out)
}

fn networks(conn: &Libvirt) -> Result<Vec<ObservedNetwork>> {
    let mut out = Vec::new();
    for n in conn.list_networks()? {
        let cidr = match conn.network_xml(&n.name) {
            Ok(xml) => network_cidr(&xml),
            Err(f) if f.exit == crate::error::Exit::NotFound => continue,
            Err(f) => return Err(f),
        };
        out.push(ObservedNetwork { name: n.name, cidr });
    }
    Ok(out)
}

/// The subnet of a network's first IPv4 address, `A.B.C.D/N`.
pub fn network_cidr(xml: &str) -> Option<String> {
    let ip = crate::xml::find_all(xml, &["network", "ip"])
        .into_iter()
        .find(|ip| ip.attr("family").is_none_or(|f| f == "ipv4"))?;
    let addr: std::net::Ipv4Addr = ip.attr("address")?.parse().ok()?;
    let prefix: u32 = match (ip.attr("prefix"), ip.attr("netmask")) {
        (Some(p), _) => p.parse().ok()?,
        (None, Some(m)) => u32::from(m.parse::<std::net::Ipv4Addr>().ok()?).count_ones(),
        (None, None) => return None,
    };
    if prefix == 0 || prefix > 32 {
        return None;
    }
    let mask = u32::MAX << (32 - prefix);
    let net = std::net::Ipv4Addr::from(u32::from(addr) & mask);
    Some(format!("{net}/{prefix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_cidr_reads_netmask_or_prefix() {
        let nat = "<network><name>default</name><ip address='192.168.122.1' netmask='255.255.255.0'/></network>";
        assert_eq!(network_cidr(nat).as_deref(), Some("192.168.122.0/24"));
        let pre = "<network><ip family='ipv6' address='fd00::1' prefix='64'/><ip address='10.10.0.1' prefix='16'/></network>";
        assert_eq!(network_cidr(pre).as_deref(), Some("10.10.0.0/16"));
        assert_eq!(network_cidr("<network><name>x</name></network>"), None);
    }
}
