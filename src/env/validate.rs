//! Checks of the file that need no host: names, references to hosts and
//! networks that are declared, templates that exist, host and network
//! entries that make sense. Each error names the line it is about.

use std::collections::BTreeMap;

use super::expand::field_path;
use super::file::{EnvFile, HostSpec, Source};
use crate::error::Result;
use crate::template::{Catalog, Kind};
use crate::yaml_path;

/// Memory of a domain template that states none.
pub const FALLBACK_MEMORY_MIB: u64 = 1024;

/// Runs every check; on success, each domain template used with its own
/// memory in MiB (for groups that set none).
pub fn check(src: &Source, file: &EnvFile, catalog: &Catalog) -> Result<BTreeMap<String, u64>> {
    crate::names::validate("environment", &file.name)
        .map_err(|f| src.error_at(&yaml_path!["name"], f.message))?;
    for (name, host) in &file.hosts {
        check_host(src, name, host)?;
    }
    for (name, net) in &file.networks {
        crate::names::validate("network", name)
            .map_err(|f| src.error_at(&yaml_path!["networks", name.as_str()], f.message))?;
        let at = yaml_path!["networks", name.as_str(), "template"];
        catalog
            .get(Kind::Network, &net.template)
            .map_err(|f| src.error_at(&at, f.message))?;
        if let Some(cidr) = &net.cidr {
            parse_cidr(cidr)
                .map_err(|why| src.error_at(&yaml_path!["networks", name.as_str(), "cidr"], why))?;
        }
    }
    let mut memory = BTreeMap::new();
    for i in 0..file.vms.len() {
        check_references(src, file, i)?;
        let (template, mib) = domain_template(src, file, i, catalog)?;
        memory.insert(template, mib);
    }
    Ok(memory)
}

fn check_host(src: &Source, name: &str, host: &HostSpec) -> Result<()> {
    let at = yaml_path!["hosts", name];
    crate::names::validate("host", name).map_err(|f| src.error_at(&at, f.message))?;
    match (&host.instance, &host.uri) {
        (Some(_), Some(_)) | (None, None) => Err(src.error_at(
            &at,
            format!("host '{name}' needs exactly one of 'instance: NAME' or 'uri: URI'"),
        )),
        (None, Some(_)) if host.data_dir.is_some() => Err(src.error_at(
            &at,
            format!("host '{name}': data_dir goes with instance, not with uri"),
        )),
        (Some(instance), None) => crate::names::validate("instance", instance)
            .map_err(|f| src.error_at(&yaml_path!["hosts", name, "instance"], f.message)),
        (None, Some(uri)) if uri.is_empty() => Err(src.error_at(
            &yaml_path!["hosts", name, "uri"],
            format!("host '{name}' has an empty uri"),
        )),
        (None, Some(uri)) => crate::uri::Uri::parse(uri).map(|_| ()).map_err(|why| {
            src.error_at(
                &yaml_path!["hosts", name, "uri"],
                format!("host '{name}': \"{uri}\" is not a libvirt URI ({why}); use e.g. qemu+ssh://user@host/system"),
            )
        }),
    }
}

/// The group's host and networks are declared in the file.
fn check_references(src: &Source, file: &EnvFile, i: usize) -> Result<()> {
    let g = &file.vms[i];
    if let Some(host) = &g.host {
        if !file.hosts.contains_key(host) {
            return Err(src.error_at(
                &yaml_path!["vms", i, "host"],
                format!(
                    "vm '{}' names host '{host}', which is not declared under hosts: ({})",
                    g.name,
                    declared(file.hosts.keys())
                ),
            ));
        }
    }
    let networks = g.networks.as_ref().or(file.defaults.networks.as_ref());
    let networks: Vec<&String> = networks.into_iter().flatten().collect();
    if networks.len() > crate::vm::nics::MAX_NICS {
        return Err(src.error_at(
            &field_path(file, i, "networks"),
            format!(
                "vm '{}' is on {} networks; a VM gets at most {} NICs",
                g.name,
                networks.len(),
                crate::vm::nics::MAX_NICS
            ),
        ));
    }
    for (j, net) in networks.iter().enumerate() {
        if networks[..j].contains(net) {
            let mut at = field_path(file, i, "networks");
            at.push(j.into());
            return Err(src.error_at(
                &at,
                format!(
                    "vm '{}' names network '{net}' twice; a VM gets one NIC per network, so name each once",
                    g.name
                ),
            ));
        }
        if !file.networks.contains_key(*net) {
            let mut at = field_path(file, i, "networks");
            at.push(j.into());
            return Err(src.error_at(
                &at,
                format!(
                    "vm '{}' names network '{net}', which is not declared under networks: ({})",
                    g.name,
                    declared(file.networks.keys())
                ),
            ));
        }
    }
    Ok(())
}

