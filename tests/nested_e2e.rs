//! Tier 4: the nested host end to end, against the real Docker engine and the
//! real image. Drives the real binary the way a user does, then the original
//! tool's four client commands with the real `virsh` and `ssh`.
//!
//! Requires (and FAILS without): a Docker engine on /var/run/docker.sock
//! (tests/harness/start-dockerd.sh) and the base image debian:bookworm-slim
//! (tests/harness/base-image.sh). Instances are named `e2e-*`, live in temp
//! dirs with a temp HOME, and use free ports, so they never touch a user's
//! `default` instance or ~/.ssh.
//!
//! To add checks (e.g. `vm create` inside the nested host, `doctor`), use
//! [`Instance`]: `inst.ok(&["vm", "list"])` runs `boxvirt --instance .. vm list`.

mod common;

use std::net::{Ipv4Addr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::nested::*;
use common::row_named;

#[test]
fn nested_host_end_to_end() {
    require_engine_and_base_image();
    let a = Instance::new("e2e-a", free_port(22400));

    // up: builds when needed, waits for libvirt through the socket and sshd.
    let up = a.ok(&["up"]);
    assert!(up.stdout.contains("instance 'e2e-a' is up"), "{up:?}");
    assert!(up.stdout.contains("socket="), "{up:?}");
    let key = std::fs::read_to_string(a.data().join("ssh/id_ed25519")).unwrap();
    let known_hosts = std::fs::read_to_string(a.data().join("ssh/known_hosts")).unwrap();
    assert!(
        known_hosts.starts_with(&format!("[127.0.0.1]:{} ssh-ed25519 ", a.port)),
        "{known_hosts}"
    );
    let conf = std::fs::read_to_string(a.data().join("ssh/boxman.conf")).unwrap();
    assert!(
        conf.contains(&format!(
            "IdentityFile \"{}/ssh/id_ed25519\"",
            a.data().display()
        )),
        "{conf}"
    );

    // status: everything answers; JSON has the documented fields.
    let (code, st) = a.status_json();
    assert_eq!(code, 0, "{st:#}");
    assert_eq!(st["ok"], true, "{st:#}");
    assert_eq!(st["container"]["state"], "running");
    assert_eq!(st["sshd"]["answering"], true);
    assert_eq!(st["socket"]["answering"], true);
    assert_eq!(st["ssh_key"]["mode"], "0600");
    let ports = st["ports"].as_array().unwrap();
    assert!(ports
        .iter()
        .any(|p| p["name"] == "ssh" && p["published"] == true && p["address"] == "127.0.0.1"));
    assert!(ports
        .iter()
        .any(|p| p["name"] == "libvirt-tcp" && p["published"] == false));
    for prog in ["sshd", "libvirtd", "virtlogd"] {
        assert!(
            st["programs"]
                .as_array()
                .unwrap()
                .iter()
                // `up` returns once libvirt and sshd answer, which can be
                // before supervisord's startsecs turn STARTING into RUNNING.
                .any(|p| p["name"] == prog
                    && (p["state"] == "RUNNING" || p["state"] == "STARTING")),
            "{prog}: {st:#}"
        );
    }
    a.ok(&["status"]);

    // libvirt through the socket and through qemu+ssh, natively.
    let virsh = a.ok(&["virsh"]);
    assert!(virsh.stdout.contains("NAME"), "{virsh:?}");
    a.ok(&["--via", "ssh", "virsh"]);
    let doms = a.ok(&["-o", "json", "virsh"]).json();
    assert!(doms.is_array(), "{doms}");
    let uri = a.ok(&["-o", "json", "uri"]).json();
    assert!(
        uri["socket_uri"]
            .as_str()
            .unwrap()
            .ends_with("/data/libvirt-run/libvirt-sock"),
        "{uri}"
    );

    // ssh: runs a command, propagates its exit code.
    assert_eq!(a.ok(&["ssh", "--", "id", "-un"]).stdout.trim(), "qemu_user");
    assert_eq!(a.run(&["ssh", "--", "exit", "3"]).code, 3);

    // The original tool's client commands, verbatim (instance and port are the test's).
    let (n, p) = (&a.name, a.port);
    a.sh(
        r#"virsh -c "qemu+unix:///system?socket=$(pwd)/data/libvirt-run/libvirt-sock" list --all"#,
    );
    a.sh(&format!("ssh -F ./data/ssh/boxman.conf boxman-{n} true"));
    a.sh(&format!(
        "ssh -F ~/.ssh/config.d/boxman/boxman-{n}.conf boxman-{n} true"
    ));
    a.sh(&format!(
        r#"virsh -c "qemu+ssh://qemu_user@127.0.0.1:{p}/system?keyfile=$(pwd)/data/ssh/id_ed25519&known_hosts=/dev/null&no_verify=1" list --all"#
    ));

    // The libvirt layer through the nested host: doctor (socket and --via
    // ssh), the default network, and a real guest inside the container that
    // becomes ready over SSH through the container's sshd.
    let doctor = a.run(&["-o", "json", "doctor"]);
    assert_eq!(
        doctor.code, 0,
        "doctor through the socket: {}",
        doctor.stdout
    );
    let report = doctor.json();
    for id in [
        "instance-socket",
        "instance-sshd",
        "libvirt",
        "network-default",
        "domcaps-qemu",
        "emulator",
    ] {
        let row = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("{id}: {report:#}"));
        assert_eq!(row["status"], "pass", "{id}: {row}");
    }
    let via_ssh = a.run(&["--via", "ssh", "doctor"]);
    assert_eq!(via_ssh.code, 0, "doctor via ssh: {via_ssh:?}");
    // `up` defined network default itself, with boxvirt's block of
    // address slots: ensuring it again changes nothing.
    let net = a.ok(&["-o", "json", "net", "ensure", "default"]).json();
    assert_eq!(net["changes"], serde_json::json!([]), "{net:#}");
    assert_eq!(net["slots"], 64, "{net:#}");
    // The tiny guest goes into the container's pool through libvirt
    // streams, the upload `image build tiny` uses: nothing is staged in the
    // container, vm create finds the kernel image's volumes.
    let uploaded = a.ok(&["image", "build", "tiny"]);
    assert!(
        uploaded.stdout.contains("kernel image 'tiny'"),
        "{uploaded:?}"
    );
    let created = a.run(&[
        "-o",
        "json",
        "vm",
        "create",
        "--template",
        "tiny",
        "--name",
        "tiny-1",
        "--set",
        "serial_log=/var/lib/libvirt/images/tiny-1.serial.log",
        "--wait",
        "--timeout",
        "300",
    ]);
    let serial =
        std::fs::read_to_string(a.data().join("images/tiny-1.serial.log")).unwrap_or_default();
    assert_eq!(
        created.code, 0,
        "vm create --wait in the nested host: {created:?}\nserial log:\n{serial}"
    );
    assert!(serial.contains("BOXVIRT-TINY-BOOTED"), "{serial}");
    assert!(serial.contains("BOXVIRT-TINY-HOSTNAME tiny-1"), "{serial}");
    assert_eq!(
        a.ok(&["vm", "ssh", "tiny-1", "--", "hostname"])
            .stdout
            .trim(),
        "tiny-1"
    );
    let vms = a.ok(&["--via", "ssh", "-o", "json", "vm", "list"]);
    assert_eq!(row_named(&vms.stdout, "tiny-1")["state"], "running");

    // libvirtd killed inside the container: supervisord restarts it, doctor
    // turns green again and no domain is lost. A `vm wait` polling for an
    // address meanwhile (a VM that never gets one: a blank disk boots nothing, no reservation)
    // reconnects and ends with the stage timeout, not a lost connection.
    a.ok(&[
        "vm",
        "create",
        "--template",
        "debian12",
        "--name",
        "e2e-noip",
        "--blank-disk",
        "--disk-size",
        "1",
        "--memory",
        "256",
        "--no-reserve",
        "--start",
    ]);
    let waiting = a
        .command(&["vm", "wait", "e2e-noip", "--timeout", "25"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(docker(&[
        "exec",
        &a.container(),
        "pkill",
        "-KILL",
        "-x",
        "libvirtd"
    ]));
    let waited = waiting.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&waited.stderr);
    assert_eq!(
        waited.status.code(),
        Some(6),
        "vm wait across a libvirtd restart: {stderr}"
    );
    assert!(stderr.contains("stage 'ip' did not finish"), "{stderr}");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = a.run(&["doctor"]);
    while last.code != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        last = a.run(&["doctor"]);
    }
    assert_eq!(last.code, 0, "doctor after libvirtd was killed: {last:?}");
    a.ok(&["vm", "delete", "e2e-noip", "--yes"]);
    let vms = a.ok(&["-o", "json", "vm", "list"]);
    assert_eq!(row_named(&vms.stdout, "tiny-1")["state"], "running");

    // up again: a no-op.
    let again = a.ok(&["up"]);
    assert!(
        again.stderr.contains("instance 'e2e-a' is already up"),
        "{again:?}"
    );

    // A domain defined through the socket must survive down/up (libvirt's
    // state lives in the data dir).
    std::fs::write(
        a.dir().join("persist.xml"),
        "<domain type='qemu'><name>e2e-persist</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64'>hvm</type></os></domain>",
    )
    .unwrap();
    a.sh(r#"virsh -c "qemu+unix:///system?socket=$(pwd)/data/libvirt-run/libvirt-sock" define persist.xml"#);

    // down stops the container and keeps it and the data; down again says
    // so; status says what is wrong.
    let id_before = container_id(&a.container());
    a.ok(&["down"]);
    assert_eq!(container_state(&a.container()), "exited");
    let down = a.run(&["down"]);
    assert_eq!(down.code, 0, "{down:?}");
    assert!(
        down.stderr
            .contains("instance 'e2e-a' is already down (boxman-libvirt-e2e-a is stopped)"),
        "{down:?}"
    );
    let (code, st) = a.status_json();
    assert_eq!(
        (code, st["ok"].clone()),
        (1, serde_json::Value::Bool(false)),
        "{st:#}"
    );

    // up after down starts the same container again (same config); same
    // client key and pinned host key (the data dir kept them).
    let again = a.ok(&["up"]);
    assert!(
        again.stderr.contains("starting boxman-libvirt-e2e-a again"),
        "{again:?}"
    );
    assert_eq!(container_id(&a.container()), id_before);
    assert_eq!(
        std::fs::read_to_string(a.data().join("ssh/id_ed25519")).unwrap(),
        key
    );
    assert_eq!(
        std::fs::read_to_string(a.data().join("ssh/known_hosts")).unwrap(),
        known_hosts
    );
    a.sh(&format!("ssh -F ./data/ssh/boxman.conf boxman-{n} true"));
    let doms = a.ok(&["-o", "json", "virsh"]).json();
    assert!(
        doms.as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == "e2e-persist" && d["state"] == "shut-off"),
        "{doms:#}"
    );
    // The VM made by boxvirt is still defined after down/up, and its delete
    // removes what boxvirt made for it.
    assert!(
        doms.as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == "tiny-1"),
        "{doms:#}"
    );
    // `net ensure default` gave the network its block of address slots
    // (it had no VM then), so the VM's address was a slot, freed by delete.
    let del = a.ok(&["vm", "delete", "tiny-1", "--yes"]);
    assert!(
        del.stderr.contains("tiny-1-seed.img") && del.stderr.contains("address slot"),
        "{del:?}"
    );

    // A second instance beside the first: own name, data dir and port.
    let b = Instance::new("e2e-b", free_port(a.port + 1));
    // A timeout names the stage (exit 6); the next `up` finishes the job.
    let late = b.run(&["up", "--timeout", "0"]);
    assert_eq!(late.code, 6, "{late:?}");
    assert!(
        late.stderr
            .contains("waiting for libvirt to answer on the socket"),
        "{late:?}"
    );
    let resumed = b.ok(&["up"]);
    assert!(
        resumed.stderr.contains("instance 'e2e-b' is already up"),
        "{resumed:?}"
    );
    assert!(b.data().join("ssh/boxman.conf").exists());
    assert_eq!(b.status_json().0, 0);
    assert_eq!(
        a.status_json().0,
        0,
        "the first instance must be unaffected"
    );
    b.sh(&format!(
        "ssh -F ./data/ssh/boxman.conf boxman-{} true",
        b.name
    ));
    b.sh(
        r#"virsh -c "qemu+unix:///system?socket=$(pwd)/data/libvirt-run/libvirt-sock" list --all"#,
    );

    // logs, restart, link/unlink on the second instance.
    let logs = b.ok(&["logs", "--tail", "200"]);
    assert!(
        logs.stderr.contains("entrypoint:") || logs.stdout.contains("entrypoint:"),
        "{logs:?}"
    );
    b.ok(&["restart"]);
    assert_eq!(b.status_json().0, 0);
    let link = b.home().join(".ssh/config.d/boxman/boxman-e2e-b.conf");
    b.ok(&["unlink-ssh"]);
    assert!(std::fs::symlink_metadata(&link).is_err());
    b.ok(&["link-ssh"]);
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        b.data().join("ssh/boxman.conf")
    );

    // clean all of b keeps the image a still uses.
    let clean_b = b.ok(&["clean", "all", "--yes"]);
    assert!(
        clean_b.stderr.contains(&format!("keeping {}", image_tag())),
        "{clean_b:?}"
    );
    assert!(docker(&["image", "inspect", &image_tag()]));
    assert!(!b.data().exists());
    assert!(!b
        .home()
        .join(".ssh/config.d/boxman/boxman-e2e-b.conf")
        .exists());
    a.ok(&["virsh"]);

    // A non-root user (in the docker group): the socket works without sudo
    // (HOST_UID/HOST_GID mapping), and `clean all` removes the root-owned
    // files in the data dir through a throwaway container.
    if is_root() {
        let (uid, gid) = test_user();
        let u = Instance::as_user("e2e-user", free_port(a.port + 20), uid, gid);
        u.ok(&["up"]);
        assert_eq!(
            std::fs::metadata(u.data().join("ssh/id_ed25519"))
                .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
                .unwrap(),
            uid
        );
        u.ok(&["virsh"]);
        u.sh(r#"virsh -c "qemu+unix:///system?socket=$(pwd)/data/libvirt-run/libvirt-sock" list --all"#);
        u.sh(&format!(
            "ssh -F ~/.ssh/config.d/boxman/boxman-{}.conf boxman-{} true",
            u.name, u.name
        ));
        let clean = u.ok(&["-v", "clean", "all", "--yes"]);
        assert!(
            clean.stderr.contains("emptying it from a container"),
            "{clean:?}"
        );
        assert!(!u.data().exists(), "{clean:?}");
    }

    // clean all of a: no container, no image (unless someone else's
    // container still uses it), no data, no link.
    let clean_a = a.ok(&["clean", "all", "--yes"]);
    assert!(!docker(&["container", "inspect", &a.container()]));
    assert!(!a.data().exists(), "{clean_a:?}");
    assert!(
        std::fs::symlink_metadata(a.home().join(".ssh/config.d/boxman/boxman-e2e-a.conf")).is_err()
    );
    if clean_a.stderr.contains(&format!("keeping {}", image_tag())) {
        let users = docker_out(&["ps", "-a", "--format", "{{.Names}}"]);
        eprintln!("image kept for other containers: {users}");
    } else {
        assert!(!docker(&["image", "inspect", &image_tag()]), "{clean_a:?}");
    }
}

