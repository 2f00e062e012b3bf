//! Domains (VMs): list, define, lifecycle, XML and boxvirt's metadata.

use serde::Serialize;
use virt::domain::{Domain, DomainState as VirtState};
use virt::error::ErrorNumber;
use virt::sys;

use super::errors::{self, failure};
use super::Libvirt;
use crate::error::{Failure, Result};

/// Namespace of the metadata element boxvirt keeps in each domain it made.
pub const METADATA_URI: &str = "urn:boxvirt:vm:1";
pub const METADATA_KEY: &str = "boxvirt";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainState {
    Running,
    Blocked,
    Paused,
    Shutdown,
    Shutoff,
    Crashed,
    Suspended,
    Unknown,
}

/// JSON uses the same words as the table.
impl Serialize for DomainState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl DomainState {
    pub fn as_str(self) -> &'static str {
        match self {
            DomainState::Running => "running",
            DomainState::Blocked => "blocked",
            DomainState::Paused => "paused",
            DomainState::Shutdown => "shutting-down",
            DomainState::Shutoff => "shut-off",
            DomainState::Crashed => "crashed",
            DomainState::Suspended => "suspended",
            DomainState::Unknown => "unknown",
        }
    }

    /// Whether QEMU is running for the domain.
    pub fn is_active(self) -> bool {
        !matches!(self, DomainState::Shutoff | DomainState::Unknown)
    }

    fn from_virt(state: virt::domain::DomainStateEnum) -> DomainState {
        match state.unwrap_or(VirtState::NoState) {
            VirtState::Running => DomainState::Running,
            VirtState::Blocked => DomainState::Blocked,
            VirtState::Paused => DomainState::Paused,
            VirtState::Shutdown => DomainState::Shutdown,
            VirtState::Shutoff => DomainState::Shutoff,
            VirtState::Crashed => DomainState::Crashed,
            VirtState::PMSuspended => DomainState::Suspended,
            VirtState::NoState => DomainState::Unknown,
        }
    }
}

/// One row of `vm list` (a stable JSON schema: README "vm list").
#[derive(Debug, Clone, Serialize)]
pub struct DomainSummary {
    pub name: String,
    pub state: DomainState,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub autostart: bool,
    pub persistent: bool,
}

/// `vm info`: the summary plus identity and what boxvirt recorded.
#[derive(Debug, Clone, Serialize)]
pub struct DomainDetails {
    #[serde(flatten)]
    pub summary: DomainSummary,
    pub uuid: String,
    pub id: Option<u32>,
    pub domain_type: String,
    pub cpu_time_s: f64,
    /// boxvirt's metadata element, when boxvirt created the domain.
    pub boxvirt_metadata: Option<String>,
}

impl Libvirt {
    fn domain(&self, name: &str) -> Result<Domain> {
        self.conn.lookup_domain_by_name(name).map_err(|e| {
            if errors::is_code(&e, ErrorNumber::NoDomain) {
                Failure::not_found(format!(
                    "vm '{name}' not found at {}; see 'boxvirt vm list'",
                    self.uri()
                ))
            } else {
                failure(e, &format!("looking up vm '{name}'"))
            }
        })
    }

    pub fn domain_exists(&self, name: &str) -> Result<bool> {
        match self.conn.lookup_domain_by_name(name) {
            Ok(_) => Ok(true),
            Err(e) if errors::is_code(&e, ErrorNumber::NoDomain) => Ok(false),
            Err(e) => Err(failure(e, &format!("looking up vm '{name}'"))),
        }
    }

    fn summarize(&self, dom: &Domain) -> Result<DomainSummary> {
        let name = dom
            .name()
            .map_err(|e| failure(e, "reading a domain name"))?;
        let info = dom
            .info()
            .map_err(|e| failure(e, &format!("reading vm '{name}'")))?;
        let autostart = dom
            .autostart()
            .map_err(|e| failure(e, &format!("reading vm '{name}' autostart")))?;
        let persistent = dom
            .is_persistent()
            .map_err(|e| failure(e, &format!("reading vm '{name}'")))?;
        Ok(DomainSummary {
            name,
            state: DomainState::from_virt(info.state),
            vcpus: info.nr_virt_cpu,
            memory_mib: info.max_mem / 1024,
            autostart,
            persistent,
        })
    }

