//! `env destroy`: what the environment made, found by its marks (VMs by
//! their metadata, networks by theirs) on every host of the file, then
//! removed: the VMs in parallel through `vm delete`'s own code (volumes,
//! reservation, ssh config), then the networks it made. Networks that
//! existed before it, and everything else, stay.
//!
//! A create killed between its steps leaves a VM's volumes, seed and
//! reservation with no domain (or a domain still carrying the template's
//! metadata, so no mark). Those are the environment's when their VM's
//! name is one the file gives: names on a host are the environment's
//! (apply refuses names taken outside it, and its create clears such
//! leftovers as its own). They go the same way, through `vm delete`.

use std::sync::Arc;
use std::time::Instant;

use super::hosts::Target;
use super::outcome::Outcome;
use super::pool::{self, Conns};
use super::progress::Board;
use super::{netdef, observe};
use crate::context::Ctx;
use crate::error::Result;
use crate::libvirt::Libvirt;
use crate::vm::leftovers;

/// The environment's objects: (host index, name).
#[derive(Debug, Default)]
pub struct Found {
    pub vms: Vec<(usize, String)>,
    /// VMs of the file with leftovers but no finished domain.
    pub leftovers: Vec<(usize, String)>,
    pub networks: Vec<(usize, String)>,
}

impl Found {
    pub fn is_empty(&self) -> bool {
        self.vms.is_empty() && self.leftovers.is_empty() && self.networks.is_empty()
    }

    /// "vms a, b on host 'x'; network n on host 'x'", for the question.
    pub fn describe(&self, targets: &[Target]) -> String {
        let list = |what: &str, items: &[(usize, String)]| -> Vec<String> {
            targets
                .iter()
                .enumerate()
                .filter_map(|(h, t)| {
                    let names: Vec<&str> = items
                        .iter()
                        .filter(|(i, _)| *i == h)
                        .map(|(_, n)| n.as_str())
                        .collect();
                    (!names.is_empty())
                        .then(|| format!("{what} {} on host '{}'", names.join(", "), t.name))
                })
                .collect()
        };
        let mut parts = list("vms", &self.vms);
        parts.extend(list("leftovers (no domain) of vms", &self.leftovers));
        parts.extend(list("networks", &self.networks));
        parts.join("; ")
    }
}

/// Reads every host for the environment's VMs and networks, and for
/// leftovers of the VMs the file names (`vm_names`).
pub fn find(env: &str, vm_names: &[String], conns: &[Libvirt]) -> Result<Found> {
    let mut found = Found::default();
    for (h, conn) in conns.iter().enumerate() {
        for d in observe::domains(conn)? {
            if d.belongs_to(env) {
                found.vms.push((h, d.name));
            }
        }
        for name in leftover_vms(conn, vm_names)? {
            found.leftovers.push((h, name));
        }
        for n in conn.list_networks()? {
            let xml = match conn.network_xml(&n.name) {
                Ok(x) => x,
                Err(f) if f.exit == crate::error::Exit::NotFound => continue,
                Err(f) => return Err(f),
            };
            if netdef::owner(&xml).as_deref() == Some(env) {
                found.networks.push((h, n.name));
            }
        }
    }
    Ok(found)
}

/// The file's VMs that have, at this host, an unfinished domain (a create
/// killed after its define) or objects without a domain (killed before).
fn leftover_vms(conn: &Libvirt, vm_names: &[String]) -> Result<Vec<String>> {
    let ours = |vm: &str| vm_names.iter().any(|n| n == vm);
    let mut names = Vec::new();
    for d in conn.list_domains()? {
        if ours(&d.name) && leftovers::is_unfinished(conn, &d.name).unwrap_or(false) {
            names.push(d.name);
        }
    }
    for l in leftovers::find(conn, None)? {
        if ours(&l.vm) && !names.contains(&l.vm) {
            names.push(l.vm);
        }
    }
    Ok(names)
}

/// Removes what [`find`] found: VMs `parallel` at a time, then networks.
pub fn destroy(
    ctx: &Ctx,
    targets: &[Target],
    conns: &[Libvirt],
    found: &Found,
    parallel: usize,
) -> Vec<Outcome> {
    let vms: Vec<(usize, String)> = found.vms.iter().chain(&found.leftovers).cloned().collect();
    let names: Vec<String> = vms.iter().map(|(_, n)| n.clone()).collect();
    let board = Arc::new(Board::new(&ctx.out, &names));
    let results = pool::run(
        &vms,
        parallel,
        || Conns::new(targets, conns),
        |c, (h, name)| {
            let started = Instant::now();
            board.begin(name, "deleting");
            let settings = targets[*h].instance.as_ref().unwrap_or(&ctx.settings);
            let r = c
                .get(*h)
                .and_then(|conn| crate::commands::vm::remove(conn, settings, &ctx.out, name));
            match &r {
                Ok(line) => board.finish(name, line),
                Err(e) => board.finish(name, &format!("failed: {}", e.message)),
            }
            row(
                "vm",
                name,
                &targets[*h].name,
                started,
                r.err().map(|e| e.message),
            )
        },
    );
    let mut out: Vec<Outcome> = vms
        .iter()
        .zip(results)
        .map(|((h, name), r)| {
            r.unwrap_or_else(|| {
                let why = Some("the worker stopped unexpectedly".to_string());
                row("vm", name, &targets[*h].name, Instant::now(), why)
            })
        })
        .collect();
    for (h, name) in &found.networks {
        let started = Instant::now();
        let r = remove_network(&conns[*h], name);
        if r.is_ok() {
            ctx.out.note(format!(
                "host '{}': deleted network '{name}'",
                targets[*h].name
            ));
        }
        out.push(row(
            "network",
            name,
            &targets[*h].name,
            started,
            r.err().map(|e| e.message),
        ));
    }
    out
}

/// Deletes a network the environment made, unless VMs outside it use it now.
fn remove_network(conn: &Libvirt, name: &str) -> Result<()> {
    let users = conn.network_users(name)?;
    if !users.is_empty() {
        return Err(crate::error::Failure::conflict(format!(
            "kept: used by {}; delete those VMs, then 'boxvirt net delete {name}'",
            users.join(", ")
        )));
    }
    conn.delete_network(name)
}

fn row(
    kind: &'static str,
    name: &str,
    host: &str,
    started: Instant,
    error: Option<String>,
) -> Outcome {
    Outcome {
        kind,
        name: name.to_string(),
        host: host.to_string(),
        action: "deleted",
        state: if error.is_some() { "failed" } else { "deleted" }.into(),
        ip: None,
        seconds: started.elapsed().as_secs_f64(),
        error,
    }
}
