//! How results reach the user: tables or JSON on stdout for data, one-line
//! notes and warnings on stderr (so `-o json | jq` stays clean).

use std::io::Write;

use serde::Serialize;
use tabled::settings::Style;
use tabled::{Table, Tabled};

use crate::cli::OutputFormat;
use crate::error::{Failure, Result};

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub format: OutputFormat,
    pub quiet: bool,
    pub verbose: u8,
}

impl Output {
    /// Rows as a table, or the given JSON value.
    pub fn rows<R: Tabled, J: Serialize + ?Sized>(&self, rows: &[R], json: &J) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(json),
            OutputFormat::Table => {
                let mut table = Table::new(rows);
                table.with(Style::sharp());
                crate::outln!("{table}");
                Ok(())
            }
        }
    }

    pub fn json<J: Serialize + ?Sized>(&self, value: &J) -> Result<()> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| Failure::failed(format!("cannot encode JSON output: {e}")))?;
        crate::outln!("{text}");
        Ok(())
    }

    pub fn is_json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// What was done, on stderr unless `-q`.
    pub fn note(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", msg.as_ref());
        }
    }

    /// Always shown (even with -q): something the user should know.
    pub fn warn(&self, msg: impl AsRef<str>) {
        eprintln!("warning: {}", msg.as_ref());
    }

    /// Extra detail with -v.
    pub fn detail(&self, msg: impl AsRef<str>) {
        if self.verbose > 0 && !self.quiet {
            eprintln!("{}", msg.as_ref());
        }
    }
}

/// Writes to stdout; a closed pipe (`boxvirt vm list | head -1`) ends the
/// process quietly with 0. SIGPIPE stays ignored, as Rust sets it up:
/// libvirt writes to its socket from this process, and a daemon that went
/// away must surface as an error (EPIPE), not as a silent death by signal.
pub fn write_stdout(args: std::fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            let _ = std::io::stderr().flush();
            // SAFETY: _exit ends the process at once (see main.rs for why
            // not exit()); nothing of ours is left half-written but stdout.
            unsafe { libc::_exit(0) }
        }
    }
}

/// `print!` that survives a closed stdout pipe (see [`write_stdout`]).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write_stdout(format_args!($($arg)*)) };
}

/// `println!` that survives a closed stdout pipe (see [`write_stdout`]).
#[macro_export]
macro_rules! outln {
    () => { $crate::output::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}
