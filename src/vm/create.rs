//! `vm create`: check everything first, then make the objects in order
//! (disk volume, cloud-init seed, address (a live DHCP reservation on a
//! network without slots), domain (which claims a slot), start, metadata (last: it marks the VM finished)), undoing this run's objects, newest first, if a later step fails.
//! The shape follows virter's: base image -> overlay -> seed -> reserved IP.

use serde::Serialize;

use super::address;
use super::metadata::{Reservation, VmMetadata, Volume};
use super::rollback::Rollback;
use super::{accel, identity, slot_claim, slots};
use crate::cli::Accel;
use crate::cloudinit::{self, SeedSpec};
use crate::error::{Failure, Result};
use crate::image;
use crate::interrupt;
use crate::libvirt::Libvirt;
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
    pub memory_mib: Option<u64>,
    pub vcpus: Option<u32>,
    pub disk_gib: Option<u64>,
    pub network: Option<String>,
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
    pub mac: Option<String>,
    pub network: Option<String>,
    pub ip: Option<String>,
    pub volumes: Vec<String>,
    pub base_image: Option<String>,
    pub user: Option<String>,
    pub started: bool,
}

/// Between two steps: a deferred Ctrl-C (or the test hook) ends the run,
/// and the caller rolls back what it made. The hook `<step>` fails right
/// after that step; `signal:<step>` sends this process a real SIGINT there;
/// `abort:<step>` kills it with SIGKILL there (no rollback at all).
fn after_step(req: &Request, step: &str) -> Result<()> {
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
    if let Some(net) = &req.network {
        names::validate("network", net)?;
    }
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
    if req.network.is_some() && !need.nic {
        return Err(Failure::usage(format!(
            "template {} has no network interface; drop --network",
            template.label()
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

    let network = if need.nic {
        req.network.clone().or(need.nic_network.clone())
    } else {
        None
    };
    let mut net_xml = None;
    if let Some(net) = &network {
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
            Some(_) => net_xml = Some(conn.network_xml(net)?),
        }
    }
    let choice = accel::choose(conn, req.accel)?;
    if let Some(w) = &choice.warning {
        out.warn(w);
    }
    let mut mac = need.nic.then(|| identity::mac_for(&name));
    // The address: a free slot of the network's block (its MAC is the
    // VM's; nothing on the network changes), else, on a network without a
    // block, a live DHCP reservation. Only where DHCP hands out leases.
    let block = match (&network, req.no_reserve) {
        (Some(_), false) => net_xml.as_deref().and_then(slots::block),
        _ => None,
    };
    let mut slot = None;
    if let (Some(net), Some(b)) = (&network, &block) {
        let (s, settled) = slot_claim::pick(conn, net, b, &name)?;
        mac = Some(s.mac.clone());
        slot = Some((s, settled));
    }
    let subnet = if req.no_reserve || block.is_some() {
        None
    } else {
        net_xml.as_deref().and_then(address::dhcp_subnet)
    };
    let planned_ip = match (&network, &mac, subnet) {
        (Some(net), Some(mac), Some(subnet)) => {
            let leased: Vec<(String, std::net::Ipv4Addr)> = conn
                .dhcp_leases(net, None)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|l| Some((l.mac, l.ip.parse().ok()?)))
                .collect();
            let ip = address::pick(&subnet, mac, &leased)?;
            out.detail(format!(
                "network '{net}' has no block of address slots, so {ip} is reserved with a live DHCP update (libvirt rewrites the network's firewall for it, about 0.4 s; 'boxvirt net ensure {net}' gives the network slots once no VM uses it)"
            ));
            Some(ip)
        }
        _ => None,
    };
    let mut sets: Vec<(String, String)> = vec![
        ("name".into(), name.clone()),
        ("accel".into(), choice.domain_type.clone()),
    ];
    sets.extend(boot_files(conn, &need, req)?);
    sets.extend(memory.map(|m| ("memory".to_string(), m)));
    sets.extend(vcpus.map(|v| ("vcpus".to_string(), v)));
    sets.extend(network.clone().map(|n| ("network".to_string(), n)));
    sets.extend(mac.clone().map(|m| ("mac".to_string(), m)));
    sets.extend(req.sets.iter().cloned());
    // Render once before creating anything, so template errors cost nothing.
    template.render(&sets)?;

    let mut seed_spec = if seed_wanted {
        let spec = SeedSpec {
            instance_id: cloudinit::new_instance_id(&name)?,
            hostname: name.clone(),
            user: LOGIN_USER.to_string(),
            authorized_keys: login_keys(req)?,
            host_key: cloudinit::generate_host_key(&format!("{name} host key"))?,
            mac: mac.clone().unwrap_or_else(|| identity::mac_for(&name)),
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
        if let (Some(net), Some(mac), Some(ip)) = (&network, &mac, planned_ip) {
            let ip = ip.to_string();
            conn.add_dhcp_host(net, mac, &name, &ip)?;
            let (n, m, i, vm) = (net.clone(), mac.clone(), ip.clone(), name.clone());
            rollback.push(format!("DHCP reservation {ip}"), move || {
                conn.remove_dhcp_host(&n, &m, &vm, &i).map(|_| ())
            });
            meta.reservation = Some(Reservation {
                network: net.clone(),
                mac: mac.clone(),
                ip,
                slot: false,
            });
            after_step(req, "reservation")?;
        }
        if let (Some(net), Some((s, _))) = (&network, &slot) {
            meta.reservation = Some(Reservation {
                network: net.clone(),
                mac: s.mac.clone(),
                ip: s.ip.to_string(),
                slot: true,
            });
            after_step(req, "reservation")?;
        }
        let mut xml = template.render(&sets)?;
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
        // The define claimed the slot; another create may have claimed it too.
        if let (Some(net), Some(b), Some((s, settled))) = (&network, &block, slot.clone()) {
            let mut current = s.mac.clone();
            let kept = slot_claim::settle(conn, net, b, &name, s, settled, |new| {
                if let Some((_, spec)) = &mut seed_spec {
                    spec.mac = new.mac.clone();
                    let bytes = cloudinit::build_seed_image(spec)?;
                    conn.delete_volume(POOL, &seed_volume(&name))?;
                    upload_seed(conn, &name, &bytes)?;
                }
                let xml = conn.domain_xml(&name, true)?.replace(
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
            mac = Some(kept.mac.clone());
            meta.reservation = Some(Reservation {
                network: net.clone(),
                mac: kept.mac.clone(),
                ip: kept.ip.to_string(),
                slot: true,
            });
        }
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
            Ok(Created {
                name,
                template: template.name.clone(),
                domain_type: choice.domain_type,
                mac,
                network,
                ip: meta.reservation.as_ref().map(|r| r.ip.clone()),
                volumes: meta.volumes.iter().map(|v| v.name.clone()).collect(),
                base_image: base.map(|b| b.name),
                user: meta.user.clone(),
                started: req.start,
            })
        }
        Err(e) => Err(rollback.fail(e.context(format!("creating vm '{name}'")))),
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