    /// All domains, sorted by name. Autostart and persistence come from two
    /// filtered listings instead of two calls per domain (N+3 round trips,
    /// not 3N+1: this is the hot path of `vm list`).
    pub fn list_domains(&self) -> Result<Vec<DomainSummary>> {
        let names_with = |flag: u32, what: &str| -> Result<std::collections::HashSet<String>> {
            let doms = self
                .conn
                .list_all_domains(flag)
                .map_err(|e| failure(e, what))?;
            Ok(doms.iter().filter_map(|d| d.name().ok()).collect())
        };
        let doms = self
            .conn
            .list_all_domains(0)
            .map_err(|e| failure(e, "listing domains"))?;
        let autostart = names_with(
            sys::VIR_CONNECT_LIST_DOMAINS_AUTOSTART,
            "listing autostart domains",
        )?;
        let persistent = names_with(
            sys::VIR_CONNECT_LIST_DOMAINS_PERSISTENT,
            "listing persistent domains",
        )?;
        let mut rows = Vec::with_capacity(doms.len());
        for dom in &doms {
            let name = dom
                .name()
                .map_err(|e| failure(e, "reading a domain name"))?;
            match dom.info() {
                Ok(info) => rows.push(DomainSummary {
                    state: DomainState::from_virt(info.state),
                    vcpus: info.nr_virt_cpu,
                    memory_mib: info.max_mem / 1024,
                    autostart: autostart.contains(&name),
                    persistent: persistent.contains(&name),
                    name,
                }),
                // Undefined by someone else between the listing and the read.
                Err(e) if errors::is_code(&e, ErrorNumber::NoDomain) => {}
                Err(e) => return Err(failure(e, &format!("reading vm '{name}'"))),
            }
        }
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(rows)
    }

    pub fn domain_summary(&self, name: &str) -> Result<DomainSummary> {
        self.summarize(&self.domain(name)?)
    }

    pub fn domain_details(&self, name: &str) -> Result<DomainDetails> {
        let dom = self.domain(name)?;
        let summary = self.summarize(&dom)?;
        let info = dom
            .info()
            .map_err(|e| failure(e, &format!("reading vm '{name}'")))?;
        let xml = dom
            .xml_desc(0)
            .map_err(|e| failure(e, &format!("reading vm '{name}' XML")))?;
        Ok(DomainDetails {
            summary,
            uuid: dom
                .uuid_string()
                .map_err(|e| failure(e, &format!("reading vm '{name}' uuid")))?,
            id: dom.id(),
            domain_type: crate::xml::root_attr(&xml, "type").unwrap_or_default(),
            cpu_time_s: info.cpu_time as f64 / 1e9,
            boxvirt_metadata: self.domain_metadata(name)?,
        })
    }

    /// Defines a persistent domain. The name must not be in use (checked by
    /// the caller for a clear message; libvirt refuses duplicates anyway).
    pub fn define_domain(&self, xml: &str) -> Result<()> {
        self.conn
            .define_domain_xml(xml)
            .map(|_| ())
            .map_err(|e| failure(e, "defining the vm"))
    }

    pub fn set_domain_metadata(&self, name: &str, xml: &str) -> Result<()> {
        let dom = self.domain(name)?;
        // Running domains have a live copy too; keep both in step.
        let mut flags = sys::VIR_DOMAIN_AFFECT_CONFIG;
        if dom
            .is_active()
            .map_err(|e| failure(e, &format!("reading vm '{name}'")))?
        {
            flags |= sys::VIR_DOMAIN_AFFECT_LIVE;
        }
        dom.set_metadata(
            sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
            Some(xml),
            Some(METADATA_KEY),
            Some(METADATA_URI),
            flags,
        )
        .map_err(|e| failure(e, &format!("recording boxvirt metadata on vm '{name}'")))
    }

