//! Shared helpers for integration tests. Every CLI test runs the real binary
//! through ONE builder, [`Boxvirt`]: arguments, environment (cleared, so no
//! LIBVIRT_DEFAULT_URI or BOXMAN_* leaks in from the shell), stdin, the
//! expected exit code and what stdout and stderr must hold, checked in one
//! place with both streams shown when something differs.
#![allow(dead_code)]

pub mod nested;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What one run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with both streams when the exit code differs.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        self.expect_code(0)
    }

    /// Errors are exactly one line starting with `error:` and never a panic.
    #[track_caller]
    pub fn one_line_error(&self) -> &str {
        // Notes and warnings may come first; the error is one line, the last.
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error"))
            .collect();
        assert_eq!(
            errors.len(),
            1,
            "want one error line, got:\n{}",
            self.stderr
        );
        assert_eq!(
            self.stderr.lines().last(),
            Some(errors[0]),
            "error must be the last line:\n{}",
            self.stderr
        );
        assert!(errors[0].starts_with("error: "), "{}", self.stderr);
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        errors[0]
    }

    /// stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// What a stream must hold.
#[derive(Debug, Clone)]
enum Want {
    Exactly(String),
    Contains(String),
    Lacks(String),
}

impl Want {
    fn holds(&self, text: &str) -> bool {
        match self {
            Want::Exactly(s) => text == s,
            Want::Contains(s) => text.contains(s.as_str()),
            Want::Lacks(s) => !text.contains(s.as_str()),
        }
    }
}

/// One run of the binary, built up and then checked by [`Boxvirt::run`]:
///
/// ```ignore
/// Boxvirt::new(dir).uri(&test_uri("node.xml")).args(["vm", "start", "ghost"])
///     .status(3).error_has("vm 'ghost' not found").run();
/// ```
///
/// The exit code must be 0 unless [`Boxvirt::status`] says otherwise (or
/// [`Boxvirt::any_status`] leaves it to the caller). Whatever the code,
/// stderr never holds a panic.
#[must_use]
#[derive(Debug, Clone)]
pub struct Boxvirt {
    cwd: PathBuf,
    prefix: Vec<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<String>,
    stdout_closed: bool,
    status: Option<i32>,
    stdout: Vec<Want>,
    stderr: Vec<Want>,
    error: Option<String>,
}

impl Boxvirt {
    /// The binary in `cwd`, with only PATH and HOME from the environment.
    pub fn new(cwd: &Path) -> Boxvirt {
        Boxvirt {
            cwd: cwd.to_path_buf(),
            prefix: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            stdout_closed: false,
            status: Some(0),
            stdout: Vec::new(),
            stderr: Vec::new(),
            error: None,
        }
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    pub fn args<'a>(mut self, args: impl IntoIterator<Item = &'a str>) -> Self {
        self.args.extend(args.into_iter().map(str::to_string));
        self
    }

    /// `-c URI`.
    pub fn uri(self, uri: &str) -> Self {
        self.arg("-c").arg(uri)
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn envs(mut self, pairs: &[(&str, &str)]) -> Self {
        for (k, v) in pairs {
            self = self.env(k, v);
        }
        self
    }

    /// Runs the binary through another program, e.g. `ip netns exec NS`.
    pub fn wrapped_in<'a>(mut self, prefix: impl IntoIterator<Item = &'a str>) -> Self {
        self.prefix = prefix.into_iter().map(str::to_string).collect();
        self
    }

    pub fn stdin(mut self, text: &str) -> Self {
        self.stdin = Some(text.to_string());
        self
    }

    /// The reader of stdout is gone before the binary writes (`| head -1`).
    pub fn stdout_closed(mut self) -> Self {
        self.stdout_closed = true;
        self
    }

    /// The exit code the run must end with (default 0).
    pub fn status(mut self, code: i32) -> Self {
        self.status = Some(code);
        self
    }

