//! `env apply`: walks a plan. Everything that can fail without touching a
//! host comes first (refusals, files to read); then the missing networks
//! on every host; then the VMs, N at a time, each through `vm create`'s
//! own steps and rollback, each on its worker's own connection. One VM's
//! failure is its row in the summary, not the end of the others.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::expand::VmSpec;
use super::hosts::Target;
use super::mark::EnvMark;
use super::outcome::Outcome;
use super::plan::{Action, Object, Plan, Verb};
use super::pool::{self, Conns};
use super::progress::{step_done, Board};
use super::replace::Replace;
use super::{netdef, Desired};
use crate::context::Ctx;
use crate::error::{Failure, Result};
use crate::libvirt::Libvirt;
use crate::settings::Settings;
use crate::vm::create::{self, InstanceKey, OnStep, Request};
use crate::vm::metadata::VmMetadata;
use crate::vm::ready;
use crate::vm::start_gate::StartGate;

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub parallel: usize,
    pub start: bool,
    /// `--wait`: start and wait for readiness with these options.
    pub wait: Option<ready::Options>,
    pub replace: bool,
    pub no_seed: bool,
    /// Test hook `BOXVIRT_INJECT_FAILURE=<step>[@<vm>]`: fail after the
    /// step, in every VM or only in the one named.
    pub inject: Option<String>,
}

/// What one worker does for one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Work {
    Create,
    /// Delete the VM, then create it (`--replace` of a changed VM).
    Replace,
    /// Delete it (`--replace` of a VM the file no longer has here).
    Delete,
}

struct Job {
    work: Work,
    name: String,
    host: usize,
    /// The create request (without its progress callback).
    request: Option<Request>,
}

/// Applies `plan` (once [`super::refuse::refusals`] let it through); the outcome of
/// every VM and of the networks this run made.
pub fn apply(
    ctx: &Ctx,
    desired: &Desired,
    targets: &[Target],
    plan: &Plan,
    opts: &Options,
) -> Result<Vec<Outcome>> {
    let mut jobs = jobs(ctx, desired, targets, plan, opts)?;
    let conns = targets
        .iter()
        .map(super::observe::connect)
        .collect::<Result<Vec<Libvirt>>>()?;
    let mut outcomes = networks(ctx, desired, targets, &conns, plan)?;
    ensure_keys(&jobs)?;
    outcomes.extend(adopt_and_keep(desired, targets, &conns, plan)?);
    // Ctrl-C from here on: creates in flight roll back, queued ones do not
    // begin, finished ones stay; the summary still prints.
    let _signals = crate::interrupt::Deferred::new();
    let names: Vec<String> = jobs.iter().map(|j| j.name.clone()).collect();
    let board = Arc::new(Board::new(&ctx.out, &names));
    // One per host: its creates' preparations and starts take turns.
    let gates: Vec<Arc<StartGate>> = targets.iter().map(|_| Arc::default()).collect();
    for job in &mut jobs {
        if let Some(req) = &mut job.request {
            req.gate = Some(Arc::clone(&gates[job.host]));
        }
    }
    let results = pool::run(
        &jobs,
        opts.parallel,
        || Conns::new(targets, &conns),
        |c, job| run_job(ctx, targets, c, job, opts, &board),
    );
    for (job, r) in jobs.iter().zip(results) {
        outcomes.push(r.unwrap_or_else(|| Outcome {
            kind: "vm",
            name: job.name.clone(),
            host: targets[job.host].name.clone(),
            action: verb_of(&job.work),
            state: "unknown".into(),
            ip: None,
            seconds: 0.0,
            error: Some("the worker stopped unexpectedly".into()),
        }));
    }
    Ok(outcomes)
}

