//! The machine a bench ran on (cores, CPU, kernel, libvirt, QEMU,
//! virt-install, load average, the boxvirt commit measured), read once at
//! the start of a run and printed above its figures.

use std::process::Command;

use virt::connect::Connect;

use super::measure::Daemon;

pub struct Machine {
    pub date: String,
    pub cores: usize,
    pub cpu: String,
    pub kernel: String,
    pub libvirt: String,
    pub qemu: String,
    pub virt_install: String,
    pub load: String,
    pub daemon_pid: Option<i32>,
    /// The boxvirt commit measured (+ a note when src/ has local changes).
    pub commit: String,
}

fn version(v: u32) -> String {
    format!("{}.{}.{}", v / 1_000_000, (v / 1000) % 1000, v % 1000)
}

/// The trimmed stdout of a command that succeeded, else "?".
pub fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into())
}

/// The boxvirt commit measured, with a note when what goes into the
/// binary or the image has local changes.
pub fn boxvirt_commit() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let commit = command_line("git", &["-C", dir, "rev-parse", "--short", "HEAD"]);
    if commit.is_empty() || commit == "?" {
        return "unknown (not a git checkout)".into();
    }
    let dirty = command_line(
        "git",
        &[
            "-C",
            dir,
            "status",
            "--porcelain",
            "--",
            "src",
            "xml-templates",
            "docker",
            "build.rs",
            "Cargo.lock",
        ],
    );
    if dirty.is_empty() {
        commit
    } else {
        format!("{commit} + local changes")
    }
}

/// The CPU's model name from /proc/cpuinfo, "?" when unknown.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "?".into())
}

impl Machine {
    pub fn read(conn: &Connect, daemon: Option<&Daemon>) -> Machine {
        let cpu = cpu_model();
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        Machine {
            date: command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            cpu,
            kernel: read("/proc/sys/kernel/osrelease"),
            libvirt: conn
                .lib_version()
                .map(version)
                .unwrap_or_else(|_| "?".into()),
            qemu: conn
                .hyp_version()
                .map(version)
                .unwrap_or_else(|_| "?".into()),
            virt_install: command_line("virt-install", &["--version"]),
            load: read("/proc/loadavg")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
            daemon_pid: daemon.map(Daemon::pid),
            commit: boxvirt_commit(),
        }
    }

    pub fn one_line(&self) -> String {
        format!(
            "{} cores ({}), kernel {}, libvirt {}, QEMU {}, virt-install {}, load average {}",
            self.cores,
            self.cpu,
            self.kernel,
            self.libvirt,
            self.qemu,
            self.virt_install,
            self.load
        )
    }
}