fn declared<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let keys: Vec<&str> = keys.map(String::as_str).collect();
    if keys.is_empty() {
        "none are".to_string()
    } else {
        format!("declared: {}", keys.join(", "))
    }
}

/// The group's domain template (its own or the default) exists; its memory.
fn domain_template(
    src: &Source,
    file: &EnvFile,
    i: usize,
    catalog: &Catalog,
) -> Result<(String, u64)> {
    let g = &file.vms[i];
    let Some(name) = g.template.as_ref().or(file.defaults.template.as_ref()) else {
        return Err(src.error_at(
            &yaml_path!["vms", i],
            format!(
                "vm '{}' has no template; set template: in it or under defaults: (see 'boxvirt template list')",
                g.name
            ),
        ));
    };
    let template = catalog
        .get(Kind::Domain, name)
        .map_err(|f| src.error_at(&field_path(file, i, "template"), f.message))?;
    Ok((name.clone(), template_memory(&template.xml)))
}

/// `<memory unit='..'>N</memory>` of a domain template, in MiB.
pub fn template_memory(xml: &str) -> u64 {
    let Some(e) = crate::xml::find_first(xml, &["domain", "memory"]) else {
        return FALLBACK_MEMORY_MIB;
    };
    let Ok(n) = e.text.trim().parse::<u64>() else {
        return FALLBACK_MEMORY_MIB;
    };
    match e.attr("unit").unwrap_or("KiB") {
        "b" | "bytes" => n / (1024 * 1024),
        "k" | "KiB" => n / 1024,
        "M" | "MiB" => n,
        "G" | "GiB" => n * 1024,
        _ => FALLBACK_MEMORY_MIB,
    }
}