/// The instance keys the creates need, made now when missing: workers
/// that each made a missing key at the same time would overwrite each
/// other's, and a guest would get a key that is no longer on disk.
fn ensure_keys(jobs: &[Job]) -> Result<()> {
    let mut done: Vec<&std::path::Path> = Vec::new();
    for key in jobs
        .iter()
        .filter_map(|j| j.request.as_ref()?.instance_key.as_ref())
    {
        if !done.contains(&key.path.as_path()) {
            crate::nested::ssh_keys::ensure_client_key(&key.path, &key.comment, key.uid, key.gid)?;
            done.push(&key.path);
        }
    }
    Ok(())
}

fn host_index(targets: &[Target], name: &str) -> Result<usize> {
    targets
        .iter()
        .position(|t| t.name == name)
        .ok_or_else(|| Failure::failed(format!("host '{name}' is in the plan but not in the file")))
}

/// The settings of the host (a nested instance's own), for keys and ssh.
fn settings_of<'a>(ctx: &'a Ctx, t: &'a Target) -> &'a Settings {
    t.instance.as_ref().unwrap_or(&ctx.settings)
}

/// One job per VM to create, replace or delete; the files they need are
/// read now, so a bad one fails before anything is made.
fn jobs(
    ctx: &Ctx,
    desired: &Desired,
    targets: &[Target],
    plan: &Plan,
    opts: &Options,
) -> Result<Vec<Job>> {
    let mut out = Vec::new();
    for h in &plan.hosts {
        let host = host_index(targets, &h.host)?;
        for a in h.actions.iter().filter(|a| a.object == Object::Vm) {
            let work = match a.action {
                Verb::Create => Work::Create,
                Verb::Change => Work::Replace,
                Verb::Delete => Work::Delete,
                Verb::Keep | Verb::Adopt => continue,
            };
            let request = match (&work, desired.vms.iter().find(|v| v.name == a.name)) {
                (Work::Delete, _) | (_, None) => None,
                (_, Some(spec)) => {
                    let settings = settings_of(ctx, &targets[host]);
                    Some(request(desired, spec, settings, opts)?)
                }
            };
            out.push(Job {
                work,
                name: a.name.clone(),
                host,
                request,
            });
        }
    }
    // Deletions first: a VM that moves frees its memory before it is made.
    out.sort_by_key(|j| j.work != Work::Delete);
    Ok(out)
}

fn request(
    desired: &Desired,
    spec: &VmSpec,
    settings: &Settings,
    opts: &Options,
) -> Result<Request> {
    let mut keys = Vec::new();
    if !opts.no_seed {
        for file in &spec.ssh_keys {
            keys.extend(crate::cloudinit::read_authorized_keys_file(file)?);
        }
    }
    let user_data = spec
        .user_data
        .as_deref()
        .map(crate::cloudinit::read_user_data_file)
        .transpose()?;
    Ok(Request {
        template: spec.template.clone(),
        name: Some(spec.name.clone()),
        memory_mib: Some(spec.memory_mib),
        vcpus: spec.vcpus,
        disk_gib: spec.disk_size_gib,
        networks: spec.networks.clone(),
        image: spec.image.clone(),
        start: opts.start || opts.wait.is_some(),
        no_seed: opts.no_seed,
        instance_key: (!opts.no_seed).then(|| InstanceKey {
            path: settings.ssh_key_path(),
            comment: format!("boxvirt@{}", settings.instance),
            uid: settings.host_uid,
            gid: settings.host_gid,
        }),
        authorized_keys: keys,
        user_data,
        fail_after: injected(opts.inject.as_deref(), &spec.name),
        env_mark: Some(EnvMark {
            env: desired.name.clone(),
            digest: desired.digest.clone(),
            config: spec.config(),
        }),
        process_env: settings.process.clone(),
        ..Default::default()
    })
}

/// `<step>` for every VM, `<step>@<vm>` for that one only.
fn injected(hook: Option<&str>, vm: &str) -> Option<String> {
    let hook = hook?;
    match hook.split_once('@') {
        Some((step, only)) => (only == vm).then(|| step.to_string()),
        None => Some(hook.to_string()),
    }
}

