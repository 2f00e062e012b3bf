//! `vm create`: check everything first, then make the objects in order
//! (disk volume, cloud-init seed, addresses (one per NIC: a live DHCP
//! reservation on a network without slots), domain (which claims the
//! slots), start, metadata (last: it marks the VM finished)), undoing this
//! run's objects, newest first, if a later step fails. NICs: vm/nics.rs.
//! The shape follows virter's: base image -> overlay -> seed -> reserved IP.

use serde::Serialize;

use super::metadata::{Reservation, VmMetadata, Volume};
use super::nics::{self, Nic, NicOut};
use super::rollback::Rollback;
use super::{accel, identity, slot_claim};
use crate::cli::Accel;
use crate::cloudinit::{self, SeedSpec};
use crate::error::{Failure, Result};
use crate::image;
use crate::interrupt;
use crate::libvirt::{Libvirt, SettledDomains};
use crate::names;
use crate::output::Output;
use crate::template::{params, render, Catalog, Kind, Template};
use crate::xml;

/// The pool boxvirt keeps VM volumes in (made from `xml-templates/pool/default.xml`).
pub const POOL: &str = "default";
pub const DEFAULT_DISK_GIB: u64 = 20;
/// The login user boxvirt's seed creates in every guest.
pub const LOGIN_USER: &str = "boxvirt";
/// Keys with their own flags; `--set` must not smuggle them past validation.
const FLAG_KEYS: &[&str] = &["name", "memory", "vcpus", "accel", "network", "mac", "disk"];
/// The steps after which a failure can be injected (`Request::fail_after`).
pub const STEPS: &[&str] = &[
    "volume",
    "seed",
    "reservation",
    "define",
    "start",
    "metadata",
];

#[derive(Debug, Clone, Default)]
pub struct Request {
    pub template: String,
    pub name: Option<String>,
    /// The guest's hostname when it is not the VM's name (a VM made under
    /// a temporary name to replace another, `env apply --replace`).
    pub hostname: Option<String>,
    pub memory_mib: Option<u64>,
    pub vcpus: Option<u32>,
    pub disk_gib: Option<u64>,
    /// One NIC per network, the first the primary; empty: the template's.
    pub networks: Vec<String>,
    pub accel: Option<Accel>,
    pub sets: Vec<(String, String)>,
    pub start: bool,
    /// Base image (catalogue name, URL or pulled name); default: the template's.
    pub image: Option<String>,
    /// An empty disk instead of a clone of the base image.
    pub blank_disk: bool,
    /// Copy the base image instead of a qcow2 overlay.
    pub full_clone: bool,
    /// Leave out the cloud-init seed even when the template wants one.
    pub no_seed: bool,
    /// Make no DHCP reservation.
    pub no_reserve: bool,
    /// The instance's own key, made (when missing) only once every check
    /// passed, so bad input leaves no key behind. Its public half comes
    /// first in the login user's keys.
    pub instance_key: Option<InstanceKey>,
    /// More public keys for the login user (`--ssh-key` files).
    pub authorized_keys: Vec<String>,
    /// Contents of `--user-data FILE`.
    pub user_data: Option<String>,
    /// Test hook (CLI: `BOXVIRT_INJECT_FAILURE=[signal:|abort:]<step>`), a [`STEPS`] name.
    pub fail_after: Option<String>,
    /// The environment that makes this VM (`env apply`), kept in its metadata.
    pub env_mark: Option<crate::env::mark::EnvMark>,
    /// Told each step as it finishes (`env apply` shows it per VM).
    pub on_step: Option<OnStep>,
}

/// A callback for finished steps (a [`STEPS`] name); shared with the
/// progress display of another thread.
#[derive(Clone)]
pub struct OnStep(pub std::sync::Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for OnStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnStep")
    }
}

/// Where the instance's SSH key lives and whom it belongs to.
#[derive(Debug, Clone)]
pub struct InstanceKey {
    pub path: std::path::PathBuf,
    pub comment: String,
    pub uid: u32,
    pub gid: u32,
}

impl InstanceKey {
    /// Makes the key when missing and returns its public line(s).
    fn public_keys(&self) -> Result<Vec<String>> {
        crate::nested::ssh_keys::ensure_client_key(&self.path, &self.comment, self.uid, self.gid)?;
        cloudinit::read_authorized_keys_file(&self.path.with_extension("pub"))
    }
}

