//! Every NIC's address (`vm ip`, `vm info`), the primary NIC's first: the
//! reservation boxvirt recorded for the NIC's MAC while the network still
//! holds it, else (running VMs) the network's DHCP lease for that MAC.

use serde::Serialize;

use super::metadata::VmMetadata;
use crate::error::Result;
use crate::libvirt::Libvirt;
use crate::xml;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NicAddress {
    /// None for an interface that is not on a libvirt network.
    pub network: Option<String>,
    pub mac: String,
    pub ip: Option<String>,
    /// "reservation" or "lease"; None without an address.
    pub source: Option<&'static str>,
}

/// The domain's interfaces in order: (network, mac); one without a MAC
/// is left out.
pub fn interfaces(domain_xml: &str) -> Vec<(Option<String>, String)> {
    use quick_xml::events::Event;
    const IFACE: &[&str] = &["domain", "devices", "interface"];
    let mut reader = quick_xml::Reader::from_str(domain_xml);
    let mut stack: Vec<String> = Vec::new();
    let mut rows: Vec<(Option<String>, Option<String>)> = Vec::new();
    loop {
        let (e, empty) = match reader.read_event() {
            Ok(Event::Start(e)) => (e, false),
            Ok(Event::Empty(e)) => (e, true),
            Ok(Event::End(_)) => {
                stack.pop();
                continue;
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => continue,
        };
        stack.push(e.name().as_ref().to_string());
        let attr = |name: &str| {
            e.attributes()
                .flatten()
                .find(|a| a.key.as_ref() == name)
                .and_then(|a| {
                    a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .ok()
                        .map(|v| v.into_owned())
                })
        };
        if stack == IFACE {
            rows.push((None, None));
        } else if stack.len() == 4 && stack[..3] == *IFACE {
            if let Some(row) = rows.last_mut() {
                match stack[3].as_str() {
                    "mac" => row.1 = attr("address").map(|m| m.to_ascii_lowercase()),
                    "source" => row.0 = attr("network"),
                    _ => {}
                }
            }
        }
        if empty {
            stack.pop();
        }
    }
    rows.into_iter()
        .filter_map(|(net, mac)| Some((net, mac?)))
        .collect()
}

pub fn list(
    conn: &Libvirt,
    name: &str,
    meta: Option<&VmMetadata>,
    running: bool,
) -> Result<Vec<NicAddress>> {
    let dom_xml = conn.domain_xml(name, !running)?;
    let mut out = Vec::new();
    for (network, mac) in interfaces(&dom_xml) {
        let (ip, source) = match address_of(conn, meta, network.as_deref(), &mac, running) {
            Some((ip, source)) => (Some(ip), Some(source)),
            None => (None, None),
        };
        out.push(NicAddress {
            network,
            mac,
            ip,
            source,
        });
    }
    Ok(out)
}

fn address_of(
    conn: &Libvirt,
    meta: Option<&VmMetadata>,
    network: Option<&str>,
    mac: &str,
    running: bool,
) -> Option<(String, &'static str)> {
    let network = network?;
    let reserved = meta
        .into_iter()
        .flat_map(|m| &m.reservations)
        .find(|r| r.network == network && r.mac.eq_ignore_ascii_case(mac));
    if let Some(r) = reserved {
        if still_reserved(conn, network, mac, &r.ip) {
            return Some((r.ip.clone(), "reservation"));
        }
    }
    if !running {
        return None;
    }
    let leases = conn.dhcp_leases(network, Some(mac)).ok()?;
    let lease = leases.into_iter().find(|l| !l.ip.contains(':'))?;
    Some((lease.ip, "lease"))
}

/// The network still has the host entry `mac` -> `ip`.
pub fn still_reserved(conn: &Libvirt, network: &str, mac: &str, ip: &str) -> bool {
    conn.network_xml(network)
        .map(|x| {
            xml::find_all(&x, &["network", "ip", "dhcp", "host"])
                .iter()
                .any(|h| {
                    h.attr("mac").is_some_and(|m| m.eq_ignore_ascii_case(mac))
                        && h.attr("ip") == Some(ip)
                })
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_in_order_with_their_networks() {
        let x = "<domain><devices><interface type='network'><mac address='52:54:00:AA:00:01'/><source network='a'/></interface><interface type='user'><mac address='52:54:00:00:00:02'/></interface><interface type='network'><mac address='52:54:00:00:00:03'/><source network='c'/></interface></devices></domain>";
        let got = interfaces(x);
        assert_eq!(got[0], (Some("a".into()), "52:54:00:aa:00:01".into()));
        assert_eq!(got.len(), 3);
        assert_eq!(got[2].0.as_deref(), Some("c"));
    }
}