/// The networks of each host's plan, made when missing (and marked as
/// this environment's). A failure undoes the networks this run made.
fn networks(
    ctx: &Ctx,
    desired: &Desired,
    targets: &[Target],
    conns: &[Libvirt],
    plan: &Plan,
) -> Result<Vec<Outcome>> {
    let mut made: Vec<Outcome> = Vec::new();
    let mut undo: Vec<(usize, String)> = Vec::new();
    for h in &plan.hosts {
        let host = host_index(targets, &h.host)?;
        for a in h.actions.iter().filter(|a| a.object == Object::Network) {
            let Some(spec) = desired.networks.get(&a.name) else {
                continue;
            };
            let started = Instant::now();
            match netdef::ensure(&conns[host], &ctx.catalog, &desired.name, &a.name, spec) {
                Ok(true) => {
                    ctx.out
                        .note(format!("host '{}': created network '{}'", h.host, a.name));
                    undo.push((host, a.name.clone()));
                    made.push(network_outcome(&a.name, &h.host, started));
                }
                Ok(false) => {}
                Err(e) => {
                    for (host, name) in undo.iter().rev() {
                        let _ = conns[*host].delete_network(name);
                    }
                    return Err(e.context(format!(
                        "host '{}': network '{}' (nothing was made)",
                        h.host, a.name
                    )));
                }
            }
        }
    }
    Ok(made)
}

fn network_outcome(name: &str, host: &str, started: Instant) -> Outcome {
    Outcome {
        kind: "network",
        name: name.to_string(),
        host: host.to_string(),
        action: "created",
        state: "active".into(),
        ip: None,
        seconds: started.elapsed().as_secs_f64(),
        error: None,
    }
}

/// Rows for the VMs that stay; adopted ones get the environment's mark.
fn adopt_and_keep(
    desired: &Desired,
    targets: &[Target],
    conns: &[Libvirt],
    plan: &Plan,
) -> Result<Vec<Outcome>> {
    let mut out = Vec::new();
    for h in &plan.hosts {
        let host = host_index(targets, &h.host)?;
        let conn = &conns[host];
        for a in h.actions.iter().filter(|a| a.object == Object::Vm) {
            let action = match a.action {
                Verb::Keep => "unchanged",
                Verb::Adopt => "adopted",
                _ => continue,
            };
            let mut meta = conn
                .domain_metadata(&a.name)?
                .map(|m| VmMetadata::parse(&m));
            if a.action == Verb::Adopt {
                meta = Some(adopt(desired, conn, a, meta)?);
            }
            let active = conn.domain_summary(&a.name)?.state.is_active();
            out.push(Outcome {
                kind: "vm",
                name: a.name.clone(),
                host: h.host.clone(),
                action,
                state: if active { "running" } else { "defined" }.into(),
                ip: meta.and_then(|m| m.reservation().map(|r| r.ip.clone())),
                seconds: 0.0,
                error: None,
            });
        }
    }
    Ok(out)
}

/// Writes the environment's mark into a VM made outside it. Its volumes
/// stay unrecorded when boxvirt did not make it (destroy keeps them).
fn adopt(
    desired: &Desired,
    conn: &Libvirt,
    a: &Action,
    meta: Option<VmMetadata>,
) -> Result<VmMetadata> {
    let spec = desired.vms.iter().find(|v| v.name == a.name);
    let mut meta = meta.unwrap_or_else(|| VmMetadata {
        template: spec.map(|s| s.template.clone()).unwrap_or_default(),
        ..Default::default()
    });
    meta.env = Some(EnvMark {
        env: desired.name.clone(),
        digest: desired.digest.clone(),
        config: spec.map(|s| s.config()).unwrap_or_default(),
    });
    conn.set_domain_metadata(&a.name, &meta.to_xml())?;
    Ok(meta)
}

fn verb_of(work: &Work) -> &'static str {
    match work {
        Work::Create => "created",
        Work::Replace => "replaced",
        Work::Delete => "deleted",
    }
}

