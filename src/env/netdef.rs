//! The networks of an environment: their XML (the template, a bridge name
//! of their own, the file's `cidr:`) and the mark in their `<metadata>`
//! that says this environment made them, so `env destroy` removes those
//! and never a network that existed before.

use std::net::Ipv4Addr;

use super::file::NetworkSpec;
use super::validate::parse_cidr;
use crate::error::{Failure, Result};
use crate::libvirt::{Libvirt, NetworkChange};
use crate::template::{render, Catalog, Kind};
use crate::xml;

const NS: &str = "urn:boxvirt:env:1";

/// Makes network `name` exist and run on `conn`; true when this call
/// defined it (and so marked it as the environment's).
pub fn ensure(
    conn: &Libvirt,
    catalog: &Catalog,
    env: &str,
    name: &str,
    spec: &NetworkSpec,
) -> Result<bool> {
    let changes = conn.ensure_network(name, || definition(catalog, env, name, spec))?;
    Ok(changes.contains(&NetworkChange::Defined))
}

/// The environment that made the network, from its XML.
pub fn owner(network_xml: &str) -> Option<String> {
    xml::find_first(network_xml, &["network", "metadata", "env"])
        .and_then(|e| e.attr("name").map(str::to_string))
}

/// The template rendered with the name, a bridge of its own, the subnet
/// (when the file gives one) and the environment's mark.
pub fn definition(catalog: &Catalog, env: &str, name: &str, spec: &NetworkSpec) -> Result<String> {
    let template = catalog.get(Kind::Network, &spec.template)?;
    let mut xml = template.render(&[
        ("name".to_string(), name.to_string()),
        ("bridge".to_string(), bridge_name(env, name)),
    ])?;
    if let Some(cidr) = &spec.cidr {
        xml = with_subnet(&template.label(), &xml, cidr)?;
    }
    let mark = format!(
        "<metadata><boxvirt:env xmlns:boxvirt='{NS}' name='{}'/></metadata>",
        quick_xml::escape::escape(env)
    );
    let xml = render::append_child(&template.label(), &xml, &["network"], &mark)?;
    // The same address slots as `net ensure` gives its networks: one way
    // of handing out addresses, not two.
    Ok(crate::vm::slots::with_block(name, &xml, None)?
        .map(|(with, _)| with)
        .unwrap_or(xml))
}

/// `bv` + 8 hex digits of the (environment, network) pair: unique per
/// pair and within the 15 characters of a Linux interface name. The
/// template's own bridge (virbr0, ...) is usually taken already.
fn bridge_name(env: &str, name: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{env}/{name}").as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("bv{hex}")
}

/// The template's `<ip>` replaced by the subnet: the gateway is its first
/// address, DHCP hands out the rest.
fn with_subnet(label: &str, xml: &str, cidr: &str) -> Result<String> {
    let (net, len) = parse_cidr(cidr).map_err(Failure::usage)?;
    if len > 29 {
        return Err(Failure::usage(format!(
            "cidr {cidr} is too small for a gateway and DHCP range; use a /29 or larger"
        )));
    }
    let base = u32::from(net);
    let last = base | (u32::MAX >> len);
    let ip = format!(
        "<ip address='{}' prefix='{len}'><dhcp><range start='{}' end='{}'/></dhcp></ip>",
        Ipv4Addr::from(base + 1),
        Ipv4Addr::from(base + 2),
        Ipv4Addr::from(last - 1)
    );
    match (xml.find("<ip"), xml.find("</ip>")) {
        (Some(start), Some(end)) if start < end => Ok(format!(
            "{}{ip}{}",
            &xml[..start],
            &xml[end + "</ip>".len()..]
        )),
        _ => render::append_child(label, xml, &["network"], &ip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definition_has_the_subnet_a_bridge_of_its_own_and_the_mark() {
        let spec = NetworkSpec {
            template: "isolated".into(),
            cidr: Some("10.10.0.0/24".into()),
        };
        let xml = definition(&Catalog::new(None), "lab", "data", &spec).unwrap();
        assert_eq!(owner(&xml).as_deref(), Some("lab"));
        assert_eq!(
            super::super::observe::network_cidr(&xml).as_deref(),
            Some("10.10.0.0/24")
        );
        let range = xml::find_first(&xml, &["network", "ip", "dhcp", "range"]).unwrap();
        assert_eq!(range.attr("start"), Some("10.10.0.2"));
        assert_eq!(range.attr("end"), Some("10.10.0.254"));
        let bridge = xml::find_first(&xml, &["network", "bridge"]).unwrap();
        assert_eq!(
            bridge.attr("name"),
            Some(bridge_name("lab", "data").as_str())
        );
        assert!(bridge_name("lab", "data").len() <= 15);
        assert_ne!(bridge_name("lab", "data"), bridge_name("lab", "mgmt"));
        assert_eq!(
            xml::find_first(&xml, &["network", "name"]).unwrap().text,
            "data"
        );
    }

    #[test]
    fn a_network_without_the_mark_has_no_owner() {
        assert_eq!(owner("<network><name>default</name></network>"), None);
    }
}
