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
        EnvCommand::SshConfig { name } => ssh_config(ctx, &name),
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
    let found = destroy::find(&desired.name, &conns)?;
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

fn ssh_config(ctx: &Ctx, name: &str) -> Result<Exit> {
    crate::names::validate("environment", name)?;
    let conn = ctx.libvirt()?;
    let members = listing::members(&observe::domains(&conn)?, name);
    if members.is_empty() {
        return Err(Failure::not_found(format!(
            "no environment '{name}' at {}; see 'boxvirt env list'",
            conn.uri()
        )));
    }
    let mut printed = 0;
    for m in &members {
        match crate::commands::vm::entry(ctx, &conn, &m.name) {
            Ok(text) => {
                crate::out!("{text}");
                printed += 1;
            }
            Err(e) => ctx
                .out
                .warn(format!("skipping vm '{}': {}", m.name, e.message)),
        }
    }
    if printed == 0 {
        return Err(Failure::not_found(format!(
            "no VM of environment '{name}' has a known address and pinned host key yet; try 'boxvirt env apply --wait'"
        )));
    }
    Ok(Exit::Ok)
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
