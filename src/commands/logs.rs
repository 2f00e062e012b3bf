//! `boxvirt logs [-f] [--tail N]`: the container's log (entrypoint and
//! supervisord).

use crate::cli::LogsArgs;
use crate::context::Ctx;
use crate::error::{Exit, Failure, Result};
use crate::nested::Engine;

pub fn run(ctx: &Ctx, a: &LogsArgs) -> Result<Exit> {
    let engine = Engine::connect()?;
    let name = ctx.settings.container_name();
    if engine.container(&name)?.is_none() {
        return Err(Failure::not_found(format!(
            "instance '{}' has no container {name}; run 'boxvirt up'",
            ctx.settings.instance
        )));
    }
    engine.print_logs(&name, a.follow, a.tail)?;
    Ok(Exit::Ok)
}