/// What was made (`vm create -o json`).
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    pub name: String,
    pub template: String,
    pub domain_type: String,
    /// The primary NIC's MAC, network and address.
    pub mac: Option<String>,
    pub network: Option<String>,
    pub ip: Option<String>,
    /// Every NIC, the primary first.
    pub nics: Vec<NicOut>,
    pub volumes: Vec<String>,
    pub base_image: Option<String>,
    pub user: Option<String>,
    pub started: bool,
}

/// Between two steps: a deferred Ctrl-C (or the test hook) ends the run,
/// and the caller rolls back what it made. The hook `<step>` fails right
/// after that step; `signal:<step>` sends this process a real SIGINT there;
/// `abort:<step>` kills it with SIGKILL there (no rollback at all).
pub(crate) fn after_step(req: &Request, step: &str) -> Result<()> {
    if let Some(on_step) = &req.on_step {
        (on_step.0)(step);
    }
    match req.fail_after.as_deref() {
        Some(s) if s == step => {
            return Err(Failure::failed(format!(
                "injected failure after step '{step}'"
            )))
        }
        Some(s) if s.strip_prefix("abort:") == Some(step) => {
            // SAFETY: SIGKILL to ourselves: no rollback runs, as after a kill -9.
            unsafe {
                libc::raise(libc::SIGKILL);
            }
        }
        Some(s) if s.strip_prefix("signal:") == Some(step) => {
            // SAFETY: raising SIGINT; the deferring handler is installed.
            unsafe {
                libc::raise(libc::SIGINT);
            }
        }
        _ => {}
    }
    interrupt::check(step)
}