    /// No exit code is checked; the caller looks at [`Run::code`].
    pub fn any_status(mut self) -> Self {
        self.status = None;
        self
    }

    /// stdout must be exactly `text`.
    pub fn stdout(mut self, text: &str) -> Self {
        self.stdout.push(Want::Exactly(text.to_string()));
        self
    }

    pub fn stdout_has(mut self, text: &str) -> Self {
        self.stdout.push(Want::Contains(text.to_string()));
        self
    }

    pub fn stdout_lacks(mut self, text: &str) -> Self {
        self.stdout.push(Want::Lacks(text.to_string()));
        self
    }

    pub fn stderr_has(mut self, text: &str) -> Self {
        self.stderr.push(Want::Contains(text.to_string()));
        self
    }

    /// stderr ends with exactly one `error: ...` line, holding `text`.
    pub fn error_has(mut self, text: &str) -> Self {
        self.error = Some(text.to_string());
        self
    }

    /// Runs it and checks everything asked for; panics naming what differs,
    /// with the command and both streams.
    #[track_caller]
    pub fn run(self) -> Run {
        let run = self.execute();
        let context = format!(
            "boxvirt {:?}\nexit code {}\nstdout:\n{}\nstderr:\n{}",
            self.args, run.code, run.stdout, run.stderr
        );
        if let Some(code) = self.status {
            assert_eq!(run.code, code, "exit code: {context}");
        }
        assert!(!run.stderr.contains("panicked"), "a panic: {context}");
        for want in &self.stdout {
            assert!(want.holds(&run.stdout), "stdout: want {want:?}: {context}");
        }
        for want in &self.stderr {
            assert!(want.holds(&run.stderr), "stderr: want {want:?}: {context}");
        }
        if let Some(text) = &self.error {
            let line = run.one_line_error();
            assert!(
                line.contains(text.as_str()),
                "error line: want {text:?}: {context}"
            );
        }
        run
    }

