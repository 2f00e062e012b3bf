//! The parameters a template understands: where each lands in the XML and
//! what values it accepts. One table per template kind.

use crate::error::{Failure, Result};
use crate::names;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Domain,
    Network,
    Pool,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Domain, Kind::Network, Kind::Pool];

    /// Folder under `xml-templates/` (and under a user template dir).
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Domain => "domain",
            Kind::Network => "network",
            Kind::Pool => "pool",
        }
    }

    pub fn params(self) -> &'static [Param] {
        match self {
            Kind::Domain => DOMAIN_PARAMS,
            Kind::Network => NETWORK_PARAMS,
            Kind::Pool => POOL_PARAMS,
        }
    }
}

/// Where a value is written. Paths start at the root element.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// The text content of every element at this path.
    Text(&'static [&'static str]),
    /// An attribute of every element at this path.
    Attr(&'static [&'static str], &'static str),
    /// An attribute forced to a fixed value whenever the parameter is set
    /// (e.g. `unit='MiB'` next to a memory size).
    FixedAttr(&'static [&'static str], &'static str, &'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Name,
    /// MiB, within the range.
    Mebibytes(u64, u64),
    Count(u64, u64),
    Mac,
    Accel,
    /// An absolute path on the libvirt host.
    Path,
    Text,
}

#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub key: &'static str,
    pub help: &'static str,
    pub value: ValueKind,
    pub targets: &'static [Target],
}

pub const MIN_MEMORY_MIB: u64 = 16;
pub const MAX_MEMORY_MIB: u64 = 1024 * 1024;
pub const MAX_VCPUS: u64 = 256;

const DOMAIN_PARAMS: &[Param] = &[
    Param {
        key: "name",
        help: "domain name",
        value: ValueKind::Name,
        targets: &[Target::Text(&["domain", "name"])],
    },
    Param {
        key: "memory",
        help: "memory in MiB",
        value: ValueKind::Mebibytes(MIN_MEMORY_MIB, MAX_MEMORY_MIB),
        targets: &[
            Target::Text(&["domain", "memory"]),
            Target::FixedAttr(&["domain", "memory"], "unit", "MiB"),
            Target::Text(&["domain", "currentMemory"]),
            Target::FixedAttr(&["domain", "currentMemory"], "unit", "MiB"),
        ],
    },
    Param {
        key: "vcpus",
        help: "virtual CPUs",
        value: ValueKind::Count(1, MAX_VCPUS),
        targets: &[Target::Text(&["domain", "vcpu"])],
    },
    Param {
        key: "accel",
        help: "kvm or qemu (TCG)",
        value: ValueKind::Accel,
        targets: &[Target::Attr(&["domain"], "type")],
    },
    Param {
        key: "network",
        help: "libvirt network of the NIC",
        value: ValueKind::Name,
        targets: &[Target::Attr(
            &["domain", "devices", "interface", "source"],
            "network",
        )],
    },
    Param {
        key: "mac",
        help: "MAC address of the NIC",
        value: ValueKind::Mac,
        targets: &[Target::Attr(
            &["domain", "devices", "interface", "mac"],
            "address",
        )],
    },
    Param {
        key: "disk",
        help: "path of the disk image on the libvirt host",
        value: ValueKind::Path,
        targets: &[Target::Attr(
            &["domain", "devices", "disk", "source"],
            "file",
        )],
    },
    Param {
        key: "kernel",
        help: "kernel for direct boot",
        value: ValueKind::Path,
        targets: &[Target::Text(&["domain", "os", "kernel"])],
    },
    Param {
        key: "initrd",
        help: "initramfs for direct boot",
        value: ValueKind::Path,
        targets: &[Target::Text(&["domain", "os", "initrd"])],
    },
    Param {
        key: "cmdline",
        help: "kernel command line",
        value: ValueKind::Text,
        targets: &[Target::Text(&["domain", "os", "cmdline"])],
    },
    Param {
        key: "serial_log",
        help: "file on the libvirt host that logs the serial console",
        value: ValueKind::Path,
        targets: &[Target::Attr(
            &["domain", "devices", "serial", "log"],
            "file",
        )],
    },
];

const NETWORK_PARAMS: &[Param] = &[
    Param {
        key: "name",
        help: "network name",
        value: ValueKind::Name,
        targets: &[Target::Text(&["network", "name"])],
    },
    Param {
        key: "bridge",
        help: "bridge device name (max 15 characters)",
        value: ValueKind::Name,
        targets: &[Target::Attr(&["network", "bridge"], "name")],
    },
];

