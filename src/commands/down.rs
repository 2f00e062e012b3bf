//! `boxvirt down`: stop and remove the instance's container; data is kept.

use crate::context::Ctx;
use crate::error::{Exit, Failure, Result};
use crate::nested::{lock, Engine};

pub fn run(ctx: &Ctx) -> Result<Exit> {
    let engine = Engine::connect()?;
    // An `up` in progress finishes first; then this stops what it started.
    let _lock = if ctx.settings.data_dir.is_dir() {
        Some(lock::acquire(&ctx.settings, &ctx.out)?)
    } else {
        None
    };
    let name = ctx.settings.container_name();
    if !engine.stop_and_remove_existing(&name)? {
        return Err(Failure::not_found(format!(
            "instance '{}' is not running (no container {name})",
            ctx.settings.instance
        )));
    }
    ctx.out.note(format!(
        "instance '{}' is down (container {name} removed; data kept in {})",
        ctx.settings.instance,
        ctx.settings.data_dir.display()
    ));
    Ok(Exit::Ok)
}
