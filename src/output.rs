//! How results reach the user: tables or JSON on stdout for data, one-line
//! notes and warnings on stderr (so `-o json | jq` stays clean).

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
                println!("{table}");
                Ok(())
            }
        }
    }

    pub fn json<J: Serialize + ?Sized>(&self, value: &J) -> Result<()> {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| Failure::failed(format!("cannot encode JSON output: {e}")))?;
        println!("{text}");
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
