//! Guideline 6's other half: a VM that would not fit the container's memory
//! limit is refused by `vm create` (and flagged by `doctor`) instead of
//! being OOM-killed later. Only for the instance's own nested host.

use super::limits::{self, DAEMONS_MIB, QEMU_OVERHEAD_MIB};
use crate::error::Result;
use crate::libvirt::{DomainState, Libvirt};
use crate::nested::Engine;
use crate::settings::Settings;
use crate::template::{Catalog, Kind};

/// The instance container's memory limit in bytes (None: not the instance,
/// no limit, or Docker cannot say).
pub fn memory_limit(settings: &Settings) -> Option<u64> {
    if !settings.uses_instance() {
        return None;
    }
    let engine = Engine::connect().ok()?;
    let info = engine.container(&settings.container_name()).ok()??;
    info.hardening.memory.map(|m| m as u64)
}

/// Memory (MiB) of the domains that are running or will start.
fn running_mib(conn: &Libvirt) -> Result<Vec<u64>> {
    Ok(conn
        .list_domains()?
        .into_iter()
        .filter(|d| d.state == DomainState::Running || d.autostart)
        .map(|d| d.memory_mib)
        .collect())
}

/// `<memory>` of a domain template, in MiB.
fn template_mib(catalog: &Catalog, template: &str) -> Option<u64> {
    let t = catalog.get(Kind::Domain, template).ok()?;
    let m = crate::xml::find_first(&t.xml, &["domain", "memory"])?;
    let n: u64 = m.text.trim().parse().ok()?;
    match m.attr("unit").unwrap_or("KiB") {
        "KiB" | "k" | "K" => Some(n / 1024),
        "MiB" | "M" => Some(n),
        "GiB" | "G" => Some(n * 1024),
        _ => None,
    }
}

/// Refuses (exit 4) a new VM that would not fit the nested host's memory.
pub fn check_new_vm(
    settings: &Settings,
    conn: &Libvirt,
    catalog: &Catalog,
    template: &str,
    memory_mib: Option<u64>,
    name: Option<&str>,
) -> Result<()> {
    let Some(limit) = memory_limit(settings) else {
        return Ok(());
    };
    let Some(new_mib) = memory_mib.or_else(|| template_mib(catalog, template)) else {
        return Ok(());
    };
    let name = name.unwrap_or(template);
    limits::check_fit(limit, &running_mib(conn)?, new_mib, name)
}

/// (needed MiB, limit MiB) when the running VMs need more than the limit.
pub fn overcommit(settings: &Settings, conn: &Libvirt) -> Option<(u64, u64)> {
    let limit = memory_limit(settings)? / (1024 * 1024);
    let vms = running_mib(conn).ok()?;
    let need = DAEMONS_MIB + vms.iter().map(|m| m + QEMU_OVERHEAD_MIB).sum::<u64>();
    (need > limit).then_some((need, limit))
}
