//! The plan of one create, built from reads only: the checked request, the
//! NICs with their MACs and addresses, the accelerator, the volumes' paths,
//! the domain XML (rendered once, here: a template that does not render
//! fails before anything is made), the seed bytes. [`super::apply`]
//! carries it out.

use super::check::{Checked, TemplateNeeds};
use super::create::POOL;
use super::nics::{self, Nic};
use super::request::Request;
use super::{accel, identity, seed};
use crate::cloudinit::SeedSpec;
use crate::error::Result;
use crate::image;
use crate::libvirt::Libvirt;
use crate::output::Output;
use crate::template::{Catalog, Kind, Template};

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
    /// The template's values, the disk path among them.
    pub sets: Vec<(String, String)>,
    /// Where the disk and seed volumes will be (the pool's directory and
    /// the volume's name); `None` when there is none or the pool does not
    /// tell (then the apply renders again with the made volume's path).
    pub disk_path: Option<String>,
    pub seed_path: Option<String>,
    /// The domain XML.
    pub xml: String,
    /// The seed image's bytes and what they hold (see [`super::seed`]).
    pub seed: Option<(Vec<u8>, SeedSpec)>,
}

/// Reads only (the network checks, the accelerator, free addresses, the pool).
pub fn build(
    conn: &Libvirt,
    catalog: &Catalog,
    out: &Output,
    req: &Request,
    checked: Checked,
) -> Result<Plan> {
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
    let mut plan = Plan {
        name,
        template: checked.template,
        need,
        disk_gib: checked.disk_gib,
        image_name: checked.image_name,
        domain_type: choice.domain_type,
        nics,
        lone_mac,
        sets: Vec::new(),
        disk_path: None,
        seed_path: None,
        xml: String::new(),
        seed: None,
    };
    plan.sets = plan.values(conn, req, checked.memory, checked.vcpus)?;
    let (disk, seed) = plan.volume_paths(conn, catalog, checked.seed_wanted)?;
    plan.place(disk, seed)?;
    Ok(plan)
}

/// The pool's volume directory: the existing pool's, else the one its
/// template makes.
fn pool_dir(conn: &Libvirt, catalog: &Catalog) -> Result<Option<String>> {
    let dir = match conn.pool_target_path(POOL)? {
        Some(dir) => Some(dir),
        None => {
            let xml = catalog.get(Kind::Pool, POOL)?.render(&[])?;
            crate::xml::find_first(&xml, &["pool", "target", "path"]).map(|p| p.text)
        }
    };
    // libvirt names a volume `<dir>/<name>` in directory pools.
    Ok(dir
        .map(|d| d.trim().trim_end_matches('/').to_string())
        .filter(|d| d.starts_with('/')))
}

impl Plan {
    /// The template's values: name, accelerator, boot files, sizes, the
    /// primary NIC; `--set` last.
    fn values(
        &self,
        conn: &Libvirt,
        req: &Request,
        memory: Option<String>,
        vcpus: Option<String>,
    ) -> Result<Vec<(String, String)>> {
        let mut sets: Vec<(String, String)> = vec![
            ("name".into(), self.name.clone()),
            ("accel".into(), self.domain_type.clone()),
        ];
        sets.extend(boot_files(conn, &self.need, req)?);
        sets.extend(memory.map(|m| ("memory".to_string(), m)));
        sets.extend(vcpus.map(|v| ("vcpus".to_string(), v)));
        if let Some(first) = self.nics.first() {
            sets.push(("network".into(), first.network.clone()));
            sets.push(("mac".into(), first.mac.clone()));
        }
        sets.extend(self.lone_mac.clone().map(|m| ("mac".to_string(), m)));
        sets.extend(self.own_serial_log());
        sets.extend(req.sets.iter().cloned());
        Ok(sets)
    }

    /// A template that logs the serial console to one file: VMs cannot
    /// share it (QEMU holds it open, a second VM fails to start), so each
    /// gets its own beside it, `DIR/<vm>.serial.log`. `--set serial_log`
    /// still wins (it comes later).
    fn own_serial_log(&self) -> Option<(String, String)> {
        let log =
            crate::xml::find_first(&self.template.xml, &["domain", "devices", "serial", "log"])?;
        let dir = std::path::Path::new(log.attr("file")?).parent()?;
        let own = dir.join(format!("{}.serial.log", self.name));
        Some(("serial_log".to_string(), own.to_str()?.to_string()))
    }

    /// Where the disk and seed volumes will be, when the pool tells.
    fn volume_paths(
        &self,
        conn: &Libvirt,
        catalog: &Catalog,
        seed_wanted: bool,
    ) -> Result<(Option<String>, Option<String>)> {
        let Some(dir) = (self.need.disk || seed_wanted)
            .then(|| pool_dir(conn, catalog))
            .transpose()?
            .flatten()
        else {
            return Ok((None, None));
        };
        let disk = self.need.disk.then(|| format!("{dir}/{}.qcow2", self.name));
        let seed = seed_wanted.then(|| format!("{dir}/{}", seed::volume(&self.name)));
        Ok((disk, seed))
    }

    /// Puts the disk and seed at these paths and renders the XML, unless
    /// it already has them (the made volumes are where the plan put them).
    pub fn place(&mut self, disk: Option<String>, seed: Option<String>) -> Result<()> {
        if !self.xml.is_empty() && (&disk, &seed) == (&self.disk_path, &self.seed_path) {
            return Ok(());
        }
        self.sets.retain(|(k, _)| k != "disk");
        if let Some(path) = &disk {
            self.sets.push(("disk".into(), path.clone()));
        }
        (self.disk_path, self.seed_path) = (disk, seed);
        let xml = self.render()?;
        self.xml = match &self.seed_path {
            Some(path) => seed::add_disk(&self.template.label(), &xml, path)?,
            None => xml,
        };
        Ok(())
    }

    /// The template rendered with the plan's values (the primary NIC's
    /// network and MAC among them), plus one interface per further NIC.
    fn render(&self) -> Result<String> {
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
