//! One timed process: spawn to exit, its output kept for the report.

use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// How a timed process went.
pub struct Timed {
    /// Seconds from spawn to exit.
    pub wall: f64,
    /// Unix time at spawn (for marks a script prints with its own clock).
    pub spawned_at: f64,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Timed {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// The last few lines of stderr, for a one-line failure reason.
    pub fn why(&self) -> String {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        let tail = lines[lines.len().saturating_sub(2)..].join(" / ");
        match self.code {
            Some(c) => format!("exit {c}: {tail}"),
            None => format!("killed by a signal: {tail}"),
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Runs `cmd` to its end; the timed region is spawn to exit. Output is
/// read through pipes (both small).
pub fn timed(cmd: &mut Command) -> Result<Timed, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let spawned_at = unix_now();
    let started = Instant::now();
    let out = cmd
        .output()
        .map_err(|e| format!("{}: {e}", cmd.get_program().to_string_lossy()))?;
    Ok(Timed {
        wall: started.elapsed().as_secs_f64(),
        spawned_at,
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs `cmd` untimed; its stdout, or an error naming it.
pub fn run(cmd: &mut Command) -> Result<String, String> {
    let t = timed(cmd)?;
    if t.ok() {
        Ok(t.stdout)
    } else {
        Err(format!(
            "{} {}: {}",
            cmd.get_program().to_string_lossy(),
            cmd.get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" "),
            t.why()
        ))
    }
}
