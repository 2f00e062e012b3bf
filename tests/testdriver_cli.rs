//! Tier 2: the CLI against libvirt's test driver, one fixture per test.
//! Each process gets a fresh host from the fixture, so these check what one
//! command prints and how it fails.

mod common;

use common::*;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn vm_list_shows_fixture_domains_as_table_and_json() {
    let d = tmp();
    let uri = test_uri("node.xml");
    let run = boxvirt_in(d.path(), &["-c", &uri, "vm", "list"]).ok();
    assert!(
        run.stdout.contains("web-1") && run.stdout.contains("db-1"),
        "{}",
        run.stdout
    );
    let run = boxvirt_in(d.path(), &["-c", &uri, "vm", "list", "-o", "json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["db-1", "web-1"]);
    assert_eq!(v[1]["vcpus"], 2);
    assert_eq!(v[1]["memory_mib"], 512);
    assert_eq!(v[1]["state"], "running");
}

#[test]
fn libvirt_default_uri_env_is_used_and_connect_flag_wins() {
    let d = tmp();
    let run = boxvirt_env(
        d.path(),
        &["vm", "list", "-o", "json"],
        &[("LIBVIRT_DEFAULT_URI", &test_uri("node.xml"))],
    )
    .ok();
    assert!(run.stdout.contains("web-1"));
    let run = boxvirt_env(
        d.path(),
        &["-c", &test_uri("empty.xml"), "vm", "list", "-o", "json"],
        &[("LIBVIRT_DEFAULT_URI", &test_uri("node.xml"))],
    )
    .ok();
    assert_eq!(run.stdout.trim(), "[]");
}

#[test]
fn vm_create_from_each_cloud_template_on_the_test_driver() {
    let d = tmp();
    let uri = test_uri("node.xml");
    for t in ["rocky9", "ubuntu24", "debian12"] {
        // The test driver has no upload streams (seed) and there is no
        // internet (image): a blank disk and no seed; the live tiers do the rest.
        let run = boxvirt_in(
            d.path(),
            &[
                "-c",
                &uri,
                "-o",
                "json",
                "vm",
                "create",
                "--template",
                t,
                "--memory",
                "1024",
                "--vcpus",
                "2",
                "--blank-disk",
                "--no-seed",
                "--start",
            ],
        )
        .ok();
        let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(v["name"], format!("{t}-1"));
        assert_eq!(v["domain_type"], "test");
        assert_eq!(v["volumes"][0], format!("{t}-1.qcow2"));
        assert_eq!(v["started"], true);
        // A DHCP reservation was planned in the fixture's range.
        assert!(v["ip"].as_str().unwrap().starts_with("192.168.122."), "{v}");
    }
}

#[test]
fn default_name_skips_names_in_use() {
    let d = tmp();
    let run = boxvirt_in(
        d.path(),
        &[
            "-c",
            &test_uri("node.xml"),
            "-o",
            "json",
            "vm",
            "create",
            "--template",
            "tiny",
            "--name",
            "web-2",
            "--no-seed",
        ],
    )
    .ok();
    assert!(run.stdout.contains("\"web-2\""));
}

#[test]
fn bad_input_gets_one_line_and_the_documented_exit_code() {
    let d = tmp();
    let uri = test_uri("node.xml");
    let long = "x".repeat(65);
    let cases: Vec<(Vec<&str>, i32, &str)> =
        vec![
        (
            vec!["vm", "create", "--template", "tiny", "--name", ""],
            2,
            "is empty",
        ),
        (
            vec!["vm", "create", "--template", "tiny", "--name", &long],
            2,
            "longer than 64",
        ),
        (
            vec!["vm", "create", "--template", "tiny", "--name", "a/b"],
            2,
            "'/'",
        ),
        (
            vec!["vm", "create", "--template", "tiny", "--name", "a'b"],
            2,
            "contains",
        ),
        (
            vec!["vm", "create", "--template", "tiny", "--name", "a<b"],
            2,
            "'<'",
        ),
        (
            vec!["vm", "create", "--template", "tiny", "--name", "a b"],
            2,
            "' '",
        ),
        (
            vec!["vm", "create", "--template", "tiny", "--name=-x"],
            2,
            "starts with '-'",
        ),
        (
            vec!["vm", "create", "--template", "nope"],
            3,
            "no domain template named \"nope\"",
        ),
        (
            vec!["vm", "create", "--template", "tiny", "--memory", "8"],
            2,
            "memory",
        ),
        (
            vec!["vm", "create", "--template", "tiny", "--memory", "99999999"],
            2,
            "memory",
        ),
        (
            vec!["vm", "create", "--template", "tiny", "--vcpus", "0"],
            2,
            "vcpus",
        ),
        (
            vec!["vm", "create", "--template", "tiny", "--vcpus", "1000"],
            2,
            "vcpus",
        ),
        (
            vec!["vm", "create", "--template", "tiny", "--name", "web-1"],
            4,
            "already exists",
        ),
        (
            vec!["vm", "create", "--template", "tiny", "--network", "nonet"],
            3,
            "network 'nonet' not found",
        ),
        (
            vec!["vm", "create", "--template", "tiny", "--disk-size", "5"],
            2,
            "has no disk",
        ),
        (
            vec!["vm", "create", "--template", "tiny", "--image", "rocky9"],
            2,
            "has no disk",
        ),
        (
            vec![
                "vm",
                "create",
                "--template",
                "tiny",
                "--ssh-key",
                "/nonexistent.pub",
            ],
            2,
            "/nonexistent.pub",
        ),
        (
            vec![
                "vm",
                "create",
                "--template",
                "tiny",
                "--user-data",
                "/nonexistent.yaml",
            ],
            2,
            "/nonexistent.yaml",
        ),
        (
            vec!["vm", "create", "--template", "tiny", "--set", "memory=64"],
            2,
            "use --memory",
        ),
        (
            vec!["vm", "create", "--template", "tiny", "--set", "colour=red"],
            2,
            "unknown domain template parameter",
        ),
        (vec!["vm", "start", "ghost"], 3, "vm 'ghost' not found"),
        (
            vec!["vm", "delete", "ghost", "--yes"],
            3,
            "vm 'ghost' not found",
        ),
        (vec!["net", "show", "ghost"], 3, "network 'ghost' not found"),
        (
            vec!["net", "ensure", "ghost"],
            3,
            "no network template 'ghost'",
        ),
        (vec!["vm", "delete", "web-1"], 2, "refusing without --yes"),
        (
            vec!["vm", "create", "--template", "tiny", "--template-dir", "/nonexistent"],
            3,
            "template dir /nonexistent (--template-dir or BOXVIRT_TEMPLATE_DIR) is not a directory",
        ),
    ];
    for (args, code, needle) in cases {
        let mut full = vec!["-c", uri.as_str()];
        full.extend(args.iter().copied());
        let run = boxvirt_in(d.path(), &full);
        assert_eq!(run.code, code, "{args:?}: {}", run.stderr);
        let line = run.one_line_error();
        assert!(line.contains(needle), "{args:?}: {line}");
        // Nothing half-made: not even the instance key in ./data/ssh.
        let left: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "{args:?} left {left:?}");
    }
}

#[test]
fn unreachable_uris_exit_5_naming_the_uri_and_next_step() {
    let d = tmp();
    let run = boxvirt_in(d.path(), &["vm", "list"]).expect_code(5);
    let line = run.one_line_error();
    assert!(
        line.contains("data/libvirt-run/libvirt-sock") && line.contains("boxvirt up"),
        "{line}"
    );
    let run = boxvirt_in(
        d.path(),
        &[
            "-c",
            "qemu+unix:///system?socket=/nonexistent/sock",
            "vm",
            "list",
        ],
    )
    .expect_code(5);
    assert!(run.one_line_error().contains("/nonexistent/sock"));
    // A socket file nobody listens on (a stale bind mount looks like this).
    let sock = d.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let uri = format!("qemu+unix:///system?socket={}", sock.display());
    let run = boxvirt_in(d.path(), &["-c", &uri, "vm", "list"]).expect_code(5);
    assert!(run.one_line_error().contains("refused"), "{}", run.stderr);
}

#[test]
fn malformed_user_template_names_file_line_and_column() {
    let d = tmp();
    std::fs::create_dir_all(d.path().join("tpl/domain")).unwrap();
    std::fs::write(
        d.path().join("tpl/domain/bad.xml"),
        "<domain type='qemu'>\n  <name>x</nam>\n</domain>\n",
    )
    .unwrap();
    let run = boxvirt_in(
        d.path(),
        &[
            "-c",
            &test_uri("node.xml"),
            "--template-dir",
            "tpl",
            "vm",
            "create",
            "--template",
            "bad",
        ],
    )
    .expect_code(1);
    let line = run.one_line_error();
    assert!(
        line.contains("tpl/domain/bad.xml") && line.contains("line 2, column"),
        "{line}"
    );
    // The same directory from the environment variable.
    let run = boxvirt_env(
        d.path(),
        &["template", "show", "bad"],
        &[("BOXVIRT_TEMPLATE_DIR", "tpl")],
    )
    .expect_code(1);
    assert!(run.one_line_error().contains("bad.xml"));
}

#[test]
fn dotenv_in_the_working_directory_sets_the_instance() {
    let d = tmp();
    std::fs::write(
        d.path().join(".env"),
        "BOXMAN_INSTANCE_NAME=lab2\nBOXMAN_DATA_DIR=./data-lab2\n",
    )
    .unwrap();
    let run = boxvirt_in(d.path(), &["vm", "list"]).expect_code(5);
    assert!(
        run.stderr.contains("data-lab2/libvirt-run/libvirt-sock")
            && run.stderr.contains("instance 'lab2'"),
        "{}",
        run.stderr
    );
}

#[test]
fn net_ensure_reports_changes_and_json() {
    let d = tmp();
    let uri = test_uri("node.xml");
    let run = boxvirt_in(d.path(), &["-c", &uri, "net", "ensure", "isolated"]).ok();
    assert_eq!(
        run.stdout.trim(),
        "network 'isolated': defined, started, set to autostart"
    );
    let run = boxvirt_in(
        d.path(),
        &["-c", &uri, "-o", "json", "net", "ensure", "default"],
    )
    .ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["changes"], serde_json::json!(["autostart-set"]));
}

