//! Tier 4: `up --hardened` against the real Docker engine and image. One
//! instance proves each of the eight guidelines from outside the container
//! (docker inspect, the socket, virsh, ps), then that the tiny guest boots,
//! gets its address and answers SSH under the hardened profile, that a VM
//! too big for the memory limit is refused, that credential files with a
//! loose mode stop `up`, and that switching profiles keeps the domains.
//!
//! Requires (and FAILS without): a Docker engine and the base image (see
//! nested_e2e.rs), and the tiny guest's build inputs (tests/harness).

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::nested::*;
use common::row_named;

/// `docker inspect -f FORMAT container`, trimmed.
fn inspect(container: &str, format: &str) -> String {
    docker_out(&["inspect", "-f", format, container])
        .trim()
        .to_string()
}

fn guideline(st: &serde_json::Value, n: u64) -> serde_json::Value {
    st["hardening"]["guidelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["guideline"] == n)
        .cloned()
        .unwrap_or_else(|| panic!("no guideline {n}: {st:#}"))
}

#[test]
fn hardened_host_applies_each_guideline_and_still_runs_guests() {
    require_engine_and_base_image();
    let h = Instance::new("hard-a", free_port(23400));
    let c = h.container();

    // Bad input first: nothing is created.
    let small = h.run(&["up", "--hardened", "--memory", "256m"]);
    assert_eq!(small.code, 2, "{small:?}");
    assert!(small.stderr.contains("--memory 256"), "{small:?}");
    let both = h.run(&["up", "--hardened", "--privileged"]);
    assert_eq!(both.code, 2, "{both:?}");
    assert!(!docker(&["container", "inspect", &c]));

    let up = h.ok(&["up", "--hardened", "--memory", "1536m"]);
    assert!(up.stdout.contains("instance 'hard-a' is up"), "{up:?}");

    // 1. not privileged, only NET_ADMIN added.
    assert_eq!(inspect(&c, "{{.HostConfig.Privileged}}"), "false");
    assert_eq!(
        inspect(&c, "{{json .HostConfig.CapAdd}}"),
        r#"["NET_ADMIN"]"#
    );

    // 2. the socket wants SASL: plain virsh is refused, the auth file works.
    let auth = h.data().join("auth");
    for f in ["password", "auth.conf"] {
        let mode = std::fs::metadata(auth.join(f)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let uri = format!(
        "qemu+unix:///system?socket={}",
        h.data().join("libvirt-run/libvirt-sock").display()
    );
    let refused = h.run_program("virsh", &["-c", &uri, "list", "--all"], &[]);
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(refused.stderr.contains("authentication"), "{refused:?}");
    let auth_conf = auth.join("auth.conf");
    let allowed = h.run_program(
        "virsh",
        &["-c", &uri, "list", "--all"],
        &[("LIBVIRT_AUTH_FILE", auth_conf.to_str().unwrap())],
    );
    assert_eq!(allowed.code, 0, "{allowed:?}");
    let shown = h.ok(&["uri"]);
    assert!(
        shown
            .stdout
            .contains(&format!("LIBVIRT_AUTH_FILE={}", auth_conf.display())),
        "{shown:?}"
    );

    // 3. socket 0770, the host user's group.
    let sock = std::fs::metadata(h.data().join("libvirt-run/libvirt-sock")).unwrap();
    assert_eq!(sock.mode() & 0o777, 0o770);
    // SAFETY: getegid has no preconditions.
    assert_eq!(sock.gid(), unsafe { libc::getegid() });

    // 4. read-only root; the programs run and what they write has a home.
    assert_eq!(inspect(&c, "{{.HostConfig.ReadonlyRootfs}}"), "true");
    assert!(!docker(&["exec", &c, "touch", "/etc/boxvirt-probe"]));
    assert!(docker(&["exec", &c, "touch", "/run/boxvirt-probe"]));
    // The image's directories below the tmpfs mounts are recreated.
    for dir in [
        "/var/log/libvirt/qemu",
        "/run/sshd",
        "/var/lib/libvirt/boot",
    ] {
        assert!(docker(&["exec", &c, "test", "-d", dir]), "{dir}");
    }
    let programs = docker_out(&["exec", &c, "supervisorctl", "status"]);
    for p in ["sshd", "libvirtd", "dnsmasq", "virtlogd"] {
        assert!(
            programs
                .lines()
                .any(|l| l.starts_with(p) && (l.contains("RUNNING") || l.contains("STARTING"))),
            "{p}: {programs}"
        );
    }

    // 5. a seccomp profile (not unconfined), /proc/sys/kernel read-only.
    let secopt = inspect(&c, "{{json .HostConfig.SecurityOpt}}");
    assert!(secopt.contains("seccomp="), "{secopt}");
    assert!(!secopt.contains("unconfined"), "{secopt}");
    assert_eq!(
        docker_out(&["exec", &c, "grep", "Seccomp:", "/proc/1/status"])
            .split_whitespace()
            .nth(1),
        Some("2")
    );
    assert!(!docker(&[
        "exec",
        &c,
        "sh",
        "-c",
        "echo 1 > /proc/sys/kernel/sysrq"
    ]));

    // 6. limits.
    assert_eq!(
        inspect(&c, "{{.HostConfig.Memory}}"),
        (1536u64 << 20).to_string()
    );
    assert_eq!(inspect(&c, "{{.HostConfig.PidsLimit}}"), "4096");
    assert_eq!(inspect(&c, "{{.HostConfig.NanoCpus}}"), "2000000000");

    // status and doctor: one row per guideline.
    let (code, st) = h.status_json();
    assert_eq!(code, 0, "{st:#}");
    assert_eq!(st["hardening"]["profile"], "hardened");
    for n in [1, 2, 3, 4, 5, 6, 7, 8] {
        assert_eq!(guideline(&st, n)["state"], "applied", "{n}: {st:#}");
    }
    // --hardened includes TLS (guideline 7): boxvirt gets in with the
    // client certificate `up` made.
    let uris = h.ok(&["-o", "json", "uri"]).json();
    let tls_uri = uris["tls_uri"].as_str().expect("tls_uri").to_string();
    assert!(tls_uri.starts_with("qemu+tls://127.0.0.1:"), "{uris:#}");
    h.ok(&["-c", &tls_uri, "vm", "list"]);
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .map(|s| s.trim() == "Y")
        .unwrap_or(false);
    if !apparmor {
        let five = guideline(&st, 5)["detail"].as_str().unwrap().to_string();
        assert!(
            five.contains("not possible here: the kernel has no AppArmor"),
            "{five}"
        );
    }
    // (net-default may still be starting the network right after up.)
    h.ok(&["net", "ensure", "default"]);
    let doctor = h.run(&["-o", "json", "doctor"]);
    assert_eq!(doctor.code, 0, "{}", doctor.stdout);
    let checks = doctor.json()["checks"].clone();
    for id in ["hardening-1", "hardening-8", "libvirt", "container-memory"] {
        assert!(
            checks.as_array().unwrap().iter().any(|c| c["id"] == id),
            "{id}: {checks:#}"
        );
    }

    // The tiny guest boots, gets its address and answers SSH.
    h.ok(&["image", "build", "tiny"]);
    let created = h.run(&[
        "vm",
        "create",
        "--template",
        "tiny",
        "--name",
        "tiny-h",
        "--set",
        "serial_log=/var/lib/libvirt/images/tiny-h.serial.log",
        "--wait",
        "--timeout",
        "300",
    ]);
    let serial =
        std::fs::read_to_string(h.data().join("images/tiny-h.serial.log")).unwrap_or_default();
    assert_eq!(created.code, 0, "{created:?}\nserial log:\n{serial}");
    assert_eq!(
        h.ok(&["vm", "ssh", "tiny-h", "--", "hostname"])
            .stdout
            .trim(),
        "tiny-h"
    );

    // 8. its QEMU runs as an unprivileged user.
    let uids = docker_out(&["exec", &c, "ps", "-o", "uid=", "-C", "qemu-system-x86_64"]);
    let uid: u32 = uids
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("ps: {uids:?}"));
    assert_ne!(uid, 0);

    // A VM that would not fit the memory limit: conflict (4), nothing made.
    let big = h.run(&[
        "vm",
        "create",
        "--template",
        "tiny",
        "--name",
        "tiny-big",
        "--memory",
        "1024",
    ]);
    assert_eq!(big.code, 4, "{big:?}");
    assert!(big.stderr.contains("does not fit"), "{big:?}");
    assert!(!h.ok(&["vm", "list"]).stdout.contains("tiny-big"));
    // Made anyway through an explicit URI (boxvirt cannot know a container
    // behind any URI), doctor flags it.
    h.ok(&[
        "-c",
        &uri,
        "vm",
        "create",
        "--template",
        "tiny",
        "--name",
        "tiny-big",
        "--memory",
        "1024",
        "--start",
    ]);
    let over = h.run(&["-o", "json", "doctor"]);
    assert_eq!(over.code, 1, "{}", over.stdout);
    let row = over.json()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "container-memory")
        .cloned()
        .unwrap();
    assert_eq!(row["status"], "fail", "{row}");
    assert!(
        row["detail"].as_str().unwrap().contains("1536 MiB"),
        "{row}"
    );
    h.ok(&["vm", "delete", "tiny-big", "--yes"]);

    // A credential file others can read: up refuses, naming it.
    let pw = auth.join("password");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let loose = h.run(&["up", "--hardened", "--memory", "1536m"]);
    assert_eq!(loose.code, 1, "{loose:?}");
    assert!(
        loose.stderr.contains(&pw.display().to_string()),
        "{loose:?}"
    );
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();

    // A removed password is made anew and reaches libvirtd (new container).
    let old = std::fs::read_to_string(&pw).unwrap();
    std::fs::remove_file(&pw).unwrap();
    h.ok(&["up", "--hardened", "--memory", "1536m"]);
    assert_ne!(std::fs::read_to_string(&pw).unwrap(), old);
    assert!(h.ok(&["vm", "list"]).stdout.contains("tiny-h"));

    // down / up: the domain survives the read-only, re-created container.
    h.ok(&["down"]);
    h.ok(&["up", "--hardened", "--memory", "1536m"]);
    let vms = h.ok(&["-o", "json", "vm", "list"]);
    assert!(row_named(&vms.stdout, "tiny-h").is_object(), "{vms:?}");

    // Back to the default profile: says what changes, keeps the domain.
    let back = h.ok(&["up"]);
    assert!(
        back.stderr
            .contains("switching back to the default profile"),
        "{back:?}"
    );
    assert_eq!(inspect(&c, "{{.HostConfig.ReadonlyRootfs}}"), "false");
    let vms = h.ok(&["-o", "json", "vm", "list"]);
    assert!(row_named(&vms.stdout, "tiny-h").is_object(), "{vms:?}");
    // The socket is back to group-only access: plain virsh works.
    let plain = h.run_program("virsh", &["-c", &uri, "list", "--all"], &[]);
    assert_eq!(plain.code, 0, "{plain:?}");
    assert!(plain.stdout.contains("tiny-h"), "{plain:?}");
    let (_, st) = h.status_json();
    assert_eq!(st["hardening"]["profile"], "default");
    assert_eq!(guideline(&st, 4)["state"], "not applied");
}
