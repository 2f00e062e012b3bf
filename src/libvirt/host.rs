//! What the hypervisor offers: capabilities and per-accelerator domain
//! capabilities (needs a read-write connection for `kvm`).

use serde::Serialize;

use super::errors::{clean, failure};
use super::Libvirt;
use crate::error::Result;
use crate::xml;

#[derive(Debug, Clone, Serialize)]
pub struct HostCaps {
    pub host_arch: String,
    /// Domain types offered for guests (`kvm`, `qemu`, `test`, ...).
    pub domain_types: Vec<String>,
    /// CPU features libvirt reports for the host (vmx/svm tell hardware virt).
    pub cpu_features: Vec<String>,
}

impl HostCaps {
    pub fn offers(&self, domain_type: &str) -> bool {
        self.domain_types.iter().any(|t| t == domain_type)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DomainCaps {
    pub domain_type: String,
    pub supported: bool,
    pub emulator: Option<String>,
    pub machine: Option<String>,
    /// libvirt's reason when the type is not usable.
    pub problem: Option<String>,
}

impl Libvirt {
    pub fn host_caps(&self) -> Result<HostCaps> {
        let caps = self
            .conn
            .capabilities()
            .map_err(|e| failure(e, "reading capabilities"))?;
        let mut domain_types: Vec<String> =
            xml::find_all(&caps, &["capabilities", "guest", "arch", "domain"])
                .into_iter()
                .filter_map(|d| d.attr("type").map(str::to_string))
                .collect();
        domain_types.sort();
        domain_types.dedup();
        Ok(HostCaps {
            host_arch: xml::find_first(&caps, &["capabilities", "host", "cpu", "arch"])
                .map(|e| e.text)
                .unwrap_or_default(),
            domain_types,
            cpu_features: xml::find_all(&caps, &["capabilities", "host", "cpu", "feature"])
                .into_iter()
                .filter_map(|f| f.attr("name").map(str::to_string))
                .collect(),
        })
    }

    /// Domain capabilities for x86_64 guests of one type.
    pub fn domain_caps(&self, domain_type: &str) -> DomainCaps {
        match self
            .conn
            .domain_capabilities(None, Some("x86_64"), None, Some(domain_type), 0)
        {
            Ok(text) => {
                let declared =
                    xml::find_first(&text, &["domainCapabilities", "domain"]).map(|e| e.text);
                DomainCaps {
                    domain_type: domain_type.to_string(),
                    supported: declared.as_deref() == Some(domain_type),
                    emulator: xml::find_first(&text, &["domainCapabilities", "path"])
                        .map(|e| e.text),
                    machine: xml::find_first(&text, &["domainCapabilities", "machine"])
                        .map(|e| e.text),
                    problem: None,
                }
            }
            Err(e) => DomainCaps {
                domain_type: domain_type.to_string(),
                supported: false,
                emulator: None,
                machine: None,
                problem: Some(clean(e.message())),
            },
        }
    }
}
