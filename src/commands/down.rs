//! `boxvirt down`: stop the instance's container, as the original's
//! `make down` did. The container is kept (stopped): the next `up` starts it
//! again when its configuration is unchanged, which costs what `docker start`
//! does; `clean containers` removes it. Data is always kept.

use crate::context::Ctx;
use crate::error::{Exit, Failure, Result};
use crate::nested::{lock, Engine, Stopped};

pub fn run(ctx: &Ctx) -> Result<Exit> {
    let engine = Engine::connect()?;
    // An `up` in progress finishes first; then this stops what it started.
    let _lock = if ctx.settings.data_dir.is_dir() {
        Some(lock::acquire(&ctx.settings, &ctx.out)?)
    } else {
        None
    };
    let name = ctx.settings.container_name();
    let instance = &ctx.settings.instance;
    match engine.stop(&name)? {
        Stopped::NoContainer => Err(Failure::not_found(format!(
            "instance '{instance}' is not running (no container {name})"
        ))),
        Stopped::Already => {
            ctx.out.note(format!(
                "instance '{instance}' is already down ({name} is stopped)"
            ));
            Ok(Exit::Ok)
        }
        Stopped::Now => {
            ctx.out.note(format!(
                "instance '{instance}' is down (container {name} stopped; data kept in {}; 'boxvirt up' starts it again)",
                ctx.settings.data_dir.display()
            ));
            Ok(Exit::Ok)
        }
    }
}
