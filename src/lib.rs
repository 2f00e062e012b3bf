//! boxvirt: disposable libvirt/KVM infrastructure on a developer's machine.
//!
//! `libvirt/` is the only place that talks to libvirt, `nested/` the only
//! place that talks to Docker; `commands/` orchestrates them.

pub mod atomic_file;
pub mod cgroup;
pub mod cli;
pub mod cloudinit;
pub mod commands;
pub mod confirm;
pub mod context;
pub mod doctor;
pub mod env;
pub mod error;
pub mod hostcheck;
pub mod image;
pub mod interrupt;
pub mod libvirt;
pub mod names;
pub mod nested;
pub mod output;
pub mod progress;
pub mod quote;
pub mod settings;
pub mod sshjump;
pub mod template;
pub mod uri;
pub mod vm;
pub mod xml;

use clap::Parser;

use crate::error::Exit;

/// Parse, resolve settings, run, and map any error to its exit code.
pub fn main_entry() -> u8 {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; usage errors exit 2.
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Usage.code()
            } else {
                Exit::Ok.code()
            };
        }
    };
    let result = settings::Sources::from_process()
        .and_then(|src| settings::Settings::resolve(&cli.global, &src))
        .map_err(anyhow::Error::new)
        .and_then(|s| commands::dispatch(&context::Ctx::new(s), cli.command));
    match result {
        Ok(exit) => exit.code(),
        Err(err) => {
            eprintln!("error: {}", error::one_line(&err));
            error::exit_of(&err).code()
        }
    }
}
