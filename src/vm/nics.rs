//! A new VM's NICs, one per network (the first is the primary: the VM's
//! SSH address is its address): each network checked, each NIC's MAC
//! chosen and its address planned before anything is made. An address is
//! a free slot of the network's block (its MAC is the NIC's; nothing on
//! the network changes), else, on a network without a block, a live DHCP
//! reservation.

use std::net::Ipv4Addr;

use serde::Serialize;

use super::slots::{Block, Slot};
use super::{address, identity, slot_claim, slots};
use crate::error::{Failure, Result};
use crate::libvirt::{Libvirt, SettledDomains};
use crate::names;
use crate::output::Output;

/// NICs boxvirt gives one VM (eth0..eth7 in the guest).
pub const MAX_NICS: usize = 8;

/// One NIC of the VM being made.
#[derive(Debug, Clone)]
pub struct Nic {
    pub network: String,
    pub mac: String,
    /// The network's block, the slot picked from it and the domains that
    /// had settled then (see slot_claim).
    pub slot: Option<(Block, Slot, SettledDomains)>,
    /// On a network without a block: the address to reserve live.
    pub live_ip: Option<Ipv4Addr>,
}

/// What `vm create -o json` says of each NIC.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NicOut {
    pub network: String,
    pub mac: String,
    pub ip: Option<String>,
}

/// The networks asked for, checked as input alone: valid names, each once,
/// at most [`MAX_NICS`].
pub fn check_names(networks: &[String]) -> Result<()> {
    for (i, net) in networks.iter().enumerate() {
        names::validate("network", net)?;
        if networks[..i].contains(net) {
            return Err(Failure::usage(format!(
                "network '{net}' is given twice; a VM gets one NIC per network, so name each network once"
            )));
        }
    }
    if networks.len() > MAX_NICS {
        return Err(Failure::usage(format!(
            "{} networks given; a VM gets at most {MAX_NICS} NICs",
            networks.len()
        )));
    }
    Ok(())
}

/// Plans one NIC per network: checks each exists (and is active when the
/// VM is to start), picks its MAC and address. `reserve`: false for
/// `--no-reserve` (a MAC from the name, no address).
pub fn plan(
    conn: &Libvirt,
    out: &Output,
    vm: &str,
    networks: &[String],
    start: bool,
    reserve: bool,
) -> Result<Vec<Nic>> {
    check_names(networks)?;
    let mut nics = Vec::with_capacity(networks.len());
    for (i, net) in networks.iter().enumerate() {
        let xml = network_xml(conn, net, start)?;
        let mac = identity::nic_mac(vm, net, i);
        let mut nic = Nic {
            network: net.clone(),
            mac,
            slot: None,
            live_ip: None,
        };
        if reserve {
            if let Some(block) = slots::block(&xml) {
                let (slot, settled) = slot_claim::pick(conn, net, &block, vm)?;
                nic.mac = slot.mac.clone();
                nic.slot = Some((block, slot, settled));
            } else if let Some(subnet) = address::dhcp_subnet(&xml) {
                nic.live_ip = Some(live_address(conn, out, net, &nic.mac, &subnet)?);
            }
        }
        nics.push(nic);
    }
    Ok(nics)
}

/// The network's XML; not found is exit 3, inactive (when the VM is to
/// start) exit 1.
fn network_xml(conn: &Libvirt, net: &str, start: bool) -> Result<String> {
    match conn.network_summary(net)? {
        None => Err(Failure::not_found(format!(
            "network '{net}' not found at {}; run 'boxvirt net ensure {net}' or pass another --network",
            conn.uri()
        ))),
        Some(s) if !s.active && start => Err(Failure::failed(format!(
            "network '{net}' is not active, so the vm could not start; run 'boxvirt net ensure {net}'"
        ))),
        Some(_) => conn.network_xml(net),
    }
}

/// A free address of a network without slots, for a live reservation.
fn live_address(
    conn: &Libvirt,
    out: &Output,
    net: &str,
    mac: &str,
    subnet: &address::DhcpSubnet,
) -> Result<Ipv4Addr> {
    let leased: Vec<(String, Ipv4Addr)> = conn
        .dhcp_leases(net, None)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|l| Some((l.mac, l.ip.parse().ok()?)))
        .collect();
    let ip = address::pick(subnet, mac, &leased)?;
    out.detail(format!(
        "network '{net}' has no block of address slots, so {ip} is reserved with a live DHCP update (libvirt rewrites the network's firewall for it, about 0.4 s; 'boxvirt net ensure {net}' gives the network slots once no VM uses it)"
    ));
    Ok(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_once_each_and_counted() {
        let nets = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_names(&nets(&["a", "b"])).is_ok());
        let twice = check_names(&nets(&["a", "b", "a"])).unwrap_err();
        assert_eq!(twice.exit, crate::error::Exit::Usage);
        assert!(
            twice.message.contains("'a' is given twice"),
            "{}",
            twice.message
        );
        assert!(check_names(&nets(&["a b"])).is_err());
        let many: Vec<String> = (0..=MAX_NICS).map(|i| format!("n{i}")).collect();
        assert!(check_names(&many)
            .unwrap_err()
            .message
            .contains("at most 8"));
    }
}
