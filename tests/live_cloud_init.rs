//! Live tier: `vm wait` judges a guest by cloud-init's own result file,
//! read over SSH (pinned host key) from a real guest on the live libvirtd.
//! The tiny guest has no real cloud-init, so the test plants result files
//! that cloud-init itself wrote (tests/fixtures/cloud-init) into the running
//! guest as root and checks what `vm wait` makes of each: the failed-module
//! error (exit 1), `--allow-cloud-init-errors`, warnings, a broken file and
//! a file not written yet (exit 6, stage cloud-init). Fails, never skips,
//! when the daemon or the tiny guest is missing.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Boxvirt, VmGuard};

fn netns() -> String {
    std::env::var("BOXVIRT_LIVE_NETNS").unwrap_or_else(|_| "boxvirt-live".to_string())
}

fn sample(name: &str) -> String {
    std::fs::read_to_string(common::fixture("cloud-init").join(name)).unwrap()
}

/// A root shell command in the guest through the ssh config boxvirt wrote
/// (the tiny guest gives root every seed key); its exit code and stderr.
fn as_root(cfg: &Path, vm: &str, command: &str, input: &str) -> (i32, String) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &netns(), "ssh", "-F"])
        .arg(cfg)
        .args([
            "-l",
            "root",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
        ])
        .args([vm, command])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ip netns exec ssh");
    use std::io::Write;
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Until the guest's init has written boot-finished (after which it writes
/// nothing more into /run/cloud-init that could overwrite a planted file).
fn wait_for_boot(cfg: &Path, vm: &str) {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let (code, err) = as_root(cfg, vm, "test -f /var/lib/cloud/instance/boot-finished", "");
        if code == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the tiny guest did not finish booting (last: exit {code}, {err})"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[test]
fn vm_wait_reads_cloud_inits_verdict_from_the_guest() {
    let d = tempfile::tempdir().unwrap();
    let tiny = common::tiny_dir();
    let ns = netns();
    let bx = || {
        Boxvirt::new(d.path())
            .wrapped_in(["ip", "netns", "exec", ns.as_str()])
            .uri("qemu:///system")
    };
    bx().args(["net", "ensure", "default"]).run();
    let name = format!("live-ci-result-{}", std::process::id());
    let _guard = VmGuard {
        uri: "qemu:///system".into(),
        name: name.clone(),
    };
    let kernel = format!("kernel={}", tiny.join("vmlinuz").display());
    let initrd = format!("initrd={}", tiny.join("initrd.img").display());
    bx().args(["vm", "create", "--template", "tiny", "--name", &name])
        .args(["--set", &kernel, "--set", &initrd, "--start"])
        .run();
    let cfg = d.path().join("vm.ssh.conf");
    let text = bx().args(["vm", "ssh-config", &name]).run().stdout;
    std::fs::write(&cfg, text).unwrap();
    wait_for_boot(&cfg, &name);
    let plant = |text: &str| {
        let (code, err) = as_root(
            &cfg,
            &name,
            "mkdir -p /run/cloud-init && cat > /run/cloud-init/result.json",
            text,
        );
        assert_eq!(code, 0, "planting result.json: {err}");
    };
    let wait = || bx().args(["vm", "wait", &name, "--timeout", "120"]);

    // A module failed (cloud-init 22.4's own file): exit 1 naming it.
    plant(&sample("result-22.4-locale.json"));
    wait()
        .status(1)
        .error_has(&format!(
            "vm '{name}': cloud-init reported an error in module locale: ProcessExecutionError"
        ))
        .error_has("No such file or directory: b'locale-gen'")
        .run();
    // Allowed: a warning, exit 0, and the JSON has the whole verdict.
    let v = wait()
        .args(["--allow-cloud-init-errors", "-o", "json"])
        .stderr_has("warning: vm '")
        .stderr_has("in module locale")
        .run()
        .json();
    assert_eq!(v["name"], name.as_str());
    assert_eq!(
        v["cloud_init"]["datasource"],
        "DataSourceNoCloud [seed=/dev/vdb][dsmode=net]"
    );
    assert!(
        v["cloud_init"]["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("('locale', ProcessExecutionError("),
        "{v}"
    );

    // Success with recoverable errors (23.4+): ready, with warnings.
    plant(&sample("result-23.4-warnings.json"));
    wait()
        .stderr_has(&format!(
            "warning: vm '{name}': cloud-init WARNING: Failed at merging in cloud config part from p-01"
        ))
        .stderr_has("is ready at")
        .run();
    // Plain success.
    plant(&sample("result-22.4-done.json"));
    let run = wait().stderr_has("is ready at").run();
    assert!(!run.stderr.contains("warning:"), "{}", run.stderr);

    // A broken file is an error naming it, not a wait until the timeout.
    plant("{\"v1\": ");
    wait()
        .status(1)
        .error_has("/run/cloud-init/result.json is not valid cloud-init JSON")
        .run();
    // Not written yet: the wait goes on until the timeout names the stage.
    let (code, err) = as_root(&cfg, &name, "rm -f /run/cloud-init/result.json", "");
    assert_eq!(code, 0, "{err}");
    bx().args(["vm", "wait", &name, "--timeout", "15"])
        .status(6)
        .error_has("stage 'cloud-init' did not finish")
        .error_has("result.json not written yet")
        .run();
}
