//! `boxvirt env ...`: environments from one file. `plan` only reads: it
//! checks the file, connects to every host, and prints what apply would do.
//! `apply` carries the plan out, `destroy` removes what the environment
//! made. `list`, `show` and `ssh-config` read the VMs' metadata on the
//! current connection.

use crate::cli::{EnvApplyArgs, EnvCommand, EnvFileArg, EnvPlanArgs};
use crate::context::Ctx;
use crate::env::outcome::{self, Outcome, Report};
use crate::env::{self, apply, destroy, hosts, listing, observe, plan, refuse, render};
use crate::error::{Exit, Failure, Result};

pub fn run(ctx: &Ctx, command: EnvCommand) -> Result<Exit> {
    match command {
        EnvCommand::Plan(a) => plan_cmd(ctx, &a),
        EnvCommand::List => list(ctx),
        EnvCommand::Show { name } => show(ctx, &name),
        EnvCommand::Apply(a) => apply_cmd(ctx, &a),
        EnvCommand::Destroy { file } => destroy_cmd(ctx, &file),
        EnvCommand::SshConfig { name, file } => ssh_config(ctx, &name, file.as_deref()),
    }
}

fn apply_cmd(ctx: &Ctx, args: &EnvApplyArgs) -> Result<Exit> {
    let desired = env::load(&args.file.file, &ctx.catalog)?;
    let targets = hosts::targets(&desired, &ctx.settings);
    let states = observe::observe_all(&targets);
    let plan = plan::plan(&desired, &states, plan::Options { adopt: args.adopt })?;
    refuse::refusals(&plan, args.replace)?;
    let opts = apply::Options {
        parallel: args.parallel as usize,
        start: args.start,
        wait: apply::wait_options(args.wait, args.timeout),
        replace: args.replace,
        no_seed: args.no_seed,
        inject: ctx.settings.inject_failure.clone(),
    };
    let converged = plan.is_converged();
    let outcomes = apply::apply(ctx, &desired, &targets, &plan, &opts)?;
    if converged {
        ctx.out.note(render::summary_line(&plan));
    }
    report(ctx, "env apply", &desired.name, !converged, &outcomes)
}

/// The summary table (or JSON), then exit 1 naming each failure.
fn report(ctx: &Ctx, verb: &str, env: &str, changed: bool, outcomes: &[Outcome]) -> Result<Exit> {
    let failed = outcomes.iter().filter(|o| o.failed()).count();
    if ctx.out.is_json() {
        ctx.out.json(&Report {
            env,
            changed,
            failed,
            objects: outcomes,
        })?;
    } else {
        ctx.out.list("objects", &outcome::rows(outcomes), &())?;
    }
    match outcome::failure(verb, outcomes) {
        Some(f) => Err(f),
        None => Ok(Exit::Ok),
    }
}

fn destroy_cmd(ctx: &Ctx, file: &EnvFileArg) -> Result<Exit> {
    let desired = env::load(&file.file, &ctx.catalog)?;
    let targets = hosts::targets(&desired, &ctx.settings);
    let conns = targets
        .iter()
        .map(observe::connect)
        .collect::<Result<Vec<_>>>()?;
    let names: Vec<String> = desired.vms.iter().map(|v| v.name.clone()).collect();
    let found = destroy::find(&desired.name, &names, &conns)?;
    if found.is_empty() {
        ctx.out.note(format!(
            "environment '{}' has nothing on its hosts; nothing to do",
            desired.name
        ));
        return report(ctx, "env destroy", &desired.name, false, &[]);
    }
    crate::confirm::confirm(
        ctx.settings.yes,
        &format!(
            "destroy environment '{}': {}",
            desired.name,
            found.describe(&targets)
        ),
    )?;
    let outcomes = destroy::destroy(ctx, &targets, &conns, &found, DESTROY_PARALLEL);
    report(ctx, "env destroy", &desired.name, true, &outcomes)
}

/// Deletions are short libvirt calls; this many at a time.
const DESTROY_PARALLEL: usize = 8;

fn ssh_config(ctx: &Ctx, name: &str, file: Option<&std::path::Path>) -> Result<Exit> {
    crate::names::validate("environment", name)?;
    let mut printed = 0;
    let mut members = 0;
    for (conn, settings) in ssh_hosts(ctx, file)? {
        for m in listing::members(&observe::domains(&conn)?, name) {
            members += 1;
            match crate::commands::vm::entry_as(&settings, &conn, &m.name) {
                Ok(text) => {
                    crate::out!("{text}");
                    printed += 1;
                }
                Err(e) => ctx
                    .out
                    .warn(format!("skipping vm '{}': {}", m.name, e.message)),
            }
        }
    }
    if members == 0 {
        let at = match file {
            Some(f) => format!("on the hosts of {}", f.display()),
            None => format!("at {}", ctx.settings.libvirt_uri()),
        };
        return Err(Failure::not_found(format!(
            "no environment '{name}' {at}; see 'boxvirt env list'"
        )));
    }
    if printed == 0 {
        return Err(Failure::not_found(format!(
            "no VM of environment '{name}' has a known address and pinned host key yet; try 'boxvirt env apply --wait'"
        )));
    }
    Ok(Exit::Ok)
}

/// The connections `env ssh-config` reads, each with the settings of its
/// host (key, known_hosts, jump host): every host of the file, or the
/// current connection.
fn ssh_hosts(
    ctx: &Ctx,
    file: Option<&std::path::Path>,
) -> Result<Vec<(crate::libvirt::Libvirt, crate::settings::Settings)>> {
    let Some(file) = file else {
        return Ok(vec![(ctx.libvirt()?, ctx.settings.clone())]);
    };
    let desired = env::load(file, &ctx.catalog)?;
    hosts::targets(&desired, &ctx.settings)
        .iter()
        .map(|t| {
            let settings = t.instance.clone().unwrap_or_else(|| ctx.settings.clone());
            Ok((observe::connect(t)?, settings))
        })
        .collect()
}

fn plan_cmd(ctx: &Ctx, args: &EnvPlanArgs) -> Result<Exit> {
    let desired = env::load(&args.file.file, &ctx.catalog)?;
    let targets = hosts::targets(&desired, &ctx.settings);
    for t in &targets {
        ctx.out
            .detail(format!("host '{}': connecting to {}", t.name, t.uri));
    }
    let states = observe::observe_all(&targets);
    let plan = plan::plan(&desired, &states, plan::Options { adopt: args.adopt })?;
    if ctx.out.is_json() {
        ctx.out.json(&render::PlanJson {
            plan: &plan,
            summary: render::summary(&plan),
        })?;
    } else {
        ctx.out.list("actions", &render::rows(&plan), &())?;
        crate::outln!("{}", render::summary_line(&plan));
    }
    Ok(Exit::Ok)
}

fn list(ctx: &Ctx) -> Result<Exit> {
    let conn = ctx.libvirt()?;
    let envs = listing::summaries(&observe::domains(&conn)?);
    ctx.out
        .list("environments", &listing::summary_rows(&envs), &envs)?;
    Ok(Exit::Ok)
}

fn show(ctx: &Ctx, name: &str) -> Result<Exit> {
    crate::names::validate("environment", name)?;
    let conn = ctx.libvirt()?;
    let members = listing::members(&observe::domains(&conn)?, name);
    if members.is_empty() {
        return Err(Failure::not_found(format!(
            "no environment '{name}' at {}; see 'boxvirt env list'",
            conn.uri()
        )));
    }
    ctx.out.rows(&listing::member_rows(&members), &members)?;
    Ok(Exit::Ok)
}