#[test]
fn template_show_renders_with_escaping() {
    let d = tmp();
    let run = boxvirt_in(
        d.path(),
        &[
            "template",
            "show",
            "tiny",
            "--set",
            "cmdline=console=ttyS0 x=<&>",
        ],
    )
    .ok();
    assert!(
        run.stdout
            .contains("<cmdline>console=ttyS0 x=&lt;&amp;&gt;</cmdline>"),
        "{}",
        run.stdout
    );
    let run = boxvirt_in(d.path(), &["template", "show", "default"]).expect_code(2);
    assert!(run.one_line_error().contains("--kind"));
    boxvirt_in(
        d.path(),
        &["template", "show", "default", "--kind", "network"],
    )
    .ok();
}

#[test]
fn doctor_json_on_the_test_driver() {
    let d = tmp();
    let run = boxvirt_in(
        d.path(),
        &["-c", &test_uri("node.xml"), "doctor", "-o", "json"],
    );
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let ids: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for id in [
        "kvm-device",
        "cpu-virtualization",
        "net-tun",
        "vhost-net",
        "libvirt",
        "network-default",
        "storage-pool",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    assert_eq!(run.code == 0, v["ok"].as_bool().unwrap());
    // A network that is missing fails the run.
    let run = boxvirt_in(
        d.path(),
        &["-c", &test_uri("empty.xml"), "doctor", "-o", "json"],
    )
    .expect_code(1);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let net = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "network-default")
        .unwrap();
    assert_eq!(net["status"], "fail");
    assert_eq!(net["fix"], "boxvirt net ensure default");
}

