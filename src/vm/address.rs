//! Picking the address a VM's DHCP reservation pins, from the network's XML
//! and its current leases. Pure, so every rule is unit-tested.

use std::net::Ipv4Addr;

use crate::error::{Failure, Result};
use crate::xml;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpSubnet {
    pub gateway: Ipv4Addr,
    pub range_start: Ipv4Addr,
    pub range_end: Ipv4Addr,
    /// Existing reservations: (mac, ip).
    pub hosts: Vec<(String, Ipv4Addr)>,
}

/// The first IPv4 `<ip>` of the network that serves DHCP, if any.
pub fn dhcp_subnet(network_xml: &str) -> Option<DhcpSubnet> {
    let ip = xml::find_all(network_xml, &["network", "ip"])
        .into_iter()
        .find(|ip| ip.attr("family").unwrap_or("ipv4") == "ipv4")?;
    let gateway: Ipv4Addr = ip.attr("address")?.parse().ok()?;
    let range = xml::find_first(network_xml, &["network", "ip", "dhcp", "range"])?;
    let hosts = xml::find_all(network_xml, &["network", "ip", "dhcp", "host"])
        .into_iter()
        .filter_map(|h| {
            Some((
                h.attr("mac")?.to_ascii_lowercase(),
                h.attr("ip")?.parse().ok()?,
            ))
        })
        .collect();
    Some(DhcpSubnet {
        gateway,
        range_start: range.attr("start")?.parse().ok()?,
        range_end: range.attr("end")?.parse().ok()?,
        hosts,
    })
}

/// The address to reserve for `mac`: its existing reservation, else a free
/// one in the DHCP range (not reserved, not leased to another MAC, not the
/// gateway), probing from a MAC-derived offset so parallel creates rarely
/// collide and a re-created VM tends to get its old address back.
pub fn pick(subnet: &DhcpSubnet, mac: &str, leased: &[(String, Ipv4Addr)]) -> Result<Ipv4Addr> {
    let mac = mac.to_ascii_lowercase();
    if let Some((_, ip)) = subnet.hosts.iter().find(|(m, _)| *m == mac) {
        return Ok(*ip);
    }
    let start = u32::from(subnet.range_start);
    let end = u32::from(subnet.range_end);
    if end < start {
        return Err(Failure::failed(format!(
            "DHCP range {}-{} is empty",
            subnet.range_start, subnet.range_end
        )));
    }
    let size = end - start + 1;
    let offset = mac
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % size;
    for i in 0..size {
        let candidate = Ipv4Addr::from(start + (offset + i) % size);
        let taken = candidate == subnet.gateway
            || subnet.hosts.iter().any(|(_, ip)| *ip == candidate)
            || leased.iter().any(|(m, ip)| *ip == candidate && *m != mac);
        if !taken {
            return Ok(candidate);
        }
    }
    Err(Failure::conflict(format!(
        "no free address left in DHCP range {}-{}; delete unused VMs or widen the range",
        subnet.range_start, subnet.range_end
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET: &str = "<network><name>n</name><ip address='10.9.0.1' netmask='255.255.255.0'><dhcp>\
        <range start='10.9.0.2' end='10.9.0.4'/><host mac='52:54:00:00:00:AA' name='a' ip='10.9.0.2'/></dhcp></ip>\
        <ip family='ipv6' address='fd00::1' prefix='64'/></network>";

    #[test]
    fn parses_range_and_reservations() {
        let s = dhcp_subnet(NET).unwrap();
        assert_eq!(s.gateway, Ipv4Addr::new(10, 9, 0, 1));
        assert_eq!(
            (s.range_start, s.range_end),
            (Ipv4Addr::new(10, 9, 0, 2), Ipv4Addr::new(10, 9, 0, 4))
        );
        assert_eq!(
            s.hosts,
            vec![("52:54:00:00:00:aa".to_string(), Ipv4Addr::new(10, 9, 0, 2))]
        );
        assert!(dhcp_subnet("<network><name>iso</name></network>").is_none());
    }

    #[test]
    fn keeps_an_existing_reservation_and_avoids_taken_addresses() {
        let s = dhcp_subnet(NET).unwrap();
        assert_eq!(
            pick(&s, "52:54:00:00:00:aa", &[]).unwrap(),
            Ipv4Addr::new(10, 9, 0, 2)
        );
        let leased = vec![("52:54:00:00:00:bb".to_string(), Ipv4Addr::new(10, 9, 0, 3))];
        assert_eq!(
            pick(&s, "52:54:00:00:00:cc", &leased).unwrap(),
            Ipv4Addr::new(10, 9, 0, 4)
        );
        // A lease held by the same MAC does not block it.
        let own = vec![("52:54:00:00:00:cc".to_string(), Ipv4Addr::new(10, 9, 0, 3))];
        assert_ne!(
            pick(&s, "52:54:00:00:00:cc", &own).unwrap(),
            Ipv4Addr::new(10, 9, 0, 2)
        );
        let full = vec![
            ("x".to_string(), Ipv4Addr::new(10, 9, 0, 3)),
            ("y".to_string(), Ipv4Addr::new(10, 9, 0, 4)),
        ];
        assert_eq!(
            pick(&s, "52:54:00:00:00:cc", &full).unwrap_err().exit,
            crate::error::Exit::Conflict
        );
    }
}
