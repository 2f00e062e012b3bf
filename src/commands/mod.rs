//! One file per top-level command: thin orchestration over `libvirt/`,
//! `nested/` and `template/`. Each `run` returns the exit code to use on
//! success (doctor returns 1 when a check fails); errors carry their own.

pub mod doctor;
pub mod env;
pub mod image;
pub mod net;
pub mod template;
pub mod vm;

pub mod build;
pub mod clean;
pub mod down;
pub mod gc;
pub mod link_ssh;
pub mod logs;
pub mod ssh;
pub mod status;
pub mod tls;
pub mod up;
pub mod uri;
pub mod virsh;

use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::context::Ctx;
use crate::error::{Exit, Result};

pub fn dispatch(ctx: &Ctx, command: Command) -> anyhow::Result<Exit> {
    Ok(match command {
        Command::Doctor => doctor::run(ctx)?,
        Command::Net(c) => net::run(ctx, c)?,
        Command::Template(c) => template::run(ctx, c)?,
        Command::Vm(c) => vm::run(ctx, c)?,
        Command::Image(c) => image::run(ctx, c)?,
        Command::Env(c) => env::run(ctx, c)?,
        Command::Up(a) => up::run(&tls::with_up_flags(ctx, &a)?, &a)?,
        Command::Down => down::run(ctx)?,
        Command::Restart(a) => up::restart(&tls::with_up_flags(ctx, &a)?, &a)?,
        Command::Build(a) => build::run(ctx, &a, false)?,
        Command::Rebuild(a) => build::run(ctx, &a, true)?,
        Command::Logs(a) => logs::run(ctx, &a)?,
        Command::Status => status::run(ctx)?,
        Command::Ssh(a) => ssh::run(ctx, &a)?,
        Command::Virsh => virsh::run(ctx)?,
        Command::LinkSsh => link_ssh::link(ctx)?,
        Command::UnlinkSsh => link_ssh::unlink(ctx)?,
        Command::Clean(a) => clean::run(ctx, &a)?,
        Command::Gc(a) => gc::run(ctx, &a)?,
        Command::Uri => uri::run(ctx)?,
        Command::Tls(c) => tls::run(ctx, c)?,
        Command::Completions { shell } => completions(shell)?,
    })
}

fn completions(shell: clap_complete::Shell) -> Result<Exit> {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "boxvirt", &mut std::io::stdout());
    Ok(Exit::Ok)
}
