//! Tier 4, the README's offline quick start, verbatim in spirit: `up`,
//! `image build debian12`, `vm create --template debian12 --wait`,
//! `vm ssh debian12-1 -- cloud-init status`, inside a real nested host in
//! Docker. The build comes from the cache the live tier filled (keyed by its
//! inputs; a fresh machine builds it here), the upload goes through the
//! instance's socket, and the guest boots inside the container. Once with
//! the default profile and once under `up --hardened` (SASL on the socket,
//! read-only root, seccomp, QEMU as a non-root user, limits): the real
//! guest must come up under both.
//!
//! Requires (and FAILS without): a Docker engine (tests/harness/start-dockerd.sh)
//! and the base image (tests/harness/base-image.sh).

mod common;

use std::process::{Command, Stdio};
use std::sync::Mutex;

use common::Run;

/// One nested instance in a temp working dir (with `./data` and a temp
/// HOME), free ports; dropping it removes its container.
struct Nested {
    name: String,
    work: tempfile::TempDir,
}

impl Nested {
    fn new(label: &str) -> Nested {
        let name = format!("{label}-{}", std::process::id());
        let work = tempfile::Builder::new()
            .prefix("boxvirt-deb12-")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(work.path().join("home")).unwrap();
        Nested { name, work }
    }

    fn container(&self) -> String {
        format!("boxman-libvirt-{}", self.name)
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(common::bin())
            .args(["--instance", &self.name])
            .args(args)
            .current_dir(self.work.path())
            .env("HOME", self.work.path().join("home"))
            .env("BOXVIRT_CACHE_DIR", common::build_cache())
            .env_remove("LIBVIRT_DEFAULT_URI")
            .env_remove("BOXMAN_INSTANCE_NAME")
            .env_remove("BOXMAN_DATA_DIR")
            .env_remove("BOXMAN_SSH_PORT")
            .stdin(Stdio::null())
            .output()
            .expect("running boxvirt");
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        eprintln!("boxvirt {args:?} -> {}", run.code);
        run
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(
            run.code, 0,
            "boxvirt {args:?}: {}{}",
            run.stdout, run.stderr
        );
        run
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.container()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A Debian guest under TCG takes most of the two cores while it boots:
/// the two profiles' guests boot one after the other.
static ONE_GUEST_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn nested_offline_quick_start_boots_real_debian_with_cloud_init_done() {
    quick_start("deb12", &[], "default");
}

#[test]
fn nested_hardened_host_boots_real_debian_with_cloud_init_done() {
    quick_start("deb12h", &["--hardened"], "hardened");
}

/// The quick start on an instance made by `up EXTRA`, whose `status`
/// reports the hardening profile `profile`.
fn quick_start(label: &str, extra: &[&str], profile: &str) {
    let _one = ONE_GUEST_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let host = Nested::new(label);
    let mut up = vec!["up", "--auto-ports", "--no-link-ssh"];
    up.extend_from_slice(extra);
    host.ok(&up);
    let status = host.ok(&["-o", "json", "status"]);
    let st: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(st["hardening"]["profile"], profile, "{}", status.stdout);
    host.ok(&["image", "build", "debian12"]);
    host.ok(&["net", "ensure", "default"]);
    std::fs::write(
        host.work.path().join("user-data.yaml"),
        "#cloud-config\nruncmd:\n  - [sh, -c, \"echo nested > /var/tmp/boxvirt-runcmd\"]\n",
    )
    .unwrap();
    let created = host.ok(&[
        "-o",
        "json",
        "vm",
        "create",
        "--template",
        "debian12",
        "--user-data",
        "user-data.yaml",
        "--wait",
        "--timeout",
        "900",
    ]);
    let v: serde_json::Value = serde_json::from_str(&created.stdout).unwrap();
    assert_eq!(v["name"], "debian12-1", "{}", created.stdout);

    // Through the jump host (the container's sshd), with the pinned key.
    let status = host.ok(&["vm", "ssh", "debian12-1", "--", "cloud-init status --long"]);
    assert!(
        status.stdout.contains("status: done") && !status.stdout.contains("error:"),
        "{}",
        status.stdout
    );
    let ran = host.ok(&[
        "vm",
        "ssh",
        "debian12-1",
        "--",
        "cat /var/tmp/boxvirt-runcmd",
    ]);
    assert_eq!(ran.stdout.trim(), "nested");
    assert_eq!(
        host.ok(&["vm", "ssh", "debian12-1", "--", "hostname"])
            .stdout
            .trim(),
        "debian12-1"
    );

    host.ok(&["vm", "delete", "debian12-1", "--yes"]);
    let vms = host.ok(&["-o", "json", "vm", "list"]);
    assert!(!vms.stdout.contains("debian12-1"), "{}", vms.stdout);
    host.ok(&["down"]);
}
