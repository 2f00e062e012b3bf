//! How results reach the user: tables or JSON on stdout for data, one-line
//! notes and warnings on stderr (so `-o json | jq` stays clean). Tables fit
//! the terminal: long cells wrap; JSON always has the full text.

use std::io::{IsTerminal, Write};

use serde::Serialize;
use tabled::settings::peaker::PriorityMax;
use tabled::settings::{Style, Width};
use tabled::{Table, Tabled};

use crate::cli::OutputFormat;
use crate::error::{Failure, Result};

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub format: OutputFormat,
    pub quiet: bool,
    pub verbose: u8,
    /// `$COLUMNS` (from Settings): the table width off a terminal.
    pub columns: Option<usize>,
}

/// Table width when stdout is not a terminal and $COLUMNS is not set: no
/// wrapping, so `boxvirt image list | grep NAME` finds whole names.
const UNLIMITED_WIDTH: usize = usize::MAX;
/// Narrower than this, wrapped tables stop being readable.
const MIN_WIDTH: usize = 40;

impl Output {
    /// Rows as a table fitted to the terminal, or the given JSON value.
    pub fn rows<R: Tabled, J: Serialize + ?Sized>(&self, rows: &[R], json: &J) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.json(json),
            OutputFormat::Table => {
                crate::outln!(
                    "{}",
                    render(rows, width_from(terminal_columns(), self.columns))
                );
                Ok(())
            }
        }
    }

    /// A listing: like [`Output::rows`], but an empty one is the line
    /// `no WHAT` (JSON: `[]` from the caller's empty list), not a header
    /// without rows.
    pub fn list<R: Tabled, J: Serialize + ?Sized>(
        &self,
        what: &str,
        rows: &[R],
        json: &J,
    ) -> Result<()> {
        if rows.is_empty() && !self.is_json() {
            crate::outln!("no {what}");
            return Ok(());
        }
        self.rows(rows, json)
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

/// A table no wider than `width`: the widest columns (details, fixes,
/// paths) wrap first, at word boundaries where they can.
pub fn render<R: Tabled>(rows: &[R], width: usize) -> String {
    let mut table = Table::new(rows);
    if rows.is_empty() {
        // A header alone: without the line under it, tabled closes the box.
        table.with(Style::sharp().remove_horizontals());
    } else {
        table.with(Style::sharp());
    }
    table.with(
        Width::wrap(width)
            .priority(PriorityMax::right())
            .keep_words(true),
    );
    table.to_string()
}

/// The width tables must fit: the terminal's when stdout is one, else
/// $COLUMNS, else unlimited (piped output is never wrapped).
fn width_from(terminal: Option<usize>, columns: Option<usize>) -> usize {
    terminal
        .or(columns)
        .filter(|w| *w > 0)
        .unwrap_or(UNLIMITED_WIDTH)
        .max(MIN_WIDTH)
}

fn terminal_columns() -> Option<usize> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ only writes one winsize into `size`, which we own.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    (rc == 0 && size.ws_col > 0).then_some(usize::from(size.ws_col))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Tabled)]
    struct Check {
        #[tabled(rename = "CHECK")]
        id: &'static str,
        #[tabled(rename = "STATUS")]
        status: &'static str,
        #[tabled(rename = "DETAIL")]
        detail: String,
        #[tabled(rename = "FIX")]
        fix: String,
    }

    fn widths(table: &str) -> Vec<usize> {
        table.lines().map(|l| l.chars().count()).collect()
    }

    /// Column `i`'s text over all lines, whitespace dropped (so wrapped
    /// cells read back whole).
    fn column(table: &str, i: usize) -> String {
        table
            .lines()
            .filter(|l| l.starts_with('│'))
            .filter_map(|l| l.split('│').nth(i + 1))
            .flat_map(|cell| cell.chars().filter(|c| !c.is_whitespace()))
            .collect()
    }

    fn squeeze(text: &str) -> String {
        text.chars().filter(|c| !c.is_whitespace()).collect()
    }

    #[test]
    fn a_wide_table_wraps_its_long_columns_to_the_width() {
        let detail = "libvirt 11.3.0 (library 11.3.0), hypervisor QEMU 10.0.2 at qemu+unix:///system?socket=/home/someone/projects/data/libvirt-run/libvirt-sock answers in 12 ms".to_string();
        let fix = "enable VT-x or AMD-V in the firmware, or nested virtualization on the host (kvm_intel nested=1), then 'boxvirt restart'".to_string();
        let rows = [
            Check {
                id: "libvirt",
                status: "pass",
                detail: detail.clone(),
                fix: String::new(),
            },
            Check {
                id: "cpu-virtualization",
                status: "warn",
                detail: "none".into(),
                fix: fix.clone(),
            },
        ];
        let table = render(&rows, 100);
        assert!(widths(&table).iter().all(|w| *w <= 100), "{table}");
        // Nothing is lost, and the short columns are not wrapped.
        assert_eq!(column(&table, 2), format!("DETAIL{}none", squeeze(&detail)));
        assert_eq!(column(&table, 3), format!("FIX{}", squeeze(&fix)));
        assert!(table.contains("│ cpu-virtualization │ warn   │"), "{table}");
        // The unwrapped table is wider than that.
        assert!(widths(&render(&rows, 1000)).iter().any(|w| *w > 200));
    }

    #[test]
    fn a_narrow_table_is_left_alone() {
        let rows = [Check {
            id: "kvm",
            status: "pass",
            detail: "ok".into(),
            fix: String::new(),
        }];
        assert_eq!(render(&rows, 100), render(&rows, 1000));
    }

    #[test]
    fn a_table_without_rows_is_a_closed_box() {
        let table = render::<Check>(&[], 100);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with('┌') && lines[1].starts_with("│ CHECK"));
        assert!(
            lines[2].starts_with('└') && lines[2].ends_with('┘'),
            "{table}"
        );
    }

    #[test]
    fn width_is_the_terminals_else_columns_else_unlimited() {
        assert_eq!(width_from(Some(132), Some(80)), 132);
        assert_eq!(width_from(None, Some(80)), 80);
        assert_eq!(width_from(None, Some(0)), UNLIMITED_WIDTH);
        assert_eq!(width_from(None, None), UNLIMITED_WIDTH);
        assert_eq!(width_from(Some(12), None), MIN_WIDTH);
    }
}
