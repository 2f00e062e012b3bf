//! `boxvirt env ...`: environments from one file. `plan` only reads: it
//! checks the file, connects to every host, and prints what apply would do.
//! `list` and `show` read the VMs' metadata on the current connection.

use crate::cli::{EnvCommand, EnvPlanArgs};
use crate::context::Ctx;
use crate::env::{self, hosts, listing, observe, plan, render};
use crate::error::{Exit, Failure, Result};

pub fn run(ctx: &Ctx, command: EnvCommand) -> Result<Exit> {
    match command {
        EnvCommand::Plan(a) => plan_cmd(ctx, &a),
        EnvCommand::List => list(ctx),
        EnvCommand::Show { name } => show(ctx, &name),
    }
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
