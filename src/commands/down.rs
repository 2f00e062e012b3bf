//! `boxvirt down`: stop and remove the instance's container; data is kept.

use crate::context::Ctx;
use crate::error::{Exit, Failure, Result};
use crate::nested::Engine;

pub fn run(ctx: &Ctx) -> Result<Exit> {
    let engine = Engine::connect()?;
    let name = ctx.settings.container_name();
    if engine.container(&name)?.is_none() {
        return Err(Failure::not_found(format!(
            "instance '{}' is not running (no container {name})",
            ctx.settings.instance
        )));
    }
    engine.stop_and_remove(&name)?;
    ctx.out.note(format!(
        "instance '{}' is down (container {name} removed; data kept in {})",
        ctx.settings.instance,
        ctx.settings.data_dir.display()
    ));
    Ok(Exit::Ok)
}
