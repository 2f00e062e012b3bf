//! Tier 3: a REAL libvirtd and QEMU (started by tests/harness/live-libvirtd.sh
//! inside its own network namespace) and a real guest kernel that boots.
//! These tests fail, never skip, when the daemon or the guest is missing.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

/// Runs boxvirt against the live daemon.
fn live(cwd: &Path, args: &[&str]) -> Run {
    let uri = live_uri();
    let mut full = vec!["-c", uri.as_str()];
    full.extend_from_slice(args);
    boxvirt_in(cwd, &full)
}

/// `vm create --template debian12 --name NAME --blank-disk --disk-size 1
/// EXTRA...` on the live daemon: no base image needed (no internet), and
/// every create step (volume, seed, reservation, domain) still applies.
fn create_blank(cwd: &Path, name: &str, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let uri = live_uri();
    let mut args = vec![
        "-c",
        uri.as_str(),
        "vm",
        "create",
        "--template",
        "debian12",
        "--name",
        name,
        "--blank-disk",
        "--disk-size",
        "1",
    ];
    args.extend_from_slice(extra);
    boxvirt_env(cwd, &args, env)
}

fn require_daemon(cwd: &Path) {
    let run = live(cwd, &["vm", "list"]);
    assert_eq!(
        run.code,
        0,
        "live libvirtd not reachable at {}: {}\nstart it with tests/harness/live-libvirtd.sh start",
        live_uri(),
        run.stderr
    );
}

