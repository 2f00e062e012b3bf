//! Tier 3, the whole "ready means ready" path on the real libvirtd: create
//! the tiny guest with its cloud-init seed and a reserved address, wait for
//! IP -> SSH (pinned host key) -> boot-finished, then ssh in. boxvirt runs
//! inside the test's network namespace, where the guests' bridge is.

mod common;

use std::path::Path;
use std::process::Command;

use common::{row_named, Run};

fn in_ns(cwd: &Path, args: &[&str]) -> Run {
    common::in_live_ns(cwd, args)
}

#[test]
fn tiny_vm_is_ready_over_ssh_with_its_seed_identity_and_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    in_ns(d.path(), &["net", "ensure", "default"]).ok();
    // The kernel comes from the pool, as for a user who staged nothing.
    common::upload_tiny("qemu:///system");
    let name = format!("live-ready-{}", std::process::id());
    let _guard = common::VmGuard {
        uri: "qemu:///system".into(),
        name: name.clone(),
    };
    let log = format!("/var/log/libvirt/qemu/{name}.serial.log");
    let serial = format!("serial_log={log}");
    let created = in_ns(
        d.path(),
        &[
            "-o",
            "json",
            "vm",
            "create",
            "--template",
            "tiny",
            "--name",
            &name,
            "--set",
            &serial,
            "--wait",
            "--timeout",
            "240",
            "--eject-seed",
        ],
    );
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        created.code, 0,
        "create --wait failed: {}\nserial log:\n{log_text}",
        created.stderr
    );
    let v: serde_json::Value = serde_json::from_str(&created.stdout).unwrap();
    let ip = v["ip"].as_str().expect("a reserved address").to_string();
    assert!(created.stderr.contains("is ready at"), "{}", created.stderr);
    assert!(created.stderr.contains("ejected"), "{}", created.stderr);
    // The guest took the identity from its seed: hostname and host key.
    assert!(
        log_text.contains(&format!("BOXVIRT-TINY-HOSTNAME {name}")),
        "{log_text}"
    );
    assert!(
        log_text.contains(&format!("BOXVIRT-TINY-IP {ip}")),
        "the reserved address was handed out: {log_text}"
    );

    let run = in_ns(d.path(), &["vm", "ssh", &name, "--", "hostname"]).ok();
    assert_eq!(run.stdout.trim(), name);
    let run = in_ns(d.path(), &["vm", "ip", &name, "-o", "json"]).ok();
    let ipj: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        (ipj["ip"].as_str(), ipj["source"].as_str()),
        (Some(ip.as_str()), Some("reservation"))
    );
    let list = in_ns(d.path(), &["vm", "list", "-o", "json"]).ok();
    let me = row_named(&list.stdout, &name);
    assert_eq!(me["ip"].as_str(), Some(ip.as_str()));
    // The seed is gone from the domain and the pool.
    let xml = in_ns(d.path(), &["vm", "xml", &name]).ok().stdout;
    assert!(!xml.contains("-seed.img"), "{xml}");
    let cfg = in_ns(d.path(), &["vm", "ssh-config", &name]).ok().stdout;
    assert!(
        cfg.contains(&format!("HostName {ip}")) && cfg.contains("StrictHostKeyChecking yes"),
        "{cfg}"
    );

    // The serial console over a libvirt stream: type a command at the guest's
    // shell, read its answer, detach with Ctrl-].
    assert_eq!(console_round_trip(d.path(), &name, "hostname"), name);

    assert!(
        d.path().join(format!("data/ssh/vm-{name}.conf")).exists(),
        "vm ssh writes its config"
    );
    in_ns(d.path(), &["vm", "delete", &name, "--yes"]).ok();
    assert!(
        !d.path().join(format!("data/ssh/vm-{name}.conf")).exists(),
        "vm delete removes it"
    );
    let after = in_ns(d.path(), &["vm", "list", "-o", "json"]).ok().stdout;
    assert!(!after.contains(&name), "{after}");
    let conn = boxvirt::libvirt::Libvirt::open("qemu:///system", "live").unwrap();
    assert!(!conn
        .list_volumes("default")
        .unwrap()
        .iter()
        .any(|v| v.name.starts_with(&name)));
    assert!(
        !conn.network_xml("default").unwrap().contains(&name),
        "reservation released"
    );
    let _ = std::fs::remove_file(&log);
}

/// Runs `vm console`, types `command`, returns the first output line after
/// the echoed command, then detaches (Ctrl-]) and checks the exit code.
fn console_round_trip(cwd: &Path, name: &str, command: &str) -> String {
    use std::io::{Read, Write};
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = Command::new(common::bin())
        .args(["-c", "qemu:///system", "vm", "console", name])
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("boxvirt vm console");
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let marker = "BOXVIRT-CONSOLE";
    // Ask repeatedly until the shell answers (the first bytes may be lost
    // while the stream attaches).
    let answer = loop {
        assert!(
            Instant::now() < deadline,
            "no answer on the console; got: {seen}"
        );
        stdin
            .write_all(format!("echo {marker}-$({command})\n").as_bytes())
            .unwrap();
        stdin.flush().unwrap();
        let until = Instant::now() + Duration::from_secs(2);
        while let Ok(chunk) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        if let Some(line) = seen.lines().find(|l| l.starts_with(&format!("{marker}-"))) {
            break line
                .trim_start_matches(&format!("{marker}-"))
                .trim()
                .to_string();
        }
    };
    stdin.write_all(&[0x1d]).unwrap();
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success(), "console exit: {status:?}");
    answer
}
