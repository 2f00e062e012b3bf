//! Everything the run makes is removed, whether it finished, failed, was
//! interrupted or panicked: its VMs (boxvirt's with `vm delete`, which also
//! drops their volumes and DHCP reservations; the others destroyed and
//! undefined with their NVRAM), and its directory (key, overlays, seeds, the
//! cold build's cache). Leftovers of a killed run (`bench-guest-*`) are
//! swept at the start of the next.

use std::cell::RefCell;
use std::collections::BTreeMap;

use boxvirt::libvirt::Libvirt;

use crate::contenders::{self, Contender};
use crate::{process, Config, PREFIX};

pub struct Made<'a> {
    cfg: &'a Config,
    libvirt: &'a Libvirt,
    /// VM name -> who made it.
    vms: RefCell<BTreeMap<String, Contender>>,
}

impl<'a> Made<'a> {
    /// Creates the run's directory (QEMU must be able to reach the files in
    /// it, so it is world-searchable).
    pub fn new(cfg: &'a Config, libvirt: &'a Libvirt) -> Result<Self, String> {
        use std::os::unix::fs::PermissionsExt;
        let dir = &cfg.work;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Made {
            cfg,
            libvirt,
            vms: RefCell::new(BTreeMap::new()),
        })
    }

    /// Records `name` before anything creates it.
    pub fn track(&self, who: Contender, name: &str) -> String {
        self.vms.borrow_mut().insert(name.to_string(), who);
        name.to_string()
    }

    /// Removes one VM now (between runs, outside the timed region).
    pub fn remove(&self, name: &str) {
        let who = self.vms.borrow_mut().remove(name);
        if let Some(who) = who {
            remove_vm(self.cfg, self.libvirt, name, who.by_boxvirt());
        }
    }
}

impl Drop for Made<'_> {
    fn drop(&mut self) {
        let vms = std::mem::take(&mut *self.vms.borrow_mut());
        for (name, who) in vms {
            eprintln!("guest: removing {name}");
            remove_vm(self.cfg, self.libvirt, &name, who.by_boxvirt());
        }
        remove_leftover_volumes(self.libvirt);
        let _ = std::fs::remove_dir_all(&self.cfg.work);
    }
}

fn remove_vm(cfg: &Config, libvirt: &Libvirt, name: &str, by_boxvirt: bool) {
    if by_boxvirt {
        let mut cmd = cfg.boxvirt_cmd(&cfg.cache, false);
        cmd.args(["vm", "delete", name, "--yes"]);
        if let Err(e) = process::run(&mut cmd) {
            if libvirt.domain_exists(name).unwrap_or(false) {
                eprintln!("guest: warning: {e}");
            }
        }
    }
    // A domain boxvirt could not delete, or the virt-install contender's.
    if libvirt.domain_exists(name).unwrap_or(false) {
        let _ = libvirt.destroy_domain(name);
        if let Err(e) = libvirt.undefine_domain(name) {
            eprintln!("guest: warning: undefining {name}: {}", e.message);
        }
    }
    for f in contenders::virt_install_files(cfg, name) {
        let _ = std::fs::remove_file(f);
    }
    let _ = std::fs::remove_file(format!("/var/log/libvirt/qemu/{name}.log"));
}

/// Volumes named like ours that a failed `vm delete` left in pool 'default'.
fn remove_leftover_volumes(libvirt: &Libvirt) {
    let Ok(vols) = libvirt.list_volumes("default") else {
        return;
    };
    for v in vols.iter().filter(|v| v.name.starts_with(PREFIX)) {
        eprintln!("guest: removing volume {}", v.name);
        let _ = libvirt.delete_volume("default", &v.name);
    }
}

/// VMs, volumes and directories left by an earlier run that was killed
/// (the `bench-guest-` names are this bench's alone).
pub fn sweep_stale(cfg: &Config, libvirt: &Libvirt) {
    if let Ok(doms) = libvirt.list_domains() {
        for d in doms.iter().filter(|d| d.name.starts_with(PREFIX)) {
            eprintln!("guest: removing '{}' left by an earlier run", d.name);
            let by_boxvirt = d.name.starts_with(&format!("{PREFIX}bx-"));
            remove_vm(cfg, libvirt, &d.name, by_boxvirt);
        }
    }
    remove_leftover_volumes(libvirt);
    let Ok(entries) = std::fs::read_dir("/var/lib/libvirt") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(PREFIX) else {
            continue;
        };
        // Only a directory whose run is gone.
        if pid.parse::<u32>().is_ok() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!(
                "guest: removing {} left by an earlier run",
                e.path().display()
            );
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