const POOL_PARAMS: &[Param] = &[
    Param {
        key: "name",
        help: "pool name",
        value: ValueKind::Name,
        targets: &[Target::Text(&["pool", "name"])],
    },
    Param {
        key: "path",
        help: "pool directory",
        value: ValueKind::Path,
        targets: &[Target::Text(&["pool", "target", "path"])],
    },
];

/// Look a parameter up, or say which ones exist.
pub fn find(kind: Kind, key: &str) -> Result<&'static Param> {
    kind.params().iter().find(|p| p.key == key).ok_or_else(|| {
        let known: Vec<&str> = kind.params().iter().map(|p| p.key).collect();
        Failure::usage(format!(
            "unknown {} template parameter {key:?}; known: {}",
            kind.dir(),
            known.join(", ")
        ))
    })
}

/// Check a value against its parameter; returns the text to write.
pub fn check_value(param: &Param, value: &str) -> Result<String> {
    let bad =
        |what: &str| Failure::usage(format!("invalid value {value:?} for {}: {what}", param.key));
    match param.value {
        ValueKind::Name => names::validate(param.key, value).map(|_| value.to_string()),
        ValueKind::Mebibytes(lo, hi) | ValueKind::Count(lo, hi) => match value.parse::<u64>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(n.to_string()),
            _ => Err(bad(&format!("expected a whole number from {lo} to {hi}"))),
        },
        ValueKind::Mac => {
            let parts: Vec<&str> = value.split(':').collect();
            let ok = parts.len() == 6
                && parts
                    .iter()
                    .all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok());
            let multicast = ok
                && u8::from_str_radix(parts[0], 16)
                    .map(|b| b & 1 == 1)
                    .unwrap_or(true);
            if !ok || multicast {
                return Err(bad("expected a unicast MAC like 52:54:00:12:34:56"));
            }
            Ok(value.to_ascii_lowercase())
        }
        // `test` is the libvirt test driver's only domain type.
        ValueKind::Accel => match value {
            "kvm" | "qemu" | "test" => Ok(value.to_string()),
            _ => Err(bad("expected kvm or qemu")),
        },
        ValueKind::Path => {
            if !value.starts_with('/') || value.contains('\0') || value.contains('\n') {
                Err(bad("expected an absolute path on the libvirt host"))
            } else {
                Ok(value.to_string())
            }
        }
        ValueKind::Text => {
            if value.chars().any(|c| c.is_control() && c != '\t') {
                Err(bad("control characters are not allowed"))
            } else {
                Ok(value.to_string())
            }
        }
    }
}

/// Parameters none of whose (non-fixed) targets matched an element.
pub fn find_unmatched<'a>(
    owners: &[&'a Param],
    edits: &[super::render::Edit],
    matched: &[bool],
) -> Vec<&'a Param> {
    let mut missing: Vec<&'a Param> = Vec::new();
    for (i, owner) in owners.iter().enumerate() {
        if matches!(edits[i].target, Target::FixedAttr(..)) {
            continue;
        }
        let any = owners.iter().enumerate().any(|(j, o)| {
            o.key == owner.key && matched[j] && !matches!(edits[j].target, Target::FixedAttr(..))
        });
        if !any && !missing.iter().any(|m| m.key == owner.key) {
            missing.push(owner);
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_against_their_kind() {
        let mem = find(Kind::Domain, "memory").unwrap();
        assert_eq!(check_value(mem, "512").unwrap(), "512");
        assert!(check_value(mem, "0")
            .unwrap_err()
            .message
            .contains("from 16"));
        assert!(check_value(mem, "lots").is_err());
        let mac = find(Kind::Domain, "mac").unwrap();
        assert_eq!(
            check_value(mac, "52:54:00:AB:cd:01").unwrap(),
            "52:54:00:ab:cd:01"
        );
        assert!(check_value(mac, "01:00:5e:00:00:01").is_err(), "multicast");
        assert!(check_value(mac, "52:54:00:00:00").is_err());
        assert!(check_value(find(Kind::Domain, "disk").unwrap(), "relative.qcow2").is_err());
        assert!(check_value(find(Kind::Domain, "accel").unwrap(), "xen").is_err());
        assert!(find(Kind::Domain, "colour")
            .unwrap_err()
            .message
            .contains("known: name"));
    }
}
