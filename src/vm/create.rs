//! `vm create`: validate everything first, then make the objects in order
//! (volume, domain, metadata, start), undoing this run's objects if a later
//! step fails.

use serde::Serialize;

use super::metadata::{VmMetadata, Volume};
use super::rollback::Rollback;
use super::{accel, identity};
use crate::cli::Accel;
use crate::error::{Failure, Result};
use crate::libvirt::Libvirt;
use crate::names;
use crate::output::Output;
use crate::template::{params, Catalog, Kind};
use crate::xml;

/// The pool boxvirt keeps VM volumes in (made from `xml-templates/pool/default.xml`).
pub const POOL: &str = "default";
pub const DEFAULT_DISK_GIB: u64 = 20;
/// Keys with their own flags; `--set` must not smuggle them past validation.
const FLAG_KEYS: &[&str] = &["name", "memory", "vcpus", "accel", "network", "mac", "disk"];

#[derive(Debug, Clone, Default)]
pub struct Request {
    pub template: String,
    pub name: Option<String>,
    pub memory_mib: Option<u64>,
    pub vcpus: Option<u32>,
    pub disk_gib: Option<u64>,
    pub network: Option<String>,
    pub accel: Option<Accel>,
    pub sets: Vec<(String, String)>,
    pub start: bool,
    /// Test hook (CLI: `BOXVIRT_INJECT_FAILURE=<step>`), one of [`STEPS`].
    pub fail_after: Option<String>,
}

/// What was made (`vm create -o json`).
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    pub name: String,
    pub template: String,
    pub domain_type: String,
    pub mac: Option<String>,
    pub network: Option<String>,
    pub volumes: Vec<String>,
    pub started: bool,
}

/// The steps after which a failure can be injected (`Request::fail_after`).
pub const STEPS: &[&str] = &["volume", "define", "metadata", "start"];

/// Test hook: fail right after `step` made its object, so tests can prove the
/// rollback leaves libvirt as it was.
fn injected(req: &Request, step: &str) -> Result<()> {
    match &req.fail_after {
        Some(s) if s == step => Err(Failure::failed(format!("injected failure after step '{step}'"))),
        _ => Ok(()),
    }
}

