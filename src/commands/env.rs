//! `boxvirt env ...`: environments from one file. `plan` only reads: it
//! checks the file, connects to every host, and prints what apply would do.

use crate::cli::{EnvCommand, EnvPlanArgs};
use crate::context::Ctx;
use crate::env::{self, hosts, observe, plan, render};
use crate::error::{Exit, Result};

pub fn run(ctx: &Ctx, command: EnvCommand) -> Result<Exit> {
    match command {
        EnvCommand::Plan(a) => plan_cmd(ctx, &a),
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
