//! Address slots: a block of DHCP host entries (MAC -> IP) written into a
//! network's XML when boxvirt defines it, as virter's
//! `network add --dhcp-count` does. Giving a VM an address is then picking a
//! MAC from a free slot; neither create nor delete updates the network (a
//! live `ip-dhcp-host` update rewrites the network's firewall, ~0.4 s; see
//! PLATFORM-FACTS.md). The block is marked in the network's `<metadata>` so
//! boxvirt knows it and its size. Pure, so every rule is unit-tested.

use std::net::Ipv4Addr;

use sha2::{Digest, Sha256};

use super::address;
use crate::error::{Failure, Result};
use crate::xml;

/// Slots a network gets when `--slots` is not given (fewer when its DHCP
/// range is smaller).
pub const DEFAULT_SLOTS: u32 = 64;
/// The first three octets of every slot MAC: locally administered unicast,
/// and not QEMU's 52:54:00, so no MAC boxvirt derives from a VM name
/// (identity::mac_for) or libvirt generates falls into a block.
pub const OUI: &str = "52:54:b0";
/// The namespace of boxvirt's element in a network's `<metadata>`.
pub const NS: &str = "urn:boxvirt:network:1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub index: u32,
    pub mac: String,
    pub ip: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The size recorded in the metadata.
    pub size: u32,
    /// `OUI:xx`: the 4th octet is the network's own (from its name).
    pub prefix: String,
    /// The host entries found with the prefix, in slot order.
    pub slots: Vec<Slot>,
}

/// The MAC prefix of network `name`'s block.
pub fn prefix_for(network: &str) -> String {
    format!("{OUI}:{:02x}", Sha256::digest(network.as_bytes())[0])
}

fn slot_mac(prefix: &str, index: u32) -> String {
    format!("{prefix}:{:02x}:{:02x}", (index >> 8) & 0xff, index & 0xff)
}

/// The block boxvirt wrote into this network XML, if any.
pub fn block(network_xml: &str) -> Option<Block> {
    let slots_el = xml::find_first(network_xml, &["network", "metadata", "network", "slots"])?;
    let size: u32 = slots_el.attr("count")?.parse().ok()?;
    let prefix = slots_el.attr("prefix")?.to_ascii_lowercase();
    let mut slots: Vec<Slot> = xml::find_all(network_xml, &["network", "ip", "dhcp", "host"])
        .into_iter()
        .filter_map(|h| {
            let mac = h.attr("mac")?.to_ascii_lowercase();
            let rest = mac.strip_prefix(&prefix)?.strip_prefix(':')?;
            let (hi, lo) = rest.split_once(':')?;
            let index =
                u32::from_str_radix(hi, 16).ok()? << 8 | u32::from_str_radix(lo, 16).ok()?;
            Some(Slot {
                index,
                mac,
                ip: h.attr("ip")?.parse().ok()?,
            })
        })
        .collect();
    slots.sort_by_key(|s| s.index);
    Some(Block {
        size,
        prefix,
        slots,
    })
}

/// Addresses of the DHCP range that can become slots: not the gateway, not
/// an existing host entry's.
fn free_addresses(subnet: &address::DhcpSubnet) -> Vec<Ipv4Addr> {
    let (start, end) = (u32::from(subnet.range_start), u32::from(subnet.range_end));
    (start..=end.max(start))
        .take_while(|n| *n <= end)
        .map(Ipv4Addr::from)
        .filter(|ip| *ip != subnet.gateway && !subnet.hosts.iter().any(|(_, h)| h == ip))
        .collect()
}

/// `network_xml` with a block of `want` slots (default: [`DEFAULT_SLOTS`],
/// or all free addresses of a smaller range) at the start of its DHCP range,
/// and the mark in its `<metadata>`. Returns the XML and the block's size.
/// `Ok(None)`: nothing to add to (no IPv4 DHCP range, or already a block).
pub fn with_block(
    network: &str,
    network_xml: &str,
    want: Option<u32>,
) -> Result<Option<(String, u32)>> {
    if block(network_xml).is_some() {
        return Ok(None);
    }
    let Some(subnet) = address::dhcp_subnet(network_xml) else {
        if want.is_some() {
            return Err(Failure::usage(format!(
                "network '{network}' has no IPv4 DHCP range, so it can have no address slots; drop --slots"
            )));
        }
        return Ok(None);
    };
    let free = free_addresses(&subnet);
    let size = match want {
        Some(0) => return Err(Failure::usage("--slots 0: give at least 1")),
        Some(n) if n as usize > free.len() || n > 0x10000 => {
            return Err(Failure::usage(format!(
                "--slots {n} is more than the {} free addresses of network '{network}''s DHCP range {}-{}; give at most {}",
                free.len(),
                subnet.range_start,
                subnet.range_end,
                free.len().min(0x10000)
            )))
        }
        Some(n) => n,
        None => DEFAULT_SLOTS.min(free.len() as u32),
    };
    if size == 0 {
        return Ok(None);
    }
    let prefix = prefix_for(network);
    let hosts: String = free
        .iter()
        .take(size as usize)
        .enumerate()
        .map(|(i, ip)| format!("<host mac='{}' ip='{ip}'/>", slot_mac(&prefix, i as u32)))
        .collect();
    let label = format!("network '{network}'");
    let with_hosts = crate::template::render::append_child(
        &label,
        network_xml,
        &["network", "ip", "dhcp"],
        &hosts,
    )?;
    let mark = format!(
        "<boxvirt:network xmlns:boxvirt='{NS}'><boxvirt:slots count='{size}' prefix='{prefix}'/></boxvirt:network>"
    );
    let xml = if xml::find_first(&with_hosts, &["network", "metadata"]).is_some() {
        crate::template::render::append_child(&label, &with_hosts, &["network", "metadata"], &mark)?
    } else {
        crate::template::render::append_child(
            &label,
            &with_hosts,
            &["network"],
            &format!("<metadata>{mark}</metadata>"),
        )?
    };
    Ok(Some((xml, size)))
}

