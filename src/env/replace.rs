//! `env apply --replace` of a changed VM, with nothing lost on failure.
//! The new VM is made first, under a temporary name and not started, by
//! `vm create`'s own steps and rollback. Only then is the old one shut
//! off and renamed aside, the new one renamed to the VM's name and
//! started (when the old one ran, or `--start`), and the old one deleted
//! last. Until then every failure puts the old VM back as it was (under
//! its name, running again if it ran) and removes the new one.

use super::outcome::Outcome;
use crate::error::{Failure, Result};
use crate::libvirt::Libvirt;
use crate::output::Output;
use crate::settings::Settings;
use crate::template::Catalog;
use crate::vm::create::{self, Created, Request};
use crate::vm::leftovers;
use crate::vm::rename::{aside_name, aside_prefix, rename};

/// The test hook's step (`BOXVIRT_INJECT_FAILURE=swap[@vm]`): fails right
/// after the new VM took the name, before the old one is deleted.
pub const SWAP_STEP: &str = "swap";

pub struct Replace<'a> {
    pub conn: &'a Libvirt,
    pub catalog: &'a Catalog,
    pub settings: &'a Settings,
    pub out: &'a Output,
    pub name: &'a str,
    pub was_running: bool,
}

impl Replace<'_> {
    /// Replaces the VM by one made from `req`; `row` follows the stages.
    pub fn run(&self, req: &Request, row: &mut Outcome) -> Result<Created> {
        self.clear_interrupted()?;
        let start = req.start || self.was_running;
        let new = aside_name(self.name, "new");
        let mut made = req.clone();
        made.name = Some(new.clone());
        made.hostname = Some(self.name.to_string());
        made.start = false;
        let mut created = create::create(self.conn, self.catalog, self.out, &made)
            .map_err(|e| noted(e, "the old vm was kept as it was"))?;
        let old = aside_name(self.name, "old");
        if let Err(e) = self.swap_in(&new, &old, start, req) {
            let undone = self.swap_back(&new, &old);
            return Err(noted(e, &undone));
        }
        row.state = if start { "running" } else { "defined" }.into();
        created.name = self.name.to_string();
        created.started = start;
        crate::commands::vm::remove(self.conn, self.settings, self.out, &old)
            .map_err(|e| {
                noted(e, &format!(
                    "replaced, but the old vm, renamed '{old}', is left; delete it with 'boxvirt vm delete {old}'"
                ))
            })?;
        crate::commands::vm::forget_ssh_config(self.settings, self.name);
        Ok(created)
    }

    /// What a replace of this VM killed while it made the new one left: an
    /// unfinished `NAME.new-*` domain and its volumes (a finished one
    /// carries the environment's mark, so the plan deletes it).
    fn clear_interrupted(&self) -> Result<()> {
        let prefix = aside_prefix(self.name, "new");
        for d in self.conn.list_domains()? {
            if d.name.starts_with(&prefix) && leftovers::is_unfinished(self.conn, &d.name)? {
                leftovers::drop_unfinished(self.conn, &d.name)?;
                leftovers::remove(self.conn, &leftovers::find(self.conn, Some(&d.name))?)?;
            }
        }
        Ok(())
    }

    /// Old aside (shut off), new in its place (started when wanted).
    fn swap_in(&self, new: &str, old: &str, start: bool, req: &Request) -> Result<()> {
        self.conn.destroy_domain(self.name)?;
        rename(self.conn, self.name, old)?;
        rename(self.conn, new, self.name)?;
        create::after_step(req, SWAP_STEP)?;
        if start {
            self.conn.start_domain(self.name)?;
        }
        Ok(())
    }

    /// Undoes as much of [`Self::swap_in`] as happened; says what it did.
    fn swap_back(&self, new: &str, old: &str) -> String {
        let conn = self.conn;
        let exists = |n: &str| conn.domain_exists(n).unwrap_or(false);
        let mut problems = Vec::new();
        if exists(old) {
            // The new VM may hold the name already: give it back.
            if !exists(new) && exists(self.name) {
                let _ = conn.destroy_domain(self.name);
                if let Err(e) = rename(conn, self.name, new) {
                    problems.push(e.message);
                }
            }
            if let Err(e) = rename(conn, old, self.name) {
                problems.push(e.message);
            }
        }
        if exists(new) {
            let quiet = Output {
                quiet: true,
                ..*self.out
            };
            if let Err(e) = crate::commands::vm::remove(conn, self.settings, &quiet, new) {
                problems.push(e.message);
            }
        }
        if self.was_running && problems.is_empty() {
            if let Err(e) = conn.start_domain(self.name) {
                problems.push(e.message);
            }
        }
        if problems.is_empty() {
            format!(
                "the old vm was kept{}",
                if self.was_running {
                    " and runs again"
                } else {
                    ""
                }
            )
        } else {
            format!(
                "putting the old vm back failed too: {}; see 'boxvirt vm list'",
                problems.join("; ")
            )
        }
    }
}

/// A failure's message followed by what became of the VMs.
fn noted(e: Failure, what: &str) -> Failure {
    Failure::new(e.exit, format!("{}; {what}", e.message))
}
