//! The metadata element boxvirt stores in each domain it creates: where it
//! came from, what it made (only those volumes and reservations, one per
//! NIC, are removed with the VM; an address slot is freed by the domain's undefine) and how to reach it (login user, pinned host key).

use crate::env::mark::EnvMark;
use crate::xml;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub pool: String,
    pub name: String,
    /// "disk" or "seed".
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub network: String,
    pub mac: String,
    pub ip: String,
    /// A slot of the network's block (`kind='slot'`): freed by undefining
    /// the domain. Otherwise a live DHCP host entry boxvirt added, removed
    /// on delete.
    pub slot: bool,
    /// The name in the live DHCP host entry when it is not the VM's (a
    /// VM renamed by `env apply --replace`); the entry is found by it.
    pub host: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VmMetadata {
    pub template: String,
    pub volumes: Vec<Volume>,
    /// One per NIC with an address, the primary NIC's first.
    pub reservations: Vec<Reservation>,
    /// Login user written into the cloud-init seed.
    pub user: Option<String>,
    /// The guest's sshd public key (from the seed), pinned on connect.
    pub host_key: Option<String>,
    /// Set when `env apply` made the VM: its environment's mark.
    pub env: Option<EnvMark>,
}

impl VmMetadata {
    pub fn to_xml(&self) -> String {
        use quick_xml::escape::escape;
        let mut s = format!("<vm template='{}'", escape(self.template.as_str()));
        if let Some(u) = &self.user {
            s.push_str(&format!(" user='{}'", escape(u.as_str())));
        }
        if let Some(k) = &self.host_key {
            s.push_str(&format!(" hostkey='{}'", escape(k.as_str())));
        }
        s.push('>');
        for v in &self.volumes {
            s.push_str(&format!(
                "<volume pool='{}' name='{}' role='{}'/>",
                escape(v.pool.as_str()),
                escape(v.name.as_str()),
                escape(v.role.as_str())
            ));
        }
        for r in &self.reservations {
            s.push_str(&format!(
                "<reservation network='{}' mac='{}' ip='{}'{}{}/>",
                escape(r.network.as_str()),
                escape(r.mac.as_str()),
                escape(r.ip.as_str()),
                if r.slot { " kind='slot'" } else { "" },
                r.host
                    .as_deref()
                    .map(|h| format!(" host='{}'", escape(h)))
                    .unwrap_or_default()
            ));
        }
        if let Some(m) = &self.env {
            s.push_str(&m.to_xml());
        }
        s.push_str("</vm>");
        s
    }

    pub fn parse(text: &str) -> VmMetadata {
        VmMetadata {
            template: xml::root_attr(text, "template").unwrap_or_default(),
            user: xml::root_attr(text, "user"),
            host_key: xml::root_attr(text, "hostkey"),
            env: EnvMark::parse(text),
            volumes: xml::find_all(text, &["vm", "volume"])
                .into_iter()
                .filter_map(|v| {
                    Some(Volume {
                        pool: v.attr("pool")?.to_string(),
                        name: v.attr("name")?.to_string(),
                        role: v.attr("role").unwrap_or("disk").to_string(),
                    })
                })
                .collect(),
            reservations: xml::find_all(text, &["vm", "reservation"])
                .into_iter()
                .filter_map(|r| {
                    Some(Reservation {
                        network: r.attr("network")?.to_string(),
                        mac: r.attr("mac")?.to_string(),
                        ip: r.attr("ip")?.to_string(),
                        slot: r.attr("kind") == Some("slot"),
                        host: r.attr("host").map(str::to_string),
                    })
                })
                .collect(),
        }
    }

    /// The primary NIC's address (where SSH goes).
    pub fn reservation(&self) -> Option<&Reservation> {
        self.reservations.first()
    }

    pub fn seed(&self) -> Option<&Volume> {
        self.volumes.iter().find(|v| v.role == "seed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_a_namespace_prefix() {
        let m = VmMetadata {
            template: "t&1".into(),
            volumes: vec![Volume {
                pool: "default".into(),
                name: "a.qcow2".into(),
                role: "disk".into(),
            }],
            reservations: vec![
                Reservation {
                    network: "default".into(),
                    mac: "52:54:00:00:00:01".into(),
                    ip: "10.0.0.5".into(),
                    slot: true,
                    host: None,
                },
                Reservation {
                    network: "data".into(),
                    mac: "52:54:00:00:00:02".into(),
                    ip: "10.1.0.5".into(),
                    slot: false,
                    host: Some("old-name".into()),
                },
            ],
            user: Some("boxvirt".into()),
            host_key: Some("ssh-ed25519 AAAA x'y".into()),
            env: Some(EnvMark {
                env: "lab".into(),
                digest: "ab".into(),
                config: [("memory".to_string(), "256".to_string())].into(),
            }),
        };
        assert_eq!(VmMetadata::parse(&m.to_xml()), m);
        let libvirt_form = "<boxvirt:vm xmlns:boxvirt=\"urn:boxvirt:vm:1\" template=\"rocky9\"><boxvirt:volume pool=\"p\" name=\"v\"/></boxvirt:vm>";
        let parsed = VmMetadata::parse(libvirt_form);
        assert_eq!(parsed.template, "rocky9");
        assert_eq!(
            parsed.volumes,
            vec![Volume {
                pool: "p".into(),
                name: "v".into(),
                role: "disk".into()
            }]
        );
        assert!(parsed.reservation().is_none() && parsed.seed().is_none());
    }
}