pub fn create(conn: &Libvirt, catalog: &Catalog, out: &Output, req: &Request) -> Result<Created> {
    // 1. Everything that can be checked without changing anything.
    let template = catalog.get(Kind::Domain, &req.template)?;
    for (key, _) in &req.sets {
        if FLAG_KEYS.contains(&key.as_str()) {
            return Err(Failure::usage(format!("use --{key} instead of --set {key}=...")));
        }
    }
    let name = match &req.name {
        Some(n) => n.clone(),
        None => {
            let taken: Vec<String> = conn.list_domains()?.into_iter().map(|d| d.name).collect();
            identity::default_name(&template.name, &taken)
        }
    };
    names::validate("vm", &name)?;
    let check = |key: &str, value: String| -> Result<String> { params::check_value(params::find(Kind::Domain, key)?, &value) };
    let memory = req.memory_mib.map(|m| check("memory", m.to_string())).transpose()?;
    let vcpus = req.vcpus.map(|v| check("vcpus", v.to_string())).transpose()?;
    if let Some(net) = &req.network {
        names::validate("network", net)?;
    }
    let has_disk = xml::find_first(&template.xml, &["domain", "devices", "disk", "source"]).is_some();
    let has_nic = xml::find_first(&template.xml, &["domain", "devices", "interface", "source"]).is_some();
    if req.disk_gib.is_some() && !has_disk {
        return Err(Failure::usage(format!("template {} has no disk; drop --disk-size", template.label())));
    }
    if req.network.is_some() && !has_nic {
        return Err(Failure::usage(format!("template {} has no network interface; drop --network", template.label())));
    }
    let disk_gib = req.disk_gib.unwrap_or(DEFAULT_DISK_GIB);
    if !(1..=16 * 1024).contains(&disk_gib) {
        return Err(Failure::usage(format!("--disk-size {disk_gib} is out of range; use 1 to 16384 GiB")));
    }
    if conn.domain_exists(&name)? {
        return Err(Failure::conflict(format!(
            "vm '{name}' already exists at {}; pick another --name or run 'boxvirt vm delete {name}'",
            conn.uri()
        )));
    }
    let network = if has_nic {
        let net = req.network.clone().or_else(|| {
            xml::find_first(&template.xml, &["domain", "devices", "interface", "source"])
                .and_then(|s| s.attr("network").map(str::to_string))
        });
        if let Some(net) = &net {
            match conn.network_summary(net)? {
                None => {
                    return Err(Failure::not_found(format!(
                        "network '{net}' not found at {}; run 'boxvirt net ensure {net}' or pass --network",
                        conn.uri()
                    )))
                }
                Some(s) if !s.active && req.start => {
                    return Err(Failure::failed(format!(
                        "network '{net}' is not active, so the vm could not start; run 'boxvirt net ensure {net}'"
                    )))
                }
                Some(_) => {}
            }
        }
        net
    } else {
        None
    };
    let choice = accel::choose(conn, req.accel)?;
    if let Some(w) = &choice.warning {
        out.warn(w);
    }
    let mac = has_nic.then(|| identity::mac_for(&name));

    let mut sets: Vec<(String, String)> = vec![("name".into(), name.clone()), ("accel".into(), choice.domain_type.clone())];
    sets.extend(memory.map(|m| ("memory".to_string(), m)));
    sets.extend(vcpus.map(|v| ("vcpus".to_string(), v)));
    sets.extend(network.clone().map(|n| ("network".to_string(), n)));
    sets.extend(mac.clone().map(|m| ("mac".to_string(), m)));
    sets.extend(req.sets.iter().cloned());
    // Render once before creating anything, so template errors cost nothing.
    template.render(&sets)?;

    // 2. Make things, newest undone first on failure.
    let mut rollback = Rollback::new();
    let mut meta = VmMetadata { template: template.name.clone(), ..Default::default() };
    let result = (|| -> Result<()> {
        if has_disk {
            let changes = conn.ensure_pool(POOL, || catalog.get(Kind::Pool, POOL)?.render(&[]))?;
            if !changes.is_empty() {
                let said: Vec<&str> = changes.iter().map(|c| c.describe()).collect();
                out.note(format!("storage pool '{POOL}': {}", said.join(", ")));
            }
            let vol = format!("{name}.qcow2");
            let path = conn.create_volume(POOL, &vol, disk_gib * 1024 * 1024 * 1024, "qcow2")?;
            let vol_for_undo = vol.clone();
            rollback.push(format!("volume '{vol}'"), move || conn.delete_volume(POOL, &vol_for_undo).map(|_| ()));
            meta.volumes.push(Volume { pool: POOL.to_string(), name: vol, role: "disk".into() });
            injected(req, "volume")?;
            sets.push(("disk".into(), path));
        }
        let xml = template.render(&sets)?;
        conn.define_domain(&xml)?;
        let undo_name = name.clone();
        rollback.push(format!("vm '{name}'"), move || {
            conn.destroy_domain(&undo_name)?;
            conn.undefine_domain(&undo_name)
        });
        injected(req, "define")?;
        conn.set_domain_metadata(&name, &meta.to_xml())?;
        injected(req, "metadata")?;
        if req.start {
            conn.start_domain(&name)?;
            injected(req, "start")?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            rollback.commit();
            Ok(Created {
                name,
                template: template.name.clone(),
                domain_type: choice.domain_type,
                mac,
                network,
                volumes: meta.volumes.into_iter().map(|v| v.name).collect(),
                started: req.start,
            })
        }
        Err(e) => Err(rollback.fail(e.context(format!("creating vm '{name}'")))),
    }
}
