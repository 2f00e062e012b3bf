//! Leftovers: objects boxvirt made for a VM that has no domain (a create
//! killed before its define, SIGKILL included, skips every rollback).
//! They are found by boxvirt's naming scheme alone, so no state file is
//! needed: disk `NAME.qcow2` and seed `NAME-seed.img` in the pool, and a
//! live DHCP reservation named NAME with a MAC derived from NAME
//! (identity::nic_mac). Base and kernel image volumes are never leftovers,
//! and neither is a volume some domain's XML uses.

use serde::Serialize;

use super::create::POOL;
use super::identity;
use crate::error::Result;
use crate::image;
use crate::libvirt::Libvirt;
use crate::names;
use crate::output::Output;

/// One object that belongs to no domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leftover {
    /// The VM it was made for.
    pub vm: String,
    /// "volume" or "reservation".
    pub kind: &'static str,
    /// The pool (volume) or network (reservation).
    pub home: String,
    /// Volume name, or the reserved IP.
    pub object: String,
    /// The reservation's MAC (empty for volumes).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mac: String,
}

impl Leftover {
    pub fn describe(&self) -> String {
        match self.kind {
            "volume" => format!("{}/{}", self.home, self.object),
            _ => format!("DHCP reservation {} on {}", self.object, self.home),
        }
    }
}

/// The VM a pool volume was made for, by name: `NAME.qcow2` or
/// `NAME-seed.img`; `None` for base/kernel images and anything else.
pub fn vm_of_volume(vol: &str) -> Option<&str> {
    if image::base::parse_volume_name(vol).is_some()
        || image::kernel::parse_volume_name(vol).is_some()
    {
        return None;
    }
    let vm = vol
        .strip_suffix("-seed.img")
        .or_else(|| vol.strip_suffix(".qcow2"))?;
    names::validate("vm", vm).ok().map(|_| vm)
}

/// Every leftover at this connection (`only`: just those of one VM, with
/// a few lookups instead of listing everything).
pub fn find(conn: &Libvirt, only: Option<&str>) -> Result<Vec<Leftover>> {
    let domains: Vec<String> = match only {
        Some(vm) if conn.domain_exists(vm)? => vec![vm.to_string()],
        Some(_) => Vec::new(),
        None => conn.list_domains()?.into_iter().map(|d| d.name).collect(),
    };
    let wanted = |vm: &str| only.is_none_or(|o| o == vm) && !domains.iter().any(|d| d == vm);
    let mut found = Vec::new();
    let candidates: Vec<(String, String)> = candidate_volumes(conn, only)?
        .into_iter()
        .filter(|(name, _)| vm_of_volume(name).is_some_and(&wanted))
        .collect();
    if !candidates.is_empty() {
        // A volume some domain uses is never a leftover.
        let mut used = String::new();
        for d in conn.list_domains()? {
            used.push_str(&conn.domain_xml(&d.name, true).unwrap_or_default());
        }
        for (name, path) in candidates {
            if used.contains(&format!("'{path}'")) || used.contains(&format!("\"{path}\"")) {
                continue;
            }
            found.push(Leftover {
                vm: vm_of_volume(&name).unwrap_or_default().to_string(),
                kind: "volume",
                home: POOL.to_string(),
                object: name,
                mac: String::new(),
            });
        }
    }
    let mut reservations = Vec::new();
    for net in conn.list_networks()? {
        let Ok(xml) = conn.network_xml(&net.name) else {
            continue;
        };
        for h in crate::xml::find_all(&xml, &["network", "ip", "dhcp", "host"]) {
            let (Some(vm), Some(mac), Some(ip)) = (h.attr("name"), h.attr("mac"), h.attr("ip"))
            else {
                continue;
            };
            // Only reservations boxvirt made: the MAC derived from the name
            // (the primary NIC's) or from the name and network (a further NIC's).
            let ours = mac.eq_ignore_ascii_case(&identity::mac_for(vm))
                || mac.eq_ignore_ascii_case(&identity::nic_mac(vm, &net.name, 1));
            if wanted(vm) && ours {
                reservations.push(Leftover {
                    vm: vm.to_string(),
                    kind: "reservation",
                    home: net.name.clone(),
                    object: ip.to_string(),
                    mac: mac.to_string(),
                });
            }
        }
    }
    if !reservations.is_empty() {
        // One some domain's NIC holds is in use: a VM renamed by
        // `env apply --replace` keeps the entry made under its first name.
        let held = conn.interface_macs()?.0;
        reservations.retain(|r| !held.contains(&r.mac.to_ascii_lowercase()));
        found.extend(reservations);
    }
    // A stable order whatever order libvirt lists in: by VM, volumes
    // before reservations, then by name.
    found.sort_by(|a, b| {
        (&a.vm, a.kind != "volume", &a.object).cmp(&(&b.vm, b.kind != "volume", &b.object))
    });
    Ok(found)
}