/// Port 0 would let Docker pick a random port that boxvirt then waits on
/// forever: refused up front, from the flag and from the environment alike.
#[test]
fn port_zero_is_refused_before_anything_happens() {
    let d = tmp();
    for args in [
        &["up", "--ssh-port", "0"][..],
        &["status", "--libvirt-tcp-port", "0"][..],
    ] {
        let run = boxvirt_in(d.path(), args).expect_code(2);
        assert!(
            run.stderr.starts_with("error: invalid value '0'"),
            "{}",
            run.stderr
        );
    }
    let run = boxvirt_env(d.path(), &["up"], &[("BOXMAN_SSH_PORT", "0")]).expect_code(2);
    assert!(
        run.one_line_error()
            .contains("BOXMAN_SSH_PORT=\"0\" is not a TCP port"),
        "{}",
        run.stderr
    );
    let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
    assert!(left.is_empty(), "left {left:?}");
}

/// A reader that stops early (`| head -1`) ends boxvirt quietly with 0:
/// no panic, and no death by SIGPIPE (which stays ignored so that a libvirt
/// daemon going away mid-call is an error boxvirt can report).
#[test]
fn a_closed_stdout_pipe_ends_quietly() {
    use std::process::{Command, Stdio};
    let mut child = Command::new(bin())
        .args(["-c", "test:///default", "template", "show", "rocky9"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away before boxvirt writes
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "status {:?}: {stderr}",
        out.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A network with VMs on it is not deleted from under them unless --force.
#[test]
fn net_delete_refuses_a_network_in_use_unless_forced() {
    let d = tmp();
    let uri = test_uri("network-in-use.xml");
    let run =
        boxvirt_in(d.path(), &["-c", &uri, "net", "delete", "default", "--yes"]).expect_code(4);
    assert!(
        run.one_line_error()
            .contains("network 'default' is used by vm 'web-1' (running)")
            && run.stderr.contains("--force"),
        "{}",
        run.stderr
    );
    let run = boxvirt_in(
        d.path(),
        &["-c", &uri, "net", "delete", "default", "--yes", "--force"],
    )
    .ok();
    assert!(
        run.stderr.contains("deleted network 'default'"),
        "{}",
        run.stderr
    );
    let run = boxvirt_in(d.path(), &["-c", &uri, "net", "delete", "idle", "--yes"]).ok();
    assert!(
        run.stderr.contains("deleted network 'idle'"),
        "{}",
        run.stderr
    );
}
