//! The first part of a create: everything about the request that can be
//! checked without changing anything (flags against the template, the
//! name, sizes, keys, whether the name is free).

use super::nics;
use super::request::Request;
use super::{identity, leftovers};
use crate::error::{Failure, Result};
use crate::libvirt::Libvirt;
use crate::names;
use crate::template::{params, Catalog, Kind, Template};
use crate::xml;

pub const DEFAULT_DISK_GIB: u64 = 20;
/// Keys with their own flags; `--set` must not smuggle them past validation.
const FLAG_KEYS: &[&str] = &["name", "memory", "vcpus", "accel", "network", "mac", "disk"];

/// What the template's `<boxvirt:vm>` metadata asks for.
#[derive(Debug, Clone)]
pub struct TemplateNeeds {
    pub disk: bool,
    pub nic_network: Option<String>,
    pub nic: bool,
    /// How many `<interface>` elements the template has.
    pub interfaces: usize,
    pub image: Option<String>,
    /// A kernel image (`kernel="tiny"`): its volumes become `<kernel>`/`<initrd>`.
    pub kernel: Option<String>,
    pub seed: bool,
}

fn needs(template: &Template) -> TemplateNeeds {
    let meta = xml::find_first(&template.xml, &["domain", "metadata", "vm"]);
    let nic = xml::find_first(&template.xml, &["domain", "devices", "interface", "source"]);
    TemplateNeeds {
        disk: xml::find_first(&template.xml, &["domain", "devices", "disk", "source"]).is_some(),
        nic: nic.is_some(),
        interfaces: crate::template::nics::count(&template.xml),
        nic_network: nic.and_then(|s| s.attr("network").map(str::to_string)),
        image: meta
            .as_ref()
            .and_then(|m| m.attr("image").map(str::to_string)),
        kernel: meta
            .as_ref()
            .and_then(|m| m.attr("kernel").map(str::to_string)),
        seed: meta.as_ref().and_then(|m| m.attr("seed")) == Some("nocloud"),
    }
}

/// The request, checked.
pub struct Checked {
    pub template: Template,
    pub need: TemplateNeeds,
    pub name: String,
    /// `--memory`/`--vcpus` as template values.
    pub memory: Option<String>,
    pub vcpus: Option<String>,
    pub disk_gib: u64,
    /// The base image to clone, if any.
    pub image_name: Option<String>,
    pub seed_wanted: bool,
    /// A domain of this name exists, left unfinished by a killed create.
    pub unfinished: bool,
}

/// Reads only. The order decides which error a request with several
/// mistakes gets.
pub fn check(conn: &Libvirt, catalog: &Catalog, req: &Request) -> Result<Checked> {
    let template = catalog.get(Kind::Domain, &req.template)?;
    refuse_flag_keys(req)?;
    let name = vm_name(conn, &template, req)?;
    let memory = param("memory", req.memory_mib)?;
    let vcpus = param("vcpus", req.vcpus)?;
    nics::check_names(&req.networks)?;
    let need = needs(&template);
    check_against_template(&template, &need, req)?;
    let disk_gib = disk_size(req)?;
    let image_name = if need.disk && !req.blank_disk {
        req.image.clone().or(need.image.clone())
    } else {
        None
    };
    let seed_wanted = need.seed && !req.no_seed;
    if seed_wanted && req.instance_key.is_none() && req.authorized_keys.is_empty() {
        return Err(Failure::failed(
            "no SSH public key for the VM's login user; pass --ssh-key FILE",
        ));
    }
    let unfinished = taken_by_unfinished(conn, &name)?;
    Ok(Checked {
        template,
        need,
        name,
        memory,
        vcpus,
        disk_gib,
        image_name,
        seed_wanted,
        unfinished,
    })
}

fn refuse_flag_keys(req: &Request) -> Result<()> {
    match req
        .sets
        .iter()
        .find(|(k, _)| FLAG_KEYS.contains(&k.as_str()))
    {
        Some((key, _)) => Err(Failure::usage(format!(
            "use --{key} instead of --set {key}=..."
        ))),
        None => Ok(()),
    }
}

/// `--name`, else a free default name from the template's.
fn vm_name(conn: &Libvirt, template: &Template, req: &Request) -> Result<String> {
    let name = match &req.name {
        Some(n) => n.clone(),
        None => {
            let taken: Vec<String> = conn.list_domains()?.into_iter().map(|d| d.name).collect();
            identity::default_name(&template.name, &taken)
        }
    };
    names::validate("vm", &name)?;
    Ok(name)
}

/// A flag's value checked as the template parameter it sets.
fn param(key: &str, value: Option<impl ToString>) -> Result<Option<String>> {
    value
        .map(|v| params::check_value(params::find(Kind::Domain, key)?, &v.to_string()))
        .transpose()
}

/// Flags the template cannot take.
fn check_against_template(template: &Template, need: &TemplateNeeds, req: &Request) -> Result<()> {
    let refuse = |msg: String| Err(Failure::usage(msg));
    let label = template.label();
    if req.disk_gib.is_some() && !need.disk {
        return refuse(format!("template {label} has no disk; drop --disk-size"));
    }
    if (req.image.is_some() || req.blank_disk || req.full_clone) && !need.disk {
        return refuse(format!(
            "template {label} has no disk; drop --image/--blank-disk/--full-clone"
        ));
    }
    if !req.networks.is_empty() && !need.nic {
        return refuse(format!(
            "template {label} has no network interface; drop --network"
        ));
    }
    if req.networks.len() > 1 && need.interfaces > 1 {
        return refuse(format!(
            "template {label} has {} interfaces of its own; several --network need a template with one",
            need.interfaces
        ));
    }
    Ok(())
}

fn disk_size(req: &Request) -> Result<u64> {
    let disk_gib = req.disk_gib.unwrap_or(DEFAULT_DISK_GIB);
    if !(1..=16 * 1024).contains(&disk_gib) {
        return Err(Failure::usage(format!(
            "--disk-size {disk_gib} is out of range; use 1 to 16384 GiB"
        )));
    }
    Ok(disk_gib)
}

/// Exit 4 when a finished VM has the name; true when an unfinished one
/// (a killed create's) has it.
fn taken_by_unfinished(conn: &Libvirt, name: &str) -> Result<bool> {
    let unfinished = conn.domain_exists(name)? && leftovers::is_unfinished(conn, name)?;
    if !unfinished && conn.domain_exists(name)? {
        return Err(Failure::conflict(format!(
            "vm '{name}' already exists at {}; pick another --name or run 'boxvirt vm delete {name}'",
            conn.uri()
        )));
    }
    Ok(unfinished)
}
