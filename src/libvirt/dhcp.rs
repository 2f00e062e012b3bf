//! DHCP host reservations on a network (virNetworkUpdate), so a VM's address
//! is known before it boots, and released when it is deleted.

use virt::network::Network;
use virt::sys;

use super::errors::failure;
use super::Libvirt;
use crate::error::{Failure, Result};

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
