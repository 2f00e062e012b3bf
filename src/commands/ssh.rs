//! `boxvirt ssh [--debug] [-- CMD]`: the system ssh with the generated
//! config; ssh replaces this process, so its exit code is ours.

use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::cli::SshArgs;
use crate::context::Ctx;
use crate::error::{Exit, Failure, Result};

pub fn run(ctx: &Ctx, a: &SshArgs) -> Result<Exit> {
    let s = &ctx.settings;
    let config = s.ssh_config_path();
    if !config.exists() {
        return Err(Failure::not_found(format!(
            "no ssh config at {}; run 'boxvirt up' (instance '{}') first",
            config.display(),
            s.instance
        )));
    }
    let mut cmd = Command::new("ssh");
    if a.debug {
        cmd.arg("-vvv");
    }
    cmd.arg("-F").arg(&config).arg(s.ssh_host_alias());
    if !a.command.is_empty() {
        cmd.arg("--").args(&a.command);
    }
    ctx.out.detail(s.ssh_command());
    let err = cmd.exec();
    let hint = if err.kind() == std::io::ErrorKind::NotFound {
        " (install openssh-client)"
    } else {
        ""
    };
    Err(Failure::failed(format!("cannot run ssh: {err}{hint}")))
}