/// (name, path) of the pool's volumes that may be leftovers: all of them,
/// or just `NAME.qcow2` and `NAME-seed.img`.
fn candidate_volumes(conn: &Libvirt, only: Option<&str>) -> Result<Vec<(String, String)>> {
    if !conn
        .list_pools()?
        .iter()
        .any(|p| p.name == POOL && p.active)
    {
        return Ok(Vec::new());
    }
    let Some(vm) = only else {
        return Ok(conn
            .list_volumes(POOL)?
            .into_iter()
            .map(|v| (v.name, v.path))
            .collect());
    };
    let mut rows = Vec::new();
    for name in [format!("{vm}.qcow2"), format!("{vm}-seed.img")] {
        if let Some(path) = conn.volume_path(POOL, &name)? {
            rows.push((name, path));
        }
    }
    Ok(rows)
}

/// Removes them; returns what went, described.
pub fn remove(conn: &Libvirt, leftovers: &[Leftover]) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for l in leftovers {
        let gone = match l.kind {
            "volume" => conn.delete_volume(&l.home, &l.object)?,
            _ => conn.remove_dhcp_host(&l.home, &l.mac, &l.vm, &l.object)?,
        };
        if gone {
            removed.push(l.describe());
        }
    }
    Ok(removed)
}

/// A domain that a killed create defined but never finished: its boxvirt
/// metadata is still the template's element (with the `seed`, `image` or
/// `kernel` attributes that the final metadata, written as the last
/// step, never has).
pub fn is_unfinished(conn: &Libvirt, name: &str) -> Result<bool> {
    Ok(conn
        .domain_metadata(name)?
        .is_some_and(|raw| is_template_metadata(&raw)))
}

/// boxvirt metadata that is still the template's element.
pub fn is_template_metadata(raw: &str) -> bool {
    ["seed", "image", "kernel"]
        .iter()
        .any(|a| crate::xml::root_attr(raw, a).is_some())
}

/// Powers off and undefines an unfinished domain (its volumes become
/// leftovers, found by [`find`]).
pub fn drop_unfinished(conn: &Libvirt, name: &str) -> Result<()> {
    conn.destroy_domain(name)?;
    conn.undefine_domain(name)
}

/// Before a create of `name`: removes what a killed earlier create of it
/// left (an unfinished domain, volumes, a reservation); they are ours.
pub fn clear_for_create(conn: &Libvirt, out: &Output, name: &str, unfinished: bool) -> Result<()> {
    if unfinished {
        drop_unfinished(conn, name)?;
        out.note(format!(
            "removed vm '{name}', left unfinished by an interrupted create"
        ));
    }
    let cleared = remove(conn, &find(conn, Some(name))?)?;
    if !cleared.is_empty() {
        out.note(format!(
            "removed leftovers of an earlier, interrupted create of vm '{name}': {}",
            cleared.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_names_map_to_their_vm() {
        assert_eq!(vm_of_volume("web.qcow2"), Some("web"));
        assert_eq!(vm_of_volume("web-1-seed.img"), Some("web-1"));
        assert_eq!(vm_of_volume("web.img"), None);
        assert_eq!(vm_of_volume("notes.txt"), None);
    }

    #[test]
    fn base_and_kernel_images_are_never_leftovers() {
        let base = image::base::volume_name("debian12", &"a".repeat(64), "qcow2");
        assert_eq!(vm_of_volume(&base), None, "{base}");
        let k = image::kernel::volume_name("tiny", &"b".repeat(64), image::kernel::Part::Kernel);
        assert_eq!(vm_of_volume(&k), None, "{k}");
    }
}
