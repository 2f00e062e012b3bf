//! The plan of one create, built from reads only: the checked request, the
//! NICs with their MACs and addresses, the accelerator, the template
//! values, the seed bytes. A template that does not render fails here,
//! before anything is made. [`super::apply`] carries it out.

use super::check::{Checked, TemplateNeeds};
use super::nics::{self, Nic};
use super::request::Request;
use super::{accel, identity};
use crate::cloudinit::SeedSpec;
use crate::error::Result;
use crate::image;
use crate::libvirt::Libvirt;
use crate::output::Output;
use crate::template::Template;

pub struct Plan {
    pub name: String,
    pub template: Template,
    pub need: TemplateNeeds,
    pub disk_gib: u64,
    pub image_name: Option<String>,
    /// `kvm` or `qemu`.
    pub domain_type: String,
    /// One per network, the primary first; their MACs and addresses.
    pub nics: Vec<Nic>,
    /// The MAC of a template interface that names no network.
    pub lone_mac: Option<String>,
    /// The template's values; the disk path joins them once made.
    pub sets: Vec<(String, String)>,
    /// The seed image's bytes and what they hold (see [`super::seed`]).
    pub seed: Option<(Vec<u8>, SeedSpec)>,
}

/// Reads only (the network checks, the accelerator, free addresses).
pub fn build(conn: &Libvirt, out: &Output, req: &Request, checked: Checked) -> Result<Plan> {
    let need = checked.need;
    let networks = match (need.nic, req.networks.is_empty()) {
        (false, _) => Vec::new(),
        (true, false) => req.networks.clone(),
        (true, true) => need.nic_network.clone().into_iter().collect(),
    };
    let choice = accel::choose(conn, req.accel)?;
    if let Some(w) = &choice.warning {
        out.warn(w);
    }
    let name = checked.name;
    let nics = nics::plan(conn, out, &name, &networks, req.start, !req.no_reserve)?;
    // A template whose interface names no network still gets its MAC.
    let lone_mac = (need.nic && nics.is_empty()).then(|| identity::mac_for(&name));
    let mut sets: Vec<(String, String)> = vec![
        ("name".into(), name.clone()),
        ("accel".into(), choice.domain_type.clone()),
    ];
    sets.extend(boot_files(conn, &need, req)?);
    sets.extend(checked.memory.map(|m| ("memory".to_string(), m)));
    sets.extend(checked.vcpus.map(|v| ("vcpus".to_string(), v)));
    if let Some(first) = nics.first() {
        sets.push(("network".into(), first.network.clone()));
        sets.push(("mac".into(), first.mac.clone()));
    }
    sets.extend(lone_mac.clone().map(|m| ("mac".to_string(), m)));
    sets.extend(req.sets.iter().cloned());
    let plan = Plan {
        name,
        template: checked.template,
        need,
        disk_gib: checked.disk_gib,
        image_name: checked.image_name,
        domain_type: choice.domain_type,
        nics,
        lone_mac,
        sets,
        seed: None,
    };
    // Rendered now too, so template errors cost nothing.
    plan.render()?;
    Ok(plan)
}

impl Plan {
    /// The domain XML: the template rendered with the plan's values (the
    /// primary NIC's network and MAC among them), plus one interface per
    /// further NIC.
    pub fn render(&self) -> Result<String> {
        let more: Vec<(String, String)> = self
            .nics
            .iter()
            .skip(1)
            .map(|n| (n.network.clone(), n.mac.clone()))
            .collect();
        let label = self.template.label();
        crate::template::nics::add(&label, &self.template.render(&self.sets)?, &more)
    }

    /// The primary NIC's MAC (the seed's network-config matches it).
    pub fn primary_mac(&self) -> String {
        self.nics
            .first()
            .map(|n| n.mac.clone())
            .or(self.lone_mac.clone())
            .unwrap_or_else(|| identity::mac_for(&self.name))
    }
}

/// `kernel`/`initrd` set to the volumes of the template's kernel image,
/// unless `--set` gives both paths. Missing volumes end the create here,
/// before anything is made.
fn boot_files(
    conn: &Libvirt,
    need: &TemplateNeeds,
    req: &Request,
) -> Result<Vec<(String, String)>> {
    let Some(img) = &need.kernel else {
        return Ok(Vec::new());
    };
    let given = |k: &str| req.sets.iter().any(|(key, _)| key == k);
    if given("kernel") && given("initrd") {
        return Ok(Vec::new());
    }
    let found = image::kernel::find(conn, img)?.ok_or_else(|| image::kernel::missing(img))?;
    Ok(vec![
        ("kernel".into(), found.kernel_path),
        ("initrd".into(), found.initrd_path),
    ])
}