/// A free slot for `vm`: none of `held` (the MACs of every defined
/// domain). The search starts
/// at an offset from the VM name, so parallel creates rarely try the same
/// slot first.
pub fn choose<'a>(block: &'a Block, held: &[String], vm: &str) -> Option<&'a Slot> {
    let n = block.slots.len();
    if n == 0 {
        return None;
    }
    let digest = Sha256::digest(vm.as_bytes());
    let offset = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) as usize % n;
    (0..n)
        .map(|i| &block.slots[(offset + i) % n])
        .find(|s| !held.iter().any(|m| m.eq_ignore_ascii_case(&s.mac)))
}

/// The error for a block with no free slot (exit 4).
pub fn full(network: &str, block: &Block) -> Failure {
    Failure::conflict(format!(
        "all {} address slots of network '{network}' are taken; delete unused VMs, or pass --no-reserve (the VM then gets a dynamic address)",
        block.slots.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET: &str = "<network>\n  <name>n</name>\n  <ip address='10.9.0.1' netmask='255.255.255.0'>\n    <dhcp>\n      <range start='10.9.0.1' end='10.9.0.6'/>\n      <host mac='52:54:00:00:00:aa' ip='10.9.0.3'/>\n    </dhcp>\n  </ip>\n</network>\n";

    #[test]
    fn a_block_skips_the_gateway_and_existing_hosts_and_is_read_back() {
        let (xml, size) = with_block("n", NET, Some(3)).unwrap().unwrap();
        assert_eq!(size, 3);
        let b = block(&xml).unwrap();
        assert_eq!((b.size, b.prefix.clone()), (3, prefix_for("n")));
        let ips: Vec<String> = b.slots.iter().map(|s| s.ip.to_string()).collect();
        assert_eq!(ips, ["10.9.0.2", "10.9.0.4", "10.9.0.5"]);
        assert_eq!(b.slots[2].mac, format!("{}:00:02", prefix_for("n")));
        assert!(b.slots[0].mac.starts_with("52:54:b0:"));
        // The existing host and the range are untouched; no second block.
        let subnet = address::dhcp_subnet(&xml).unwrap();
        assert_eq!(subnet.hosts.len(), 4);
        assert_eq!(subnet.range_end, Ipv4Addr::new(10, 9, 0, 6));
        assert!(with_block("n", &xml, None).unwrap().is_none());
    }

    #[test]
    fn the_default_size_fits_the_range_and_too_many_is_usage() {
        let (_, size) = with_block("n", NET, None).unwrap().unwrap();
        assert_eq!(size, 4);
        let e = with_block("n", NET, Some(5)).unwrap_err();
        assert_eq!(e.exit, crate::error::Exit::Usage);
        assert!(e.message.contains("at most 4"), "{}", e.message);
        assert!(with_block("n", "<network><name>n</name></network>", None)
            .unwrap()
            .is_none());
        assert!(with_block("n", "<network><name>n</name></network>", Some(2)).is_err());
    }

    #[test]
    fn choose_skips_held_slots_and_a_full_block_is_none() {
        let (xml, _) = with_block("n", NET, Some(3)).unwrap().unwrap();
        let b = block(&xml).unwrap();
        let first = choose(&b, &[], "vm-a").unwrap().clone();
        let mut held = vec![first.mac.to_ascii_uppercase()];
        let second = choose(&b, &held, "vm-a").unwrap().clone();
        assert_ne!(first, second);
        held.push(second.mac.clone());
        let third = choose(&b, &held, "vm-a").unwrap();
        assert!(third != &first && third != &second);
        let all: Vec<String> = b.slots.iter().map(|s| s.mac.clone()).collect();
        assert!(choose(&b, &all, "vm-a").is_none());
        assert!(full("n", &b)
            .message
            .contains("all 3 address slots of network 'n'"));
    }
}