/// One VM, start to end; never an error, always its row.
fn run_job(
    ctx: &Ctx,
    targets: &[Target],
    conns: &mut Conns,
    job: &Job,
    opts: &Options,
    board: &Arc<Board>,
) -> Outcome {
    let started = Instant::now();
    let mut row = Outcome {
        kind: "vm",
        name: job.name.clone(),
        host: targets[job.host].name.clone(),
        action: verb_of(&job.work),
        state: "failed".into(),
        ip: None,
        seconds: 0.0,
        error: None,
    };
    if crate::interrupt::check("queue").is_err() {
        row.state = "not started".into();
        row.error = Some("interrupted before it began; nothing was made".into());
        board.finish(&job.name, "not started (interrupted)");
        return row;
    }
    board.begin(&job.name, "checking");
    let settings = settings_of(ctx, &targets[job.host]);
    let result = conns
        .get(job.host)
        .and_then(|conn| work(ctx, conn, settings, job, opts, board, &mut row));
    row.seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(()) => board.finish(&job.name, &format!("{} ({})", row.state, row.action)),
        Err(e) => {
            board.finish(&job.name, &format!("failed: {}", e.message));
            row.state = match (&job.work, row.state.as_str()) {
                // A failed replace puts the old VM back (see replace.rs).
                (Work::Replace, "running") => "failed (the new vm is kept)".into(),
                (Work::Replace, _) => "failed (the old vm was kept)".into(),
                // Made, but not ready: it stays.
                (_, "running") => "running".into(),
                _ => "failed".into(),
            };
            row.error = Some(e.message);
        }
    }
    row
}

fn work(
    ctx: &Ctx,
    conn: &Libvirt,
    settings: &Settings,
    job: &Job,
    opts: &Options,
    board: &Arc<Board>,
    row: &mut Outcome,
) -> Result<()> {
    // A replaced VM that was running runs again.
    let was_running =
        job.work == Work::Replace && conn.domain_summary(&job.name)?.state.is_active();
    if job.work == Work::Delete {
        board.stage(&job.name, "deleting the old vm");
        crate::commands::vm::remove(conn, settings, &ctx.out, &job.name)?;
        row.state = "deleted".into();
    }
    let Some(req) = &job.request else {
        return Ok(());
    };
    let mut req = req.clone();
    let (b, name) = (Arc::clone(board), job.name.clone());
    req.on_step = Some(OnStep(Arc::new(move |step: &str| {
        b.stage(&name, &step_done(step))
    })));
    // Its own lines would tear the progress lines; errors come back as values.
    let quiet = crate::output::Output {
        quiet: true,
        ..ctx.out
    };
    let created = if job.work == Work::Replace {
        // The new one first, the old one deleted last (nothing lost on failure).
        let replace = Replace {
            conn,
            catalog: &ctx.catalog,
            settings,
            out: &quiet,
            name: &job.name,
            was_running,
        };
        replace.run(&req, row)?
    } else {
        create::create(conn, &ctx.catalog, &quiet, &req)?
    };
    row.ip = created.ip.clone();
    row.state = if created.started {
        "running"
    } else {
        "defined"
    }
    .into();
    if let Some(wait) = &opts.wait {
        board.stage(&job.name, "waiting until ready (address, ssh, cloud-init)");
        let ready = ready::wait(conn, settings, &job.name, wait, &quiet)
            .map_err(|e| e.context("made and started, but not ready"))?;
        row.ip = Some(ready.ip);
        row.state = "ready".into();
    }
    Ok(())
}

/// `--wait`'s options from the command line.
pub fn wait_options(wait: bool, timeout_s: u64) -> Option<ready::Options> {
    wait.then(|| ready::Options {
        timeout: Duration::from_secs(timeout_s),
        allow_cloud_init_errors: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_injected_failure_hits_every_vm_or_the_one_named() {
        assert_eq!(injected(None, "a"), None);
        assert_eq!(injected(Some("define"), "a").as_deref(), Some("define"));
        assert_eq!(injected(Some("define@b"), "a"), None);
        assert_eq!(injected(Some("define@b"), "b").as_deref(), Some("define"));
    }
}