    /// boxvirt's metadata element of a domain, `None` when it has none.
    pub fn domain_metadata(&self, name: &str) -> Result<Option<String>> {
        let dom = self.domain(name)?;
        match dom.metadata(
            sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
            Some(METADATA_URI),
            sys::VIR_DOMAIN_AFFECT_CONFIG,
        ) {
            Ok(xml) => Ok(Some(xml)),
            Err(e) if errors::is_code(&e, ErrorNumber::NoDomainMetadata) => Ok(None),
            Err(e) => Err(failure(
                e,
                &format!("reading boxvirt metadata of vm '{name}'"),
            )),
        }
    }

    /// The domains whose XML satisfies `wanted` (e.g. uses a network or a
    /// disk path); one undefined meanwhile is skipped.
    pub(super) fn domains_whose_xml(&self, wanted: impl Fn(&str) -> bool) -> Result<Vec<Domain>> {
        let doms = self
            .conn
            .list_all_domains(0)
            .map_err(|e| failure(e, "listing domains"))?;
        Ok(doms
            .into_iter()
            .filter(|d| d.xml_desc(0).is_ok_and(|xml| wanted(&xml)))
            .collect())
    }

    /// Starts the domain; false when it was already running (nothing done).
    pub fn start_domain(&self, name: &str) -> Result<bool> {
        let dom = self.domain(name)?;
        if dom
            .is_active()
            .map_err(|e| failure(e, &format!("reading vm '{name}'")))?
        {
            return Ok(false);
        }
        dom.create()
            .map(|_| true)
            .map_err(|e| failure(e, &format!("starting vm '{name}'")))
    }

    /// Asks the guest to shut down (ACPI); returns at once.
    pub fn shutdown_domain(&self, name: &str) -> Result<()> {
        self.domain(name)?
            .shutdown()
            .map(|_| ())
            .map_err(|e| failure(e, &format!("shutting down vm '{name}'")))
    }

    /// Powers off; a domain that is not running is left alone.
    pub fn destroy_domain(&self, name: &str) -> Result<bool> {
        let dom = self.domain(name)?;
        if !dom
            .is_active()
            .map_err(|e| failure(e, &format!("reading vm '{name}'")))?
        {
            return Ok(false);
        }
        match dom.destroy() {
            Ok(()) => Ok(true),
            Err(e) if errors::is_code(&e, ErrorNumber::OperationInvalid) => Ok(false),
            Err(e) => Err(failure(e, &format!("destroying vm '{name}'"))),
        }
    }

    /// Removes the definition (with its NVRAM, managed save and snapshot
    /// metadata, which would otherwise block the undefine).
    pub fn undefine_domain(&self, name: &str) -> Result<()> {
        let dom = self.domain(name)?;
        let flags = sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
            | sys::VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
            | sys::VIR_DOMAIN_UNDEFINE_NVRAM
            | sys::VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA;
        match dom.undefine_flags(flags) {
            Ok(()) => Ok(()),
            // The test driver and old daemons do not know every flag.
            Err(_) => dom
                .undefine()
                .map_err(|e| failure(e, &format!("undefining vm '{name}'"))),
        }
    }

    /// Renames a shut-off domain (its disks, metadata and UUID stay).
    pub fn rename_domain(&self, name: &str, new_name: &str) -> Result<()> {
        self.domain(name)?
            .rename(new_name, 0)
            .map(|_| ())
            .map_err(|e| failure(e, &format!("renaming vm '{name}' to '{new_name}'")))
    }

    /// Detaches a disk from the running domain and its persistent config.
    pub fn detach_disk(&self, name: &str, disk_xml: &str) -> Result<()> {
        let dom = self.domain(name)?;
        let live = dom
            .is_active()
            .map_err(|e| failure(e, &format!("reading vm '{name}'")))?;
        let mut flags = sys::VIR_DOMAIN_AFFECT_CONFIG;
        if live {
            flags |= sys::VIR_DOMAIN_AFFECT_LIVE;
        }
        dom.detach_device_flags(disk_xml, flags)
            .map_err(|e| failure(e, &format!("detaching a disk from vm '{name}'")))
    }

    pub fn domain_xml(&self, name: &str, inactive: bool) -> Result<String> {
        let flags = if inactive {
            sys::VIR_DOMAIN_XML_INACTIVE
        } else {
            0
        };
        self.domain(name)?
            .xml_desc(flags)
            .map_err(|e| failure(e, &format!("reading vm '{name}' XML")))
    }
}