    fn execute(&self) -> Run {
        let mut cmd = match self.prefix.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        cmd.args(&self.args).current_dir(&self.cwd).env_clear();
        for key in ["PATH", "HOME"] {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("running boxvirt");
        if self.stdout_closed {
            drop(child.stdout.take());
        }
        if let (Some(text), Some(mut pipe)) = (&self.stdin, child.stdin.take()) {
            // A binary that exits without reading is not an error here.
            let _ = pipe.write_all(text.as_bytes());
        }
        let out = child.wait_with_output().expect("waiting for boxvirt");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_boxvirt"))
}

/// Old entry point, kept for the live tiers: [`Boxvirt`] with no checks.
pub fn boxvirt_in(cwd: &Path, args: &[&str]) -> Run {
    boxvirt_env(cwd, args, &[])
}

/// Old entry point, kept for the live tiers: [`Boxvirt`] with no checks.
pub fn boxvirt_env(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    Boxvirt::new(cwd)
        .args(args.iter().copied())
        .envs(env)
        .any_status()
        .execute()
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `test:///ABS/fixture.xml`: a fresh test-driver host per connection.
pub fn test_uri(name: &str) -> String {
    format!("test://{}", fixture(name).display())
}

/// Deletes a VM (and what boxvirt made for it) when dropped, so a failed
/// assertion does not leave a guest running on the shared daemon.
pub struct VmGuard {
    pub uri: String,
    pub name: String,
}

impl Drop for VmGuard {
    fn drop(&mut self) {
        let dir = std::env::temp_dir();
        let _ = boxvirt_in(
            &dir,
            &["-c", &self.uri, "vm", "delete", &self.name, "--yes"],
        );
    }
}

/// The network namespace the live libvirtd runs in: its guests' addresses
/// are reachable only from inside it.
pub fn live_netns() -> String {
    std::env::var("BOXVIRT_LIVE_NETNS").unwrap_or_else(|_| "boxvirt-live".to_string())
}

/// boxvirt inside the live daemon's namespace against its socket, with the
/// suite's build cache; any exit code (the caller checks [`Run::code`]).
pub fn in_live_ns(cwd: &Path, args: &[&str]) -> Run {
    let ns = live_netns();
    let cache = build_cache();
    Boxvirt::new(cwd)
        .wrapped_in(["ip", "netns", "exec", ns.as_str()])
        .uri(&live_uri())
        .env("BOXVIRT_CACHE_DIR", cache.to_str().unwrap_or_default())
        .args(args.iter().copied())
        .any_status()
        .run()
}

/// The live libvirtd the harness starts (tests/harness/live-libvirtd.sh).
pub fn live_uri() -> String {
    std::env::var("BOXVIRT_LIVE_URI").unwrap_or_else(|_| "qemu:///system".to_string())
}

/// The tiny guest's kernel and initramfs (tests/harness/build-tiny-guest.sh);
/// fails (never skips) when they are missing.
pub fn tiny_dir() -> PathBuf {
    let cache = std::env::var("BOXVIRT_TEST_CACHE")
        .unwrap_or_else(|_| "/var/cache/boxvirt-test".to_string());
    let dir = PathBuf::from(cache).join("tiny");
    for f in ["vmlinuz", "initrd.img"] {
        assert!(
            dir.join(f).exists(),
            "{} missing: run tests/harness/build-tiny-guest.sh",
            dir.join(f).display()
        );
    }
    dir
}

/// Built guest images live here between test runs, keyed by their build
/// inputs (boxvirt's own build cache); a fresh machine builds them once.
pub fn build_cache() -> PathBuf {
    let root = std::env::var("BOXVIRT_TEST_CACHE")
        .unwrap_or_else(|_| "/var/cache/boxvirt-test".to_string());
    let dir = Path::new(&root).join("image-build");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Puts the tiny guest into pool 'default' at `uri` the way a user does:
/// `boxvirt image build tiny` (built in Docker once, then cached). One test
/// at a time, so the first builds and the others find it cached.
pub fn upload_tiny(uri: &str) {
    let lock_path = std::env::temp_dir().join("boxvirt-test-tiny-upload.lock");
    let lock = std::fs::File::create(&lock_path).unwrap();
    lock.lock().unwrap();
    let cache = build_cache();
    let run = boxvirt_env(
        &std::env::temp_dir(),
        &["-c", uri, "image", "build", "tiny"],
        &[("BOXVIRT_CACHE_DIR", cache.to_str().unwrap())],
    )
    .ok();
    assert!(run.stdout.contains("kernel image 'tiny'"), "{}", run.stdout);
}

/// The live libvirtd (tests/harness/live-libvirtd.sh), opened through
/// boxvirt's libvirt layer; fails (never skips) when it does not answer.
pub fn live_conn() -> boxvirt::libvirt::Libvirt {
    boxvirt::libvirt::Libvirt::open(
        &live_uri(),
        "start it with tests/harness/live-libvirtd.sh start",
    )
    .unwrap_or_else(|f| panic!("live libvirtd not reachable: {}", f.message))
}

/// `kind name action state` of each object of an `env apply` or `env
/// destroy` JSON report.
pub fn objects(report: &serde_json::Value) -> Vec<String> {
    report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let field = |k: &str| o[k].as_str().unwrap().to_string();
            [
                field("kind"),
                field("name"),
                field("action"),
                field("state"),
            ]
            .join(" ")
        })
        .collect()
}

/// Names of the volumes in pool `default`.
pub fn volume_names(conn: &boxvirt::libvirt::Libvirt) -> Vec<String> {
    conn.list_volumes("default")
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect()
}

/// The row whose "name" is `name` in a JSON listing (`-o json` output).
#[track_caller]
pub fn row_named(json: &str, name: &str) -> serde_json::Value {
    let rows: serde_json::Value = serde_json::from_str(json).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed in {json}"))
        .clone()
}
