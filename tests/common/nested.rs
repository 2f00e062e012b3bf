//! The nested host in tests (tier 4): one instance with its own name, dir,
//! HOME and port, driven through the real binary; the docker CLI for checks
//! from outside. Used by nested_e2e.rs, nested_hardened.rs and
//! nested_paths.rs.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_boxvirt");
pub const BASE_IMAGE: &str = "debian:bookworm-slim";

/// The nested-host image this boxvirt builds (its tag carries the assets'
/// hash).
pub fn image_tag() -> String {
    boxvirt::nested::build_context::image_tag(boxvirt::cli::Base::Debian)
}

pub fn container_id(name: &str) -> String {
    docker_out(&["container", "inspect", "-f", "{{.Id}}", name])
        .trim()
        .to_string()
}

pub fn container_state(name: &str) -> String {
    docker_out(&["container", "inspect", "-f", "{{.State.Status}}", name])
        .trim()
        .to_string()
}

/// What one run of a command gave.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Out {
    /// A finished process's output, and the time since `started`.
    pub fn of(out: std::process::Output, started: Instant) -> Out {
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            took: started.elapsed(),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// One nested-host instance of the test: its own name, working dir (with
/// `./data`), HOME and SSH port. Dropping it force-removes its container,
/// so a failed assertion leaves nothing running.
pub struct Instance {
    pub name: String,
    pub port: u16,
    pub work: tempfile::TempDir,
    /// Run as this (uid, gid) instead of the test's user (through setpriv).
    pub user: Option<(u32, u32)>,
}

impl Instance {
    pub fn new(name: &str, port: u16) -> Instance {
        let work = tempfile::Builder::new()
            .prefix(&format!("boxvirt-{name}-"))
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(work.path().join("home")).unwrap();
        // A leftover from an interrupted run would make `up` a no-op.
        docker(&["rm", "-f", &format!("boxman-libvirt-{name}")]);
        Instance {
            name: name.to_string(),
            port,
            work,
            user: None,
        }
    }

    /// An instance run by another (non-root) user who owns its dirs.
    pub fn as_user(name: &str, port: u16, uid: u32, gid: u32) -> Instance {
        let mut inst = Instance::new(name, port);
        for dir in [inst.dir().to_path_buf(), inst.home()] {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        }
        inst.user = Some((uid, gid));
        inst
    }

    pub fn dir(&self) -> &Path {
        self.work.path()
    }
    pub fn data(&self) -> PathBuf {
        self.dir().join("data")
    }
    pub fn home(&self) -> PathBuf {
        self.dir().join("home")
    }
    pub fn container(&self) -> String {
        format!("boxman-libvirt-{}", self.name)
    }

    /// `boxvirt --instance NAME --ssh-port PORT ARGS` in the working dir (so
    /// the default `./data` is the instance's), with a clean environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.program(BIN);
        cmd.args([
            "--instance",
            &self.name,
            "--ssh-port",
            &self.port.to_string(),
        ])
        .args(args);
        self.prepare(&mut cmd);
        cmd
    }

    /// `program`, as the instance's user when it has one.
    pub fn program(&self, program: &str) -> Command {
        match self.user {
            None => Command::new(program),
            Some((uid, gid)) => {
                let mut cmd = Command::new("setpriv");
                cmd.args([
                    "--reuid",
                    &uid.to_string(),
                    "--regid",
                    &gid.to_string(),
                    "--init-groups",
                    program,
                ]);
                cmd
            }
        }
    }

    pub fn prepare(&self, cmd: &mut Command) {
        cmd.current_dir(self.dir())
            .env("HOME", self.home())
            // built guest images come from the suite's cache (`image build`)
            .env("BOXVIRT_CACHE_DIR", super::build_cache())
            .stdin(Stdio::null());
        for var in [
            "BOXMAN_INSTANCE_NAME",
            "BOXMAN_DATA_DIR",
            "BOXMAN_SSH_PORT",
            "LIBVIRT_DEFAULT_URI",
            "DOCKER_HOST",
        ] {
            cmd.env_remove(var);
        }
    }

    pub fn run(&self, args: &[&str]) -> Out {
        run(self.command(args))
    }

    /// Runs and asserts exit 0.
    pub fn ok(&self, args: &[&str]) -> Out {
        let out = self.run(args);
        assert_eq!(out.code, 0, "boxvirt {args:?} failed: {out:?}");
        out
    }

    /// Runs a shell command line in the working dir (HOME set): the original
    /// tool's commands, verbatim apart from instance name and port.
    pub fn sh(&self, line: &str) -> Out {
        let mut cmd = self.program("sh");
        cmd.args(["-c", line]);
        self.prepare(&mut cmd);
        let out = run(cmd);
        assert_eq!(out.code, 0, "`{line}` failed: {out:?}");
        out
    }

    /// Runs `program ARGS` in the working dir (HOME set) with extra `env`,
    /// exit code not checked.
    pub fn run_program(&self, program: &str, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut cmd = self.program(program);
        cmd.args(args);
        self.prepare(&mut cmd);
        cmd.envs(env.iter().copied());
        run(cmd)
    }

    pub fn status_json(&self) -> (i32, serde_json::Value) {
        let out = self.run(&["-o", "json", "status"]);
        (out.code, out.json())
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        docker(&["rm", "-f", &self.container()]);
    }
}

pub fn run(mut cmd: Command) -> Out {
    let started = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let out = Out::of(out, started);
    eprintln!(
        "[{:>5.1} s] {cmd:?} -> {}",
        out.took.as_secs_f64(),
        out.code
    );
    out
}

/// The docker CLI, for checks from outside boxvirt (true when it exited 0).
pub fn docker(args: &[&str]) -> bool {
    Command::new("docker")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub fn docker_out(args: &[&str]) -> String {
    Command::new("docker")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// A free TCP port on 127.0.0.1 at or after `from`.
pub fn free_port(from: u16) -> u16 {
    (from..from + 500)
        .find(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, *p)).is_ok())
        .expect("a free port")
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A non-root user in the docker group (made when missing): (uid, gid).
pub fn test_user() -> (u32, u32) {
    const USER: &str = "boxvirt-e2e";
    let exists = Command::new("id")
        .arg(USER)
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let status = if exists {
        Command::new("usermod")
            .args(["-aG", "docker", USER])
            .status()
    } else {
        Command::new("useradd")
            .args(["-M", "-s", "/usr/sbin/nologin", "-G", "docker", USER])
            .status()
    };
    assert!(
        status.map(|s| s.success()).unwrap_or(false),
        "cannot create user {USER} in group docker"
    );
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, USER]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

/// The engine and the base image must be there: this tier never skips.
pub fn require_engine_and_base_image() {
    assert!(
        docker(&["info"]),
        "no Docker engine answers on /var/run/docker.sock: run tests/harness/start-dockerd.sh first"
    );
    assert!(
        docker(&["image", "inspect", BASE_IMAGE]) || docker(&["image", "inspect", &image_tag()]),
        "neither {BASE_IMAGE} nor {} is present: run tests/harness/base-image.sh first",
        image_tag()
    );
}
