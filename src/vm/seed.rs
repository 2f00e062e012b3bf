//! The VM's cloud-init seed: its bytes (built before anything is made),
//! its volume `NAME-seed.img`, its disk in the domain, and its ejection
//! after the first boot.

use super::create::{LOGIN_USER, POOL};
use super::metadata::VmMetadata;
use super::plan::Plan;
use super::request::Request;
use crate::cloudinit::{self, SeedSpec};
use crate::error::{Failure, Result};
use crate::libvirt::Libvirt;
use crate::xml;

/// The seed image and what it holds. The instance key is made here when
/// missing (the one write before the apply): only now has every check
/// passed, so bad input leaves no key behind. A bad `--user-data` fails
/// here, before anything else exists.
pub fn build(plan: &Plan, req: &Request) -> Result<(Vec<u8>, SeedSpec)> {
    let name = &plan.name;
    let spec = SeedSpec {
        instance_id: cloudinit::new_instance_id(name)?,
        hostname: req.hostname.clone().unwrap_or_else(|| name.clone()),
        user: LOGIN_USER.to_string(),
        authorized_keys: login_keys(req)?,
        host_key: cloudinit::generate_host_key(&format!("{name} host key"))?,
        mac: plan.primary_mac(),
        more_macs: plan.nics.iter().skip(1).map(|n| n.mac.clone()).collect(),
        extra_user_data: req.user_data.clone(),
    };
    spec.validate()?;
    Ok((cloudinit::build_seed_image(&spec)?, spec))
}

/// The login user's keys: the instance key (made now if missing) first,
/// then the `--ssh-key` ones.
fn login_keys(req: &Request) -> Result<Vec<String>> {
    let mut keys = match &req.instance_key {
        Some(key) => key.public_keys()?,
        None => Vec::new(),
    };
    keys.extend(req.authorized_keys.iter().cloned());
    Ok(keys)
}

pub fn volume(vm: &str) -> String {
    format!("{vm}-seed.img")
}

/// Uploads the seed image as the VM's seed volume; returns its path.
pub fn upload(conn: &Libvirt, vm: &str, bytes: &[u8]) -> Result<String> {
    let tmp = std::env::temp_dir().join(format!("boxvirt-seed-{}-{vm}.img", std::process::id()));
    std::fs::write(&tmp, bytes)
        .map_err(|e| Failure::failed(format!("cannot write {}: {e}", tmp.display())))?;
    let uploaded = conn.upload_volume(POOL, &volume(vm), &tmp, &mut |_| {});
    let _ = std::fs::remove_file(&tmp);
    uploaded
}

/// The domain XML with the seed volume at `path` as a read-only disk on
/// the first free virtio target.
pub fn add_disk(label: &str, domain_xml: &str, path: &str) -> Result<String> {
    let target = free_target(domain_xml);
    crate::template::render::append_child(
        label,
        domain_xml,
        &["domain", "devices"],
        &disk_xml(path, &target),
    )
}

/// The first free virtio target (`vdb`, `vdc`, ...) for the seed disk.
fn free_target(domain_xml: &str) -> String {
    let used: Vec<String> = xml::find_all(domain_xml, &["domain", "devices", "disk", "target"])
        .into_iter()
        .filter_map(|t| t.attr("dev").map(str::to_string))
        .collect();
    ('b'..='z')
        .map(|c| format!("vd{c}"))
        .find(|d| !used.contains(d))
        .unwrap_or_else(|| "vdz".into())
}

fn disk_xml(path: &str, target: &str) -> String {
    format!(
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{}'/><target dev='{target}' bus='virtio'/><readonly/></disk>",
        quick_xml::escape::escape(path)
    )
}

/// Removes the seed disk from the domain (live and config) and deletes the
/// seed volume; the VM keeps running. cloud-init needs the seed only on the
/// first boot, and external snapshots need it gone.
pub fn eject(conn: &Libvirt, name: &str) -> Result<Option<String>> {
    let Some(raw) = conn.domain_metadata(name)? else {
        return Ok(None);
    };
    let mut meta = VmMetadata::parse(&raw);
    let Some(seed) = meta.seed().cloned() else {
        return Ok(None);
    };
    if let Some(path) = conn.volume_path(&seed.pool, &seed.name)? {
        if let Some(target) = disk_target(&conn.domain_xml(name, true)?, &path) {
            conn.detach_disk(name, &disk_xml(&path, &target))?;
        }
        conn.delete_volume(&seed.pool, &seed.name)?;
    }
    meta.volumes.retain(|v| v.role != "seed");
    conn.set_domain_metadata(name, &meta.to_xml())?;
    Ok(Some(seed.name))
}

/// The target device of the domain's disk whose source is `path`.
fn disk_target(dom_xml: &str, path: &str) -> Option<String> {
    let i = xml::find_all(dom_xml, &["domain", "devices", "disk", "source"])
        .iter()
        .position(|s| s.attr("file") == Some(path))?;
    xml::find_all(dom_xml, &["domain", "devices", "disk", "target"])
        .get(i)
        .and_then(|t| t.attr("dev").map(str::to_string))
}
