//! Shared helpers for integration tests: run the real binary with a clean
//! environment (no LIBVIRT_DEFAULT_URI / BOXMAN_* leaking in from the shell).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

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
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_boxvirt"))
}

/// The binary in `cwd` with an environment holding only PATH/HOME/TERM-less basics.
pub fn boxvirt_in(cwd: &Path, args: &[&str]) -> Run {
    boxvirt_env(cwd, args, &[])
}

pub fn boxvirt_env(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(bin());
    cmd.args(args).current_dir(cwd).env_clear();
    for key in ["PATH", "HOME"] {
        if let Ok(v) = std::env::var(key) {
            cmd.env(key, v);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::from(cmd.output().expect("running boxvirt"))
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

/// Puts the tiny guest (tests/harness/build-tiny-guest.sh) into pool
/// `default` of `uri` as kernel image 'tiny', through the same upload
/// `image build tiny` uses, so `vm create --template tiny` finds it. A
/// file lock keeps tests that run at once from racing on the same volumes.
pub fn upload_tiny(uri: &str) {
    let dir = tiny_dir();
    let lock_path = std::env::temp_dir().join("boxvirt-test-tiny-upload.lock");
    let lock = std::fs::File::create(&lock_path).unwrap();
    lock.lock().unwrap();
    let kernel = dir.join("vmlinuz");
    let initrd = dir.join("initrd.img");
    let run = boxvirt_in(
        &std::env::temp_dir(),
        &[
            "-c",
            uri,
            "image",
            "import-kernel",
            "tiny",
            "--kernel",
            kernel.to_str().unwrap(),
            "--initrd",
            initrd.to_str().unwrap(),
        ],
    )
    .ok();
    assert!(run.stdout.contains("kernel image 'tiny'"), "{}", run.stdout);
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