fn domain_names(cwd: &Path) -> Vec<String> {
    let run = live(cwd, &["vm", "list", "-o", "json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect()
}

fn wait_for_line(file: &Path, marker: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text.contains(marker) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {marker:?} in {} within {timeout:?}; it holds:\n{text}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `vm create --template tiny`; with `kernel_dir` the kernel and initrd
/// paths are given instead of taken from the 'tiny' kernel image volumes.
fn tiny_create_args(name: &str, log: &Path, kernel_dir: Option<&Path>) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "vm".into(),
        "create".into(),
        "--template".into(),
        "tiny".into(),
        "--name".into(),
        name.into(),
        "--set".into(),
        format!("serial_log={}", log.display()),
    ];
    if let Some(dir) = kernel_dir {
        for (key, file) in [("kernel", "vmlinuz"), ("initrd", "initrd.img")] {
            args.push("--set".into());
            args.push(format!("{key}={}", dir.join(file).display()));
        }
    }
    args
}

#[test]
fn tiny_guest_boots_stops_and_is_deleted_without_leftovers() {
    let d = tempfile::tempdir().unwrap();
    require_daemon(d.path());
    let name = format!("live-tiny-{}", std::process::id());
    let _guard = VmGuard {
        uri: live_uri(),
        name: name.clone(),
    };
    let log = PathBuf::from(format!("/var/log/libvirt/qemu/{name}.serial.log"));
    let _ = std::fs::remove_file(&log);

    let run = live(d.path(), &["net", "ensure", "default"]).ok();
    assert!(run.stdout.contains("network 'default'"), "{}", run.stdout);
    let again = live(d.path(), &["net", "ensure", "default"]).ok();
    assert!(
        again.stdout.contains("nothing changed"),
        "second ensure must change nothing: {}",
        again.stdout
    );

    let doctor = live(d.path(), &["doctor", "-o", "json"]);
    let report: serde_json::Value = serde_json::from_str(&doctor.stdout).unwrap();
    assert_eq!(
        doctor.code, 0,
        "doctor failed on the live daemon: {}",
        doctor.stdout
    );
    let accel = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "accelerator")
        .unwrap()
        .clone();

    // The kernel comes from the pool, as for a user who staged nothing.
    upload_tiny(&live_uri());
    let mut args = tiny_create_args(&name, &log, None);
    args.push("--start".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let created = live(d.path(), &args).ok();
    assert!(
        created.stdout.contains(&format!("created vm '{name}'")),
        "{}",
        created.stdout
    );
    // On a host where KVM guests cannot boot (PVM, no vmx/svm), the fallback is visible.
    if accel["detail"].as_str().unwrap().contains("use qemu") {
        assert!(
            created.stderr.contains("warning:") && created.stderr.contains("TCG"),
            "{}",
            created.stderr
        );
    }

    // Printed by the guest's /init, so the kernel and initramfs really ran.
    wait_for_line(&log, "BOXVIRT-TINY-BOOTED", Duration::from_secs(180));

    let list = live(d.path(), &["vm", "list", "-o", "json"]).ok();
    let me = row_named(&list.stdout, &name);
    assert_eq!(me["state"], "running");
    assert_eq!(me["memory_mib"], 256);

    // The guest's init is done (acpid runs): a graceful stop can work.
    wait_for_line(&log, "BOXVIRT-TINY-BOOT-FINISHED", Duration::from_secs(180));
    // Starting a running VM is a no-op that says so (like `vm stop` on a stopped one).
    let again = live(d.path(), &["vm", "start", &name]).ok();
    assert!(
        again.stderr.contains("already running; nothing to do"),
        "{}",
        again.stderr
    );

    let stop = live(d.path(), &["vm", "stop", &name, "--timeout", "90"]);
    if stop.code == 6 {
        // The guest ignored ACPI: the timeout names the way out, and --force works.
        assert!(stop.one_line_error().contains("--force"));
        live(d.path(), &["vm", "stop", "--force", &name]).ok();
    } else {
        stop.ok();
    }
    let info = live(d.path(), &["vm", "info", &name, "-o", "json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&info.stdout).unwrap();
    assert_eq!(v["state"], "shut-off");
    assert_eq!(
        v["domain_type"],
        accel["detail"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .nth(3)
            .unwrap()
            .trim_end_matches(':')
    );

    live(d.path(), &["vm", "delete", &name, "--yes"]).ok();
    assert!(
        !domain_names(d.path()).contains(&name),
        "domain left behind"
    );
    let _ = std::fs::remove_file(&log);
}

#[test]
fn a_vm_that_fails_to_start_is_rolled_back() {
    let d = tempfile::tempdir().unwrap();
    require_daemon(d.path());
    live(d.path(), &["net", "ensure", "default"]).ok();
    let name = format!("live-nokernel-{}", std::process::id());
    let log = PathBuf::from(format!("/var/log/libvirt/qemu/{name}.serial.log"));
    let missing = Path::new("/nonexistent-boxvirt-kernel-dir");
    let mut args = tiny_create_args(&name, &log, Some(missing));
    args.push("--start".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = live(d.path(), &args).expect_code(1);
    let line = run.one_line_error();
    assert!(
        line.contains(&format!("starting vm '{name}'")) && line.contains("rolled back"),
        "{line}"
    );
    assert!(
        !domain_names(d.path()).contains(&name),
        "domain left defined after a failed start"
    );
}

fn reservations(uri: &str) -> Vec<String> {
    let conn = boxvirt::libvirt::Libvirt::open(uri, "live").unwrap();
    boxvirt::xml::find_all(
        &conn.network_xml("default").unwrap(),
        &["network", "ip", "dhcp", "host"],
    )
    .into_iter()
    .filter_map(|h| h.attr("name").map(str::to_string))
    .collect()
}

/// No domain, volume (disk or seed) or DHCP reservation named after `name`
/// is left on the live daemon; `case` names the situation in a failure.
fn assert_nothing_left(cwd: &Path, uri: &str, name: &str, case: &str) {
    assert!(
        !domain_names(cwd).contains(&name.to_string()),
        "{case}: domain left behind"
    );
    assert!(
        !pool_volumes(uri).iter().any(|v| v.starts_with(name)),
        "{case}: volume left behind"
    );
    assert!(
        !reservations(uri).contains(&name.to_string()),
        "{case}: DHCP reservation left behind"
    );
}

fn pool_volumes(uri: &str) -> Vec<String> {
    volume_names(&boxvirt::libvirt::Libvirt::open(uri, "live").unwrap())
}

#[test]
fn injected_failures_leave_no_domain_volume_seed_or_reservation_on_the_real_daemon() {
    let d = tempfile::tempdir().unwrap();
    require_daemon(d.path());
    live(d.path(), &["net", "ensure", "default"]).ok();
    let uri = live_uri();
    // Each step twice: a failure, and a real SIGINT (Ctrl-C) the process
    // sends itself right after the step, which must roll back the same way.
    let hooks = boxvirt::vm::create::STEPS
        .iter()
        .flat_map(|step| [(step.to_string(), *step), (format!("signal:{step}"), *step)]);
    for (hook, step) in hooks {
        let signal = hook.starts_with("signal:");
        let name = format!(
            "live-inject-{}-{step}-{}",
            if signal { "sig" } else { "err" },
            std::process::id()
        );
        // Should a create go through after all, a failed assertion must
        // not leave it running.
        let _guard = VmGuard {
            uri: uri.clone(),
            name: name.clone(),
        };
        let run = create_blank(
            d.path(),
            &name,
            &["--start"],
            &[("BOXVIRT_INJECT_FAILURE", &hook)],
        )
        .expect_code(1);
        let line = run.one_line_error();
        let cause = if signal {
            "interrupted by SIGINT (Ctrl-C)"
        } else {
            "injected failure"
        };
        assert!(
            line.contains(&format!("{cause} after step '{step}'")) && line.contains("rolled back"),
            "{line}"
        );
        assert!(!line.contains("could NOT"), "{line}");
        assert_nothing_left(d.path(), &uri, &name, &hook);
    }
    // A real conflict: the name is taken; nothing new appears.
    let name = format!("live-dup-{}", std::process::id());
    let _guard = VmGuard {
        uri: uri.clone(),
        name: name.clone(),
    };
    let made = create_blank(d.path(), &name, &["-o", "json"], &[]).ok();
    let v: serde_json::Value = serde_json::from_str(&made.stdout).unwrap();
    assert_eq!(
        v["volumes"],
        serde_json::json!([format!("{name}.qcow2"), format!("{name}-seed.img")])
    );
    // The address: a slot of default's block (a network `net ensure` made
    // or migrated), or a live reservation when other VMs kept it unmigrated.
    let conn = boxvirt::libvirt::Libvirt::open(&uri, "live").unwrap();
    let block = boxvirt::vm::slots::block(&conn.network_xml("default").unwrap());
    match &block {
        Some(b) => assert!(
            b.slots
                .iter()
                .any(|s| Some(s.ip.to_string().as_str()) == v["ip"].as_str()),
            "{v}"
        ),
        None => assert!(reservations(&uri).contains(&name)),
    }
    // Other tests share the daemon: look only at what this one owns.
    let mine = |cwd: &Path| -> (Vec<String>, Vec<String>) {
        let doms = domain_names(cwd)
            .into_iter()
            .filter(|n| n.starts_with(&name))
            .collect();
        let vols = pool_volumes(&uri)
            .into_iter()
            .filter(|v| v.starts_with(&name))
            .collect();
        (doms, vols)
    };
    let before = mine(d.path());
    create_blank(d.path(), &name, &[], &[]).expect_code(4);
    assert_eq!(
        mine(d.path()),
        before,
        "a refused create must not touch the existing vm"
    );
    let del = live(d.path(), &["vm", "delete", &name, "--yes"]).ok();
    let released = if block.is_some() {
        "address slot"
    } else {
        "DHCP reservation"
    };
    assert!(del.stderr.contains(released), "{}", del.stderr);
    assert_nothing_left(d.path(), &uri, &name, "vm delete");
}

/// `vm delete` removes the domain (and with it the record of what boxvirt
/// made) last: when removing a volume fails (here: the seed file is made
/// immutable), the VM stays defined and a second `vm delete` finishes the
/// job instead of leaving orphaned volumes and reservations.
#[test]
fn a_failed_delete_leaves_the_vm_defined_and_deleting_again_finishes() {
    struct Immutable(String);
    impl Drop for Immutable {
        fn drop(&mut self) {
            let _ = std::process::Command::new("chattr")
                .args(["-i", &self.0])
                .status();
        }
    }
    let d = tempfile::tempdir().unwrap();
    require_daemon(d.path());
    live(d.path(), &["net", "ensure", "default"]).ok();
    let uri = live_uri();
    let name = format!("live-redelete-{}", std::process::id());
    let _guard = VmGuard {
        uri: uri.clone(),
        name: name.clone(),
    };
    create_blank(d.path(), &name, &[], &[]).ok();
    let conn = boxvirt::libvirt::Libvirt::open(&uri, "live").unwrap();
    let seed = conn
        .volume_path("default", &format!("{name}-seed.img"))
        .unwrap()
        .expect("seed volume");
    let pinned = Immutable(seed.clone());
    let status = std::process::Command::new("chattr")
        .args(["+i", &seed])
        .status()
        .expect("running chattr");
    assert!(status.success(), "chattr +i {seed}");

    let run = live(d.path(), &["vm", "delete", &name, "--yes"]).expect_code(1);
    assert!(
        run.one_line_error().contains(&format!("{name}-seed.img")),
        "{}",
        run.stderr
    );
    assert!(
        domain_names(d.path()).contains(&name),
        "the vm must stay defined for a retry"
    );

    drop(pinned);
    let run = live(d.path(), &["vm", "delete", &name, "--yes"]).ok();
    assert!(
        run.stderr.contains(&format!("default/{name}-seed.img")),
        "{}",
        run.stderr
    );
    assert_nothing_left(d.path(), &uri, &name, "after the second delete");
}

/// `vm wait` on a VM without a seed (so without a pinned host key) fails at
/// once with the reason, instead of first waiting out the address stage.
#[test]
fn waiting_for_a_vm_without_a_seed_fails_at_once() {
    let d = tempfile::tempdir().unwrap();
    require_daemon(d.path());
    live(d.path(), &["net", "ensure", "default"]).ok();
    let name = format!("live-noseed-{}", std::process::id());
    let _guard = VmGuard {
        uri: live_uri(),
        name: name.clone(),
    };
    create_blank(d.path(), &name, &["--no-seed", "--no-reserve"], &[]).ok();
    let run = live(d.path(), &["vm", "wait", &name, "--timeout", "600"]).expect_code(1);
    assert!(
        run.one_line_error().contains("no pinned host key"),
        "{}",
        run.stderr
    );
}