/// What the template's `<boxvirt:vm>` metadata asks for.
struct TemplateNeeds {
    disk: bool,
    nic_network: Option<String>,
    nic: bool,
    /// How many `<interface>` elements the template has.
    interfaces: usize,
    image: Option<String>,
    /// A kernel image (`kernel="tiny"`): its volumes become `<kernel>`/`<initrd>`.
    kernel: Option<String>,
    seed: bool,
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

fn seed_disk_xml(path: &str, target: &str) -> String {
    format!(
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{}'/><target dev='{target}' bus='virtio'/><readonly/></disk>",
        quick_xml::escape::escape(path)
    )
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

pub fn create(conn: &Libvirt, catalog: &Catalog, out: &Output, req: &Request) -> Result<Created> {
    // 1. Everything that can be checked without changing anything.
    let template = catalog.get(Kind::Domain, &req.template)?;
    for (key, _) in &req.sets {
        if FLAG_KEYS.contains(&key.as_str()) {
            return Err(Failure::usage(format!(
                "use --{key} instead of --set {key}=..."
            )));
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
    let check = |key: &str, value: String| -> Result<String> {
        params::check_value(params::find(Kind::Domain, key)?, &value)
    };
    let memory = req
        .memory_mib
        .map(|m| check("memory", m.to_string()))
        .transpose()?;
    let vcpus = req
        .vcpus
        .map(|v| check("vcpus", v.to_string()))
        .transpose()?;
    nics::check_names(&req.networks)?;
    let need = needs(&template);
    if req.disk_gib.is_some() && !need.disk {
        return Err(Failure::usage(format!(
            "template {} has no disk; drop --disk-size",
            template.label()
        )));
    }
    if (req.image.is_some() || req.blank_disk || req.full_clone) && !need.disk {
        return Err(Failure::usage(format!(
            "template {} has no disk; drop --image/--blank-disk/--full-clone",
            template.label()
        )));
    }
    if !req.networks.is_empty() && !need.nic {
        return Err(Failure::usage(format!(
            "template {} has no network interface; drop --network",
            template.label()
        )));
    }
    if req.networks.len() > 1 && need.interfaces > 1 {
        return Err(Failure::usage(format!(
            "template {} has {} interfaces of its own; several --network need a template with one",
            template.label(),
            need.interfaces
        )));
    }
    let disk_gib = req.disk_gib.unwrap_or(DEFAULT_DISK_GIB);
    if !(1..=16 * 1024).contains(&disk_gib) {
        return Err(Failure::usage(format!(
            "--disk-size {disk_gib} is out of range; use 1 to 16384 GiB"
        )));
    }
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
    let unfinished = conn.domain_exists(&name)? && super::leftovers::is_unfinished(conn, &name)?;
    if !unfinished && conn.domain_exists(&name)? {
        return Err(Failure::conflict(format!(
            "vm '{name}' already exists at {}; pick another --name or run 'boxvirt vm delete {name}'",
            conn.uri()
        )));
    }
    // A killed earlier create of this name may have left an unfinished
    // domain, volumes or a reservation: they are ours, so clear them.
    if unfinished {
        super::leftovers::drop_unfinished(conn, &name)?;
        out.note(format!(
            "removed vm '{name}', left unfinished by an interrupted create"
        ));
    }
    let cleared = super::leftovers::remove(conn, &super::leftovers::find(conn, Some(&name))?)?;
    if !cleared.is_empty() {
        out.note(format!(
            "removed leftovers of an earlier, interrupted create of vm '{name}': {}",
            cleared.join(", ")
        ));
    }

    let networks = match (need.nic, req.networks.is_empty()) {
        (false, _) => Vec::new(),
        (true, false) => req.networks.clone(),
        (true, true) => need.nic_network.clone().into_iter().collect(),
    };
    let choice = accel::choose(conn, req.accel)?;
    if let Some(w) = &choice.warning {
        out.warn(w);
    }
    let mut nics = nics::plan(conn, out, &name, &networks, req.start, !req.no_reserve)?;
    // A template whose interface names no network still gets its MAC.
    let lone_mac = (need.nic && nics.is_empty()).then(|| identity::mac_for(&name));
    let mut sets: Vec<(String, String)> = vec![
        ("name".into(), name.clone()),
        ("accel".into(), choice.domain_type.clone()),
    ];
    sets.extend(boot_files(conn, &need, req)?);
    sets.extend(memory.map(|m| ("memory".to_string(), m)));
    sets.extend(vcpus.map(|v| ("vcpus".to_string(), v)));
    if let Some(first) = nics.first() {
        sets.push(("network".into(), first.network.clone()));
        sets.push(("mac".into(), first.mac.clone()));
    }
    sets.extend(lone_mac.clone().map(|m| ("mac".to_string(), m)));
    sets.extend(req.sets.iter().cloned());
    // Render once before creating anything, so template errors cost nothing.
    render_domain(&template, &sets, &nics)?;

    let mut seed_spec = if seed_wanted {
        let spec = SeedSpec {
            instance_id: cloudinit::new_instance_id(&name)?,
            hostname: req.hostname.clone().unwrap_or_else(|| name.clone()),
            user: LOGIN_USER.to_string(),
            authorized_keys: login_keys(req)?,
            host_key: cloudinit::generate_host_key(&format!("{name} host key"))?,
            mac: nics
                .first()
                .map(|n| n.mac.clone())
                .or(lone_mac.clone())
                .unwrap_or_else(|| identity::mac_for(&name)),
            more_macs: nics.iter().skip(1).map(|n| n.mac.clone()).collect(),
            extra_user_data: req.user_data.clone(),
        };
        spec.validate()?;
        // Build the bytes now: a bad --user-data fails before anything exists.
        Some((cloudinit::build_seed_image(&spec)?, spec))
    } else {
        None
    };

    // The base image is shared and cached: fetched before, never rolled back.
    let base = match &image_name {
        Some(img) => Some(image::ensure_base_volume(
            conn,
            catalog,
            out,
            img,
            &image::PullOptions::default(),
        )?),
        None => None,
    };

    // A killed earlier create of this name (no domain, checked above) may
    // have left its volumes or reservation: they are ours, so clear them.
    // 2. Make things, newest undone first on failure.
    // Ctrl-C from here on rolls back instead of leaving objects behind.
    let _signals = interrupt::Deferred::new();
    let mut rollback = Rollback::new();
    let mut meta = VmMetadata {
        template: template.name.clone(),
        env: req.env_mark.clone(),
        ..Default::default()
    };
    let result = (|| -> Result<()> {
        if need.disk || seed_spec.is_some() {
            let changes = conn.ensure_pool(POOL, || catalog.get(Kind::Pool, POOL)?.render(&[]))?;
            if !changes.is_empty() {
                let said: Vec<&str> = changes.iter().map(|c| c.describe()).collect();
                out.note(format!("storage pool '{POOL}': {}", said.join(", ")));
            }
        }
        if need.disk {
            let vol = format!("{name}.qcow2");
            let capacity =
                (disk_gib * 1024 * 1024 * 1024).max(base.as_ref().map_or(0, |b| b.virtual_size));
            let path = match &base {
                Some(b) if req.full_clone => {
                    if b.pool != POOL {
                        return Err(Failure::failed(format!(
                            "--full-clone needs the base volume in pool '{POOL}'"
                        )));
                    }
                    conn.clone_volume(POOL, &vol, &b.name, capacity)?
                }
                Some(b) => conn.create_overlay_volume(POOL, &vol, &b.path, &b.format, capacity)?,
                None => conn.create_volume(POOL, &vol, capacity, "qcow2")?,
            };
            let undo = vol.clone();
            rollback.push(format!("volume '{vol}'"), move || {
                conn.delete_volume(POOL, &undo).map(|_| ())
            });
            meta.volumes.push(Volume {
                pool: POOL.to_string(),
                name: vol,
                role: "disk".into(),
            });
            sets.push(("disk".into(), path));
            after_step(req, "volume")?;
        }
        let mut seed_path = None;
        if let Some((bytes, spec)) = &seed_spec {
            let vol = seed_volume(&name);
            let path = upload_seed(conn, &name, bytes)?;
            let undo = vol.clone();
            rollback.push(format!("seed volume '{vol}'"), move || {
                conn.delete_volume(POOL, &undo).map(|_| ())
            });
            meta.volumes.push(Volume {
                pool: POOL.to_string(),
                name: vol,
                role: "seed".into(),
            });
            meta.user = Some(spec.user.clone());
            meta.host_key = Some(spec.host_key.public_line.clone());
            seed_path = Some(path);
            after_step(req, "seed")?;
        }
        reserve_live(conn, &name, &nics, &mut rollback)?;
        // A slot is claimed by the define; the step is where an address is settled.
        if nics.iter().any(|n| n.slot.is_some() || n.live_ip.is_some()) {
            after_step(req, "reservation")?;
        }
        let mut xml = render_domain(&template, &sets, &nics)?;
        if let Some(path) = &seed_path {
            let target = free_target(&xml);
            xml = render::append_child(
                &template.label(),
                &xml,
                &["domain", "devices"],
                &seed_disk_xml(path, &target),
            )?;
        }
        conn.define_domain(&xml)?;
        let undo_name = name.clone();
        rollback.push(format!("vm '{name}'"), move || {
            conn.destroy_domain(&undo_name)?;
            conn.undefine_domain(&undo_name)
        });
        // The define claimed the slots; another create may have claimed one too.
        settle_slots(conn, out, &name, &mut nics, &mut seed_spec)?;
        meta.reservations = nics.iter().filter_map(reservation).collect();
        after_step(req, "define")?;
        if req.start {
            conn.start_domain(&name)?;
            after_step(req, "start")?;
        }
        // Last: the final metadata marks the create finished (until then a
        // re-run treats the domain as an interrupted create's).
        conn.set_domain_metadata(&name, &meta.to_xml())?;
        after_step(req, "metadata")?;
        Ok(())
    })();
    match result {
        Ok(()) => {
            rollback.commit();
            let nic_outs: Vec<NicOut> = nics.iter().map(nic_out).collect();
            Ok(Created {
                name,
                template: template.name.clone(),
                domain_type: choice.domain_type,
                mac: nic_outs.first().map(|n| n.mac.clone()).or(lone_mac),
                network: nic_outs.first().map(|n| n.network.clone()),
                ip: nic_outs.first().and_then(|n| n.ip.clone()),
                nics: nic_outs,
                volumes: meta.volumes.iter().map(|v| v.name.clone()).collect(),
                base_image: base.map(|b| b.name),
                user: meta.user.clone(),
                started: req.start,
            })
        }
        Err(e) => Err(rollback.fail(e.context(format!("creating vm '{name}'")))),
    }
}

/// The domain XML: the template rendered with `sets` (the primary NIC's
/// network and MAC among them), plus one interface per further NIC.
fn render_domain(template: &Template, sets: &[(String, String)], nics: &[Nic]) -> Result<String> {
    let more: Vec<(String, String)> = nics
        .iter()
        .skip(1)
        .map(|n| (n.network.clone(), n.mac.clone()))
        .collect();
    crate::template::nics::add(&template.label(), &template.render(sets)?, &more)
}

/// The live DHCP reservations of NICs on networks without slots, each
/// with its rollback.
fn reserve_live<'a>(
    conn: &'a Libvirt,
    name: &str,
    nics: &[Nic],
    rollback: &mut Rollback<'a>,
) -> Result<()> {
    for nic in nics {
        let Some(ip) = nic.live_ip else { continue };
        let ip = ip.to_string();
        conn.add_dhcp_host(&nic.network, &nic.mac, name, &ip)?;
        let (n, m, i, vm) = (
            nic.network.clone(),
            nic.mac.clone(),
            ip.clone(),
            name.to_string(),
        );
        rollback.push(format!("DHCP reservation {ip} on {n}"), move || {
            conn.remove_dhcp_host(&n, &m, &vm, &i).map(|_| ())
        });
    }
    Ok(())
}

/// Right after the define: settles each slot NIC's claim, in order; a NIC
/// moved to another slot gets its new MAC in the domain and the seed.
fn settle_slots(
    conn: &Libvirt,
    out: &Output,
    name: &str,
    nics: &mut [Nic],
    seed_spec: &mut Option<(Vec<u8>, SeedSpec)>,
) -> Result<()> {
    let mut kept: Vec<String> = Vec::new();
    for nic in nics.iter_mut() {
        let Some((block, slot, settled)) = nic.slot.clone() else {
            continue;
        };
        let mut current = slot.mac.clone();
        let net = nic.network.clone();
        let won = slot_claim::settle(conn, &net, &block, name, &kept, slot, settled, |new| {
            if let Some((_, spec)) = seed_spec.as_mut() {
                for m in std::iter::once(&mut spec.mac).chain(spec.more_macs.iter_mut()) {
                    if *m == current {
                        *m = new.mac.clone();
                    }
                }
                let bytes = cloudinit::build_seed_image(spec)?;
                conn.delete_volume(POOL, &seed_volume(name))?;
                upload_seed(conn, name, &bytes)?;
            }
            let xml = conn.domain_xml(name, true)?.replace(
                &format!("address='{current}'"),
                &format!("address='{}'", new.mac),
            );
            conn.define_domain(&xml)?;
            out.detail(format!(
                "address slot {current} of network '{net}' was claimed by another create at the same moment; moved to {} ({})",
                new.mac, new.ip
            ));
            current = new.mac.clone();
            Ok(())
        })?;
        kept.push(won.mac.clone());
        nic.mac = won.mac.clone();
        nic.slot = Some((block, won, SettledDomains::default()));
    }
    Ok(())
}

/// The address a NIC got, as the metadata records it.
fn reservation(nic: &Nic) -> Option<Reservation> {
    let (ip, slot) = match (&nic.slot, nic.live_ip) {
        (Some((_, s, _)), _) => (s.ip.to_string(), true),
        (None, Some(ip)) => (ip.to_string(), false),
        (None, None) => return None,
    };
    Some(Reservation {
        network: nic.network.clone(),
        mac: nic.mac.clone(),
        ip,
        slot,
        host: None,
    })
}

fn nic_out(nic: &Nic) -> NicOut {
    NicOut {
        network: nic.network.clone(),
        mac: nic.mac.clone(),
        ip: reservation(nic).map(|r| r.ip),
    }
}

fn seed_volume(vm: &str) -> String {
    format!("{vm}-seed.img")
}

/// Uploads the seed image as the VM's seed volume; returns its path.
fn upload_seed(conn: &Libvirt, vm: &str, bytes: &[u8]) -> Result<String> {
    let tmp = std::env::temp_dir().join(format!("boxvirt-seed-{}-{vm}.img", std::process::id()));
    std::fs::write(&tmp, bytes)
        .map_err(|e| Failure::failed(format!("cannot write {}: {e}", tmp.display())))?;
    let uploaded = conn.upload_volume(POOL, &seed_volume(vm), &tmp, &mut |_| {});
    let _ = std::fs::remove_file(&tmp);
    uploaded
}

/// Removes the seed disk from the domain (live and config) and deletes the
/// seed volume; the VM keeps running. cloud-init needs the seed only on the
/// first boot, and external snapshots need it gone.
pub fn eject_seed(conn: &Libvirt, name: &str) -> Result<Option<String>> {
    let Some(raw) = conn.domain_metadata(name)? else {
        return Ok(None);
    };
    let mut meta = VmMetadata::parse(&raw);
    let Some(seed) = meta.seed().cloned() else {
        return Ok(None);
    };
    if let Some(path) = conn.volume_path(&seed.pool, &seed.name)? {
        let dom_xml = conn.domain_xml(name, true)?;
        let target = xml::find_all(&dom_xml, &["domain", "devices", "disk", "source"])
            .iter()
            .position(|s| s.attr("file") == Some(path.as_str()))
            .and_then(|i| {
                xml::find_all(&dom_xml, &["domain", "devices", "disk", "target"])
                    .get(i)
                    .and_then(|t| t.attr("dev").map(str::to_string))
            });
        if let Some(target) = target {
            conn.detach_disk(name, &seed_disk_xml(&path, &target))?;
        }
        conn.delete_volume(&seed.pool, &seed.name)?;
    }
    meta.volumes.retain(|v| v.role != "seed");
    conn.set_domain_metadata(name, &meta.to_xml())?;
    Ok(Some(seed.name))
}
