//! Everything a run makes is tracked and removed: after each contender's
//! turn, and by the guard's drop whether the run finished, failed or was
//! interrupted. Removal goes through boxvirt (`env destroy`, `vm delete`),
//! which also takes the seeds and addresses boxvirt made.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::PathBuf;

use virt::connect::Connect;

use crate::{Config, PREFIX};

pub use crate::common::stop::{check_stop, install_signal_handlers};

pub struct Made<'a> {
    cfg: &'a Config,
    names: RefCell<BTreeSet<String>>,
    envs: RefCell<BTreeSet<PathBuf>>,
}

impl<'a> Made<'a> {
    pub fn new(cfg: &'a Config) -> Self {
        Made {
            cfg,
            names: RefCell::new(BTreeSet::new()),
            envs: RefCell::new(BTreeSet::new()),
        }
    }

    /// Records a VM name before anything makes it.
    pub fn track(&self, name: &str) {
        assert!(name.starts_with(PREFIX));
        self.names.borrow_mut().insert(name.to_string());
    }

    /// Records an env file before it is applied.
    pub fn track_env(&self, file: &std::path::Path) {
        self.envs.borrow_mut().insert(file.to_path_buf());
    }

    /// Removes every tracked environment and VM that still exists.
    pub fn remove_all(&self) {
        for file in std::mem::take(&mut *self.envs.borrow_mut()) {
            let mut cmd = self.cfg.boxvirt_cmd();
            cmd.args(["env", "destroy", "-y", "-f"]).arg(&file);
            quiet(&mut cmd);
        }
        let conn = Connect::open(Some(&self.cfg.uri)).ok();
        for name in std::mem::take(&mut *self.names.borrow_mut()) {
            let exists = conn
                .as_ref()
                .is_some_and(|c| c.lookup_domain_by_name(&name).is_ok());
            if exists {
                delete_vm(self.cfg, &name);
            }
            let _ = std::fs::remove_file(crate::common::tiny::serial_log(&name));
        }
    }
}

impl Drop for Made<'_> {
    fn drop(&mut self) {
        self.remove_all();
        let _ = std::fs::remove_dir_all(&self.cfg.work);
    }
}

fn quiet(cmd: &mut std::process::Command) {
    let _ = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// `boxvirt vm delete NAME --yes` (a domain boxvirt did not make goes too;
/// boxvirt's own also lose their seed and address).
fn delete_vm(cfg: &Config, name: &str) {
    let mut cmd = cfg.boxvirt_cmd();
    cmd.args(["vm", "delete", name, "--yes"]);
    quiet(&mut cmd);
}

/// Domains left by an earlier run that was killed (`benv-` names are this
/// bench's).
pub fn sweep_stale(conn: &Connect, cfg: &Config) {
    let Ok(doms) = conn.list_all_domains(0) else {
        return;
    };
    for dom in doms {
        if let Ok(name) = dom.name() {
            if name.starts_with(PREFIX) {
                eprintln!("env: removing '{name}' left by an earlier run");
                delete_vm(cfg, &name);
            }
        }
    }
}