#[test]
fn nested_faults_have_their_exit_codes() {
    require_engine_and_base_image();
    let f = Instance::new("e2e-faults", free_port(22900));

    // Invalid instance name: usage (2), before anything is touched.
    let out = run({
        let mut c = Command::new(BIN);
        c.args(["--instance", "bad name", "up"]);
        f.prepare(&mut c);
        c
    });
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("invalid instance name"), "{out:?}");

    // Docker unreachable: connect (5), naming the socket.
    let mut cmd = f.command(&["up"]);
    cmd.env("DOCKER_HOST", "unix:///nonexistent");
    let out = run(cmd);
    assert_eq!(out.code, 5, "{out:?}");
    assert!(out.stderr.contains("/nonexistent"), "{out:?}");

    // down of an instance that does not exist: not found (3).
    let out = f.run(&["down"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr
            .contains("no container boxman-libvirt-e2e-faults"),
        "{out:?}"
    );

    // SSH port taken: conflict (4), naming the port and this process.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = run({
        let mut c = Command::new(BIN);
        c.args([
            "--instance",
            "e2e-faults",
            "--ssh-port",
            &port.to_string(),
            "up",
        ]);
        f.prepare(&mut c);
        c
    });
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stderr.contains(&format!("port {port}")), "{out:?}");
    assert!(
        out.stderr.contains(&format!("pid {}", std::process::id())),
        "{out:?}"
    );
    drop(listener);

    // Deleting without --yes and without a terminal: refused (2).
    let out = f.run(&["clean", "data"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("without --yes"), "{out:?}");

    // A data dir that cannot be created: failed (1) with a clear message.
    std::fs::write(f.dir().join("file"), "x").unwrap();
    let out = f.run(&["--data-dir", "file/data", "up"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("is not writable"), "{out:?}");
    // A data dir that is a file: usage (2), saying so.
    let out = f.run(&["--data-dir", "file", "up"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("is a file, not a directory"), "{out:?}");
}
