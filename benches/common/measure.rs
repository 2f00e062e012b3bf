//! Timing one child process: wall time (Instant around spawn..reap), the
//! child's own CPU (user+sys from wait4's rusage, which includes every
//! descendant it reaped: a shell pipeline's xmlstarlet and virsh, or
//! virt-install's python), and the CPU libvirtd's threads spent meanwhile.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One timed run.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub wall: Duration,
    /// user+sys of the child and its reaped descendants.
    pub cpu: Duration,
    /// CPU of libvirtd's own threads during the run (not QEMU's), when known.
    pub daemon_cpu: Option<Duration>,
}

/// The libvirtd serving a local socket, found by the socket's peer credentials.
pub struct Daemon {
    pid: i32,
}

impl Daemon {
    /// The pid at the other end of `socket`, if it is a local unix socket.
    pub fn at_socket(socket: &Path) -> Option<Daemon> {
        use std::os::unix::io::AsRawFd;
        let stream = std::os::unix::net::UnixStream::connect(socket).ok()?;
        let mut cred = libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: SO_PEERCRED fills a ucred of `len` bytes on an open socket.
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                &mut cred as *mut libc::ucred as *mut libc::c_void,
                &mut len,
            )
        };
        if rc != 0 || cred.pid <= 0 {
            return None;
        }
        // The listener's pid (as of listen()); make sure it is still a libvirt daemon.
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", cred.pid)).ok()?;
        matches!(comm.trim(), "libvirtd" | "virtqemud").then_some(Daemon { pid: cred.pid })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Nanoseconds on CPU of all of libvirtd's threads (schedstat, ns
    /// resolution; /proc/PID/stat ticks are 10 ms, too coarse here).
    fn cpu_ns(&self) -> Option<u64> {
        let mut total = 0u64;
        for task in std::fs::read_dir(format!("/proc/{}/task", self.pid)).ok()? {
            let text =
                std::fs::read_to_string(task.ok()?.path().join("schedstat")).unwrap_or_default();
            total += text
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
        Some(total)
    }
}

/// Where a run's output goes: stdout to /dev/null or a file, stderr to a file
/// (shown when the run fails).
pub struct Outputs {
    pub stdout: Option<PathBuf>,
    pub stderr: PathBuf,
}

/// Runs `cmd` to completion and measures it. Err carries the exit status and
/// the child's stderr.
pub fn run(cmd: &mut Command, out: &Outputs, daemon: Option<&Daemon>) -> Result<Sample, String> {
    run_checked(cmd, out, daemon, true)
}

/// As [`run`], for a command whose exit status does not matter (doctor
/// exits 1 when one of its checks fails).
pub fn run_any(
    cmd: &mut Command,
    out: &Outputs,
    daemon: Option<&Daemon>,
) -> Result<Sample, String> {
    run_checked(cmd, out, daemon, false)
}

fn run_checked(
    cmd: &mut Command,
    out: &Outputs,
    daemon: Option<&Daemon>,
    check: bool,
) -> Result<Sample, String> {
    let stdout = match &out.stdout {
        Some(p) => Stdio::from(File::create(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => Stdio::null(),
    };
    let stderr = File::create(&out.stderr).map_err(|e| format!("{}: {e}", out.stderr.display()))?;
    cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);

    let daemon_before = daemon.and_then(Daemon::cpu_ns);
    let started = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    let (status, usage) = wait4(child.id() as libc::pid_t)?;
    let wall = started.elapsed();
    let daemon_after = daemon.and_then(Daemon::cpu_ns);
    // `child` was reaped by wait4; dropping the handle does not wait again.
    drop(child);

    if !libc::WIFEXITED(status) || (check && libc::WEXITSTATUS(status) != 0) {
        let err = std::fs::read_to_string(&out.stderr).unwrap_or_default();
        return Err(format!(
            "{:?} failed (wait status {status:#x}):\n{err}",
            cmd.get_program()
        ));
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(Sample {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        daemon_cpu: match (daemon_before, daemon_after) {
            (Some(a), Some(b)) => Some(Duration::from_nanos(b.saturating_sub(a))),
            _ => None,
        },
    })
}

/// Reaps `pid` and returns its wait status and resource usage.
fn wait4(pid: libc::pid_t) -> Result<(i32, libc::rusage), String> {
    let mut status = 0;
    // SAFETY: rusage is plain old data; wait4 fills it for the reaped child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to locals; pid is our own unreaped child.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == pid {
            return Ok((status, usage));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("wait4({pid}): {err}"));
        }
    }
}

/// Median of the values (mean of the middle two for an even count).
pub fn median(values: &[Duration]) -> Duration {
    let mut v = values.to_vec();
    v.sort();
    match v.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2,
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
