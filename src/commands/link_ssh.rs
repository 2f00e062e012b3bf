//! `boxvirt link-ssh` / `unlink-ssh`: the instance's ssh config in
//! ~/.ssh/config.d/boxman/ (include it from ~/.ssh/config to `ssh boxman-x`).

use crate::context::Ctx;
use crate::error::{Exit, Result};
use crate::nested::ssh_config;

pub fn link(ctx: &Ctx) -> Result<Exit> {
    let link = ssh_config::link(&ctx.settings)?;
    ctx.out.note(format!(
        "linked {} -> {}",
        link.display(),
        ctx.settings.ssh_config_path().display()
    ));
    ctx.out.detail("add 'Include config.d/boxman/*.conf' at the top of ~/.ssh/config to use 'ssh boxman-<instance>'");
    Ok(Exit::Ok)
}

pub fn unlink(ctx: &Ctx) -> Result<Exit> {
    let link = ssh_config::link_path(&ctx.settings)?;
    if ssh_config::unlink(&ctx.settings)? {
        ctx.out.note(format!("removed {}", link.display()));
    } else {
        ctx.out.note(format!("no link at {}", link.display()));
    }
    Ok(Exit::Ok)
}
