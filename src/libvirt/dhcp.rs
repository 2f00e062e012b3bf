//! DHCP host reservations on a network (virNetworkUpdate), so a VM's address
//! is known before it boots, and released when it is deleted.

use virt::network::Network;
use virt::sys;

use super::errors::failure;
use super::Libvirt;
use crate::error::{Failure, Result};

/// The element (and namespace) a domain carries while and after it claims
/// an address slot (vm/slot_claim.rs).
const CLAIM_KEY: &str = "slotclaim";
const CLAIM_URI: &str = "urn:boxvirt:slot-claim:1";

struct DomainMacs {
    name: String,
    macs: Vec<String>,
    claimed: Option<String>,
}

fn host_xml(mac: &str, name: &str, ip: &str) -> String {
    use quick_xml::escape::escape;
    format!(
        "<host mac='{}' name='{}' ip='{}'/>",
        escape(mac),
        escape(name),
        escape(ip)
    )
}

impl Libvirt {
    /// Every defined or running domain: its name, interface MACs and the
    /// slot MAC it marked as claimed. A domain gone between the listing and
    /// the read is skipped.
    fn interface_macs_by_domain(&self) -> Result<Vec<DomainMacs>> {
        let doms = self
            .conn
            .list_all_domains(0)
            .map_err(|e| failure(e, "listing domains"))?;
        Ok(doms
            .iter()
            .filter_map(|d| {
                let xml = d.xml_desc(0).ok()?;
                let macs = crate::xml::find_all(&xml, &["domain", "devices", "interface", "mac"])
                    .into_iter()
                    .filter_map(|m| m.attr("address").map(str::to_ascii_lowercase))
                    .collect();
                let claimed = crate::xml::find_first(&xml, &["domain", "metadata", CLAIM_KEY])
                    .and_then(|c| c.attr("mac").map(str::to_ascii_lowercase));
                Some(DomainMacs {
                    name: d.name().ok()?,
                    macs,
                    claimed,
                })
            })
            .collect())
    }

    /// Every MAC any domain's interfaces hold (lower case).
    pub fn interface_macs(&self) -> Result<Vec<String>> {
        Ok(self
            .interface_macs_by_domain()?
            .into_iter()
            .flat_map(|d| d.macs)
            .collect())
    }

    /// The domains with an interface holding `mac`: (name, whether it
    /// marked that MAC as claimed).
    pub fn slot_holders(&self, mac: &str) -> Result<Vec<(String, bool)>> {
        let mac = mac.to_ascii_lowercase();
        Ok(self
            .interface_macs_by_domain()?
            .into_iter()
            .filter(|d| d.macs.contains(&mac))
            .map(|d| (d.name, d.claimed.as_deref() == Some(mac.as_str())))
            .collect())
    }

    /// Marks (in its metadata, a namespace of its own) that domain `vm`
    /// claims the slot with `mac`.
    pub fn mark_slot_claim(&self, vm: &str, mac: &str) -> Result<()> {
        let dom = self
            .conn
            .lookup_domain_by_name(vm)
            .map_err(|e| failure(e, &format!("looking up vm '{vm}'")))?;
        dom.set_metadata(
            sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
            Some(&format!(
                "<{CLAIM_KEY} mac='{}'/>",
                quick_xml::escape::escape(mac)
            )),
            Some(CLAIM_KEY),
            Some(CLAIM_URI),
            sys::VIR_DOMAIN_AFFECT_CONFIG,
        )
        .map_err(|e| failure(e, &format!("marking the address slot of vm '{vm}'")))
    }

    /// One virNetworkUpdate of the DHCP host section, live and/or persistent
    /// as the network is (one lookup for the whole operation).
    fn update_dhcp_host(
        &self,
        net: &Network,
        network: &str,
        command: u32,
        host: &str,
        what: &str,
    ) -> Result<()> {
        let read = format!("reading network '{network}'");
        let mut flags = 0;
        if net.is_active().map_err(|e| failure(e, &read))? {
            flags |= sys::VIR_NETWORK_UPDATE_AFFECT_LIVE;
        }
        if net.is_persistent().map_err(|e| failure(e, &read))? {
            flags |= sys::VIR_NETWORK_UPDATE_AFFECT_CONFIG;
        }
        net.update(
            command,
            sys::VIR_NETWORK_SECTION_IP_DHCP_HOST,
            -1,
            host,
            flags,
        )
        .map_err(|e| failure(e, what))
    }

    /// Adds `<host mac name ip/>` to the network's first IPv4 `<dhcp>`.
    pub fn add_dhcp_host(&self, network: &str, mac: &str, name: &str, ip: &str) -> Result<()> {
        let net = self.existing_network(network)?;
        let what = format!("reserving {ip} for {mac} on network '{network}'");
        self.update_dhcp_host(
            &net,
            network,
            sys::VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
            &host_xml(mac, name, ip),
            &what,
        )
    }

    /// Removes the reservation; one that is already gone is not an error.
    pub fn remove_dhcp_host(&self, network: &str, mac: &str, name: &str, ip: &str) -> Result<bool> {
        let net = self.existing_network(network)?;
        let xml = net
            .xml_desc(0)
            .map_err(|e| failure(e, &format!("reading network '{network}' XML")))?;
        let reserved = crate::xml::find_all(&xml, &["network", "ip", "dhcp", "host"])
            .into_iter()
            .any(|h| h.attr("mac").is_some_and(|m| m.eq_ignore_ascii_case(mac)));
        if !reserved {
            return Ok(false);
        }
        let what = format!("releasing the reservation of {mac} on network '{network}'");
        self.update_dhcp_host(
            &net,
            network,
            sys::VIR_NETWORK_UPDATE_COMMAND_DELETE,
            &host_xml(mac, name, ip),
            &what,
        )?;
        Ok(true)
    }

    /// Addresses reported for a running domain by one source: "lease"
    /// (libvirt's dnsmasq), "agent" (qemu-guest-agent) or "arp".
    pub fn domain_addresses(&self, name: &str, source: &str) -> Result<Vec<(String, String)>> {
        let src = match source {
            "lease" => sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
            "agent" => sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT,
            "arp" => sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP,
            other => return Err(Failure::usage(format!("unknown address source {other:?}"))),
        };
        let dom = self
            .conn
            .lookup_domain_by_name(name)
            .map_err(|e| failure(e, &format!("looking up vm '{name}'")))?;
        let ifaces = dom
            .interface_addresses(src, 0)
            .map_err(|e| failure(e, &format!("reading addresses of vm '{name}' ({source})")))?;
        Ok(ifaces
            .into_iter()
            .flat_map(|i| {
                let mac = i.hwaddr.unwrap_or_default().to_ascii_lowercase();
                i.addrs
                    .into_iter()
                    .filter(|a| a.typed == 0)
                    .map(move |a| (mac.clone(), a.addr))
            })
            .collect())
    }
}