/// `A.B.C.D/N` with N in 8..=30 and no host bits set.
pub fn parse_cidr(cidr: &str) -> std::result::Result<(std::net::Ipv4Addr, u8), String> {
    let bad = |why: &str| format!("cidr {cidr:?} {why}; write an IPv4 subnet such as 10.10.0.0/24");
    let (addr, len) = cidr.split_once('/').ok_or_else(|| bad("has no /prefix"))?;
    let addr: std::net::Ipv4Addr = addr.parse().map_err(|_| bad("is not an IPv4 address"))?;
    let len: u8 = len.parse().map_err(|_| bad("has a bad prefix length"))?;
    if !(8..=30).contains(&len) {
        return Err(bad("needs a prefix length from 8 to 30"));
    }
    let mask = u32::MAX << (32 - u32::from(len));
    if u32::from(addr) & !mask != 0 {
        return Err(bad("has host bits set"));
    }
    Ok((addr, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn check_text(text: &str) -> Result<BTreeMap<String, u64>> {
        let src = Source::from_text("lab.yaml".into(), PathBuf::from("/"), text.into());
        let file = src.parse().unwrap();
        check(&src, &file, &Catalog::new(None))
    }

    fn message(text: &str) -> String {
        let f = check_text(text).unwrap_err();
        assert_eq!(f.exit, crate::error::Exit::Usage, "{}", f.message);
        f.message
    }

    #[test]
    fn the_issue_example_passes_with_the_templates_memory() {
        let m = check_text(include_str!("../../tests/fixtures/env/lab.yaml")).unwrap();
        assert_eq!(m["debian12"], 1024);
        let m = check_text(
            "name: a\nvms:\n  - {name: r, template: rocky9}\n  - {name: t, template: tiny}\n",
        )
        .unwrap();
        assert_eq!((m["rocky9"], m["tiny"]), (2048, 256));
    }

    #[test]
    fn a_network_named_twice_is_an_error_at_the_second() {
        assert_eq!(
            message("name: lab\nnetworks:\n  mgmt: {template: default}\nvms:\n  - {name: a, template: tiny, networks: [mgmt, mgmt]}\n"),
            "lab.yaml:5:48: vm 'a' names network 'mgmt' twice; a VM gets one NIC per network, so name each once"
        );
    }

    #[test]
    fn undeclared_hosts_and_networks_are_errors_at_the_reference() {
        assert_eq!(
            message("name: lab\nvms:\n  - name: a\n    template: tiny\n    host: right\n"),
            "lab.yaml:5:11: vm 'a' names host 'right', which is not declared under hosts: (none are)"
        );
        assert_eq!(
            message("name: lab\nnetworks:\n  mgmt: {template: default}\nvms:\n  - {name: a, template: tiny, networks: [mgmt, data]}\n"),
            "lab.yaml:5:48: vm 'a' names network 'data', which is not declared under networks: (declared: mgmt)"
        );
        assert!(message(
            "name: lab\ndefaults: {networks: [x]}\nvms:\n  - {name: a, template: tiny}\n"
        )
        .starts_with("lab.yaml:2:23: vm 'a' names network 'x'"));
    }

    #[test]
    fn missing_templates_are_errors_at_the_template() {
        assert!(
            message("name: lab\nvms:\n  - {name: a, template: nosuch}\n")
                .starts_with("lab.yaml:3:25: no domain template named \"nosuch\"; available: ")
        );
        assert!(
            message("name: lab\ndefaults:\n  template: nosuch\nvms:\n  - {name: a}\n")
                .starts_with("lab.yaml:3:13: no domain template named \"nosuch\"")
        );
        assert!(message("name: lab\nvms:\n  - name: a\n")
            .starts_with("lab.yaml:3:5: vm 'a' has no template"));
        assert!(message("name: lab\nnetworks:\n  n: {template: nosuch}\n")
            .starts_with("lab.yaml:3:17: no network template named \"nosuch\""));
    }

    #[test]
    fn hosts_need_exactly_one_of_instance_and_uri() {
        assert!(
            message("name: lab\nhosts:\n  a: {instance: x, uri: \"test:///default\"}\n")
                .starts_with("lab.yaml:3:6: host 'a' needs exactly one of")
        );
        assert!(message("name: lab\nhosts:\n  a: {}\n").contains("needs exactly one of"));
        assert!(
            message("name: lab\nhosts:\n  a: {uri: \"test:///default\", data_dir: d}\n")
                .contains("data_dir goes with instance")
        );
        assert!(
            message("name: lab\nhosts:\n  a: {uri: \"qemu+ssh://h:22x/system\"}\n").starts_with(
                "lab.yaml:3:12: host 'a': \"qemu+ssh://h:22x/system\" is not a libvirt URI (bad port '22x'"
            )
        );
        assert!(message("name: lab\nhosts:\n  a: {instance: \"x y\"}\n")
            .starts_with("lab.yaml:3:17: invalid instance name"));
    }

    #[test]
    fn names_and_cidrs_are_checked() {
        assert!(message("name: \"my lab\"\n").starts_with("lab.yaml:1:7: invalid environment name"));
        assert!(
            message("name: lab\nnetworks:\n  n: {template: isolated, cidr: 10.0.0.1/24}\n")
                .starts_with("lab.yaml:3:33: cidr \"10.0.0.1/24\" has host bits set")
        );
        assert_eq!(parse_cidr("10.10.0.0/24"), Ok(([10, 10, 0, 0].into(), 24)));
        for bad in ["10.0.0.0", "10.0.0/24", "10.0.0.0/31", "10.0.0.0/x"] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn template_memory_reads_units() {
        assert_eq!(
            template_memory("<domain><memory unit='GiB'>2</memory></domain>"),
            2048
        );
        assert_eq!(
            template_memory("<domain><memory>524288</memory></domain>"),
            512
        );
        assert_eq!(template_memory("<domain/>"), FALLBACK_MEMORY_MIB);
    }
}
