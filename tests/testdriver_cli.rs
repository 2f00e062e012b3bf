//! Tier 2: the CLI against libvirt's test driver, one fixture per test.
//! Each process gets a fresh host from the fixture, so these check what one
//! command prints and how it fails.

mod common;

use common::*;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// The names in a JSON listing, in order.
fn names(listing: &serde_json::Value) -> Vec<&str> {
    listing
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect()
}

#[test]
fn vm_list_shows_fixture_domains_as_table_and_json() {
    let d = tmp();
    let vm = || Boxvirt::new(d.path()).uri(&test_uri("node.xml"));
    vm().args(["vm", "list"])
        .stdout_has("web-1")
        .stdout_has("db-1")
        .run();
    let v = vm().args(["vm", "list", "-o", "json"]).run().json();
    assert_eq!(names(&v), vec!["db-1", "web-1"]);
    assert_eq!(v[1]["vcpus"], 2);
    assert_eq!(v[1]["memory_mib"], 512);
    assert_eq!(v[1]["state"], "running");
}

#[test]
fn libvirt_default_uri_env_is_used_and_connect_flag_wins() {
    let d = tmp();
    let with_env = || {
        Boxvirt::new(d.path())
            .env("LIBVIRT_DEFAULT_URI", &test_uri("node.xml"))
            .args(["-o", "json"])
    };
    with_env().args(["vm", "list"]).stdout_has("web-1").run();
    with_env()
        .uri(&test_uri("empty.xml"))
        .args(["vm", "list"])
        .stdout("[]\n")
        .run();
}

/// `-c ""` (or an empty LIBVIRT_DEFAULT_URI) is "not given", not libvirt's
/// own default URI: the next source decides.
#[test]
fn an_empty_uri_counts_as_not_given() {
    let d = tmp();
    let v = Boxvirt::new(d.path())
        .uri("")
        .env("LIBVIRT_DEFAULT_URI", &test_uri("node.xml"))
        .args(["-o", "json", "vm", "list"])
        .run()
        .json();
    assert_eq!(names(&v), vec!["db-1", "web-1"]);
    for env in [&[][..], &[("LIBVIRT_DEFAULT_URI", "")][..]] {
        Boxvirt::new(d.path())
            .uri("")
            .envs(env)
            .args(["vm", "list"])
            .status(5)
            .error_has("data/libvirt-run/libvirt-sock")
            .run();
    }
}

/// Text that is no URI (a path, a bad port) stops before anything
/// connects: a usage error naming the value and where it came from.
#[test]
fn a_malformed_uri_is_a_usage_error_naming_flag_or_variable() {
    let d = tmp();
    Boxvirt::new(d.path())
        .uri("qemu+ssh://hv:22x/system")
        .args(["vm", "list"])
        .status(2)
        .error_has("--connect \"qemu+ssh://hv:22x/system\" is not a libvirt URI (bad port '22x'")
        .run();
    Boxvirt::new(d.path())
        .env("LIBVIRT_DEFAULT_URI", "/run/libvirt/libvirt-sock")
        .args(["vm", "list"])
        .status(2)
        .error_has("LIBVIRT_DEFAULT_URI=\"/run/libvirt/libvirt-sock\" is not a libvirt URI (it has no 'scheme://' and is not a uri_aliases name")
        .run();
}

/// A libvirt.conf alias reaches libvirt as it is: defined, it connects
/// (as a non-root user whose libvirt.conf lives in XDG_CONFIG_HOME);
/// undefined, the error says where aliases come from.
#[test]
fn a_libvirt_conf_alias_is_resolved_by_libvirt() {
    use std::os::unix::fs::PermissionsExt;
    let d = tmp();
    let conf = d.path().join("config/libvirt");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("libvirt.conf"),
        "uri_aliases = [ \"lab-alias=test:///default\" ]\n",
    )
    .unwrap();
    for dir in [d.path(), &d.path().join("config"), &conf] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (uid, gid) = common::nested::test_user();
    let (reuid, regid) = (format!("--reuid={uid}"), format!("--regid={gid}"));
    let as_user = ["setpriv", reuid.as_str(), regid.as_str(), "--clear-groups"];
    let config_home = d.path().join("config");
    let run = Boxvirt::new(d.path())
        .wrapped_in(as_user)
        .env("XDG_CONFIG_HOME", config_home.to_str().unwrap())
        .env("HOME", d.path().to_str().unwrap())
        .uri("lab-alias")
        .args(["-o", "json", "vm", "list"])
        .run();
    assert_eq!(row_named(&run.stdout, "test")["state"], "running");
    Boxvirt::new(d.path())
        .uri("no-such-alias")
        .args(["vm", "list"])
        .status(5)
        .error_has(
            "'no-such-alias' is not a URI, so libvirt looks it up in libvirt.conf's uri_aliases",
        )
        .run();
}

/// An empty listing is one line on stdout (or `[]`), not a header without
/// a closing border.
#[test]
fn empty_listings_say_so() {
    let d = tmp();
    let empty = || Boxvirt::new(d.path()).uri(&test_uri("empty.xml"));
    for (args, line) in [
        (&["vm", "list"][..], "no VMs\n"),
        (&["net", "list"][..], "no networks\n"),
    ] {
        empty().args(args.iter().copied()).stdout(line).run();
        empty()
            .args(args.iter().copied())
            .args(["-o", "json"])
            .stdout("[]\n")
            .run();
    }
    // The image cache alone (no libvirt): an empty cache directory.
    let cache = d.path().join("cache");
    let images = || {
        Boxvirt::new(d.path())
            .env("BOXVIRT_CACHE_DIR", cache.to_str().unwrap())
            .args(["image", "list", "--cache-only"])
    };
    images().stdout("no images\n").run();
    images().args(["-o", "json"]).stdout("[]\n").run();
    // `virsh` mirrors `virsh list --all`: a closed table with no rows.
    let run = empty().arg("virsh").run();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert!(lines[2].starts_with('└'), "{}", run.stdout);
}

/// Tables fit the width (no terminal here: $COLUMNS, else unlimited) by
/// wrapping; `-o json` keeps every text whole.
#[test]
fn doctor_fits_its_table_to_the_width_and_json_keeps_the_text() {
    let d = tmp();
    let doctor = |columns: Option<&str>| {
        let mut b = Boxvirt::new(d.path())
            .uri(&test_uri("node.xml"))
            .arg("doctor")
            .any_status();
        if let Some(c) = columns {
            b = b.env("COLUMNS", c);
        }
        b.run()
    };
    let widest = |run: &Run| run.stdout.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(
        widest(&doctor(Some("72"))) <= 72,
        "{}",
        doctor(Some("72")).stdout
    );
    // Given room, the same table is wider: the width is what wrapped it.
    let wide = doctor(Some("1000"));
    assert!(widest(&wide) > 100, "{}", wide.stdout);
    // The longest detail or fix, whole in JSON, is wrapped at 72 columns
    // and on one line when there is room.
    let json = Boxvirt::new(d.path())
        .uri(&test_uri("node.xml"))
        .args(["doctor", "-o", "json"])
        .any_status()
        .run()
        .json();
    let longest = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| [c["detail"].as_str().unwrap(), c["fix"].as_str().unwrap()])
        .max_by_key(|t| t.len())
        .unwrap()
        .to_string();
    assert!(longest.len() > 40, "{json}");
    assert!(!doctor(Some("72")).stdout.contains(&longest));
    assert!(wide.stdout.contains(&longest), "{}", wide.stdout);
    // Piped with no $COLUMNS: never wrapped, so grep finds whole texts.
    let piped = doctor(None);
    assert!(piped.stdout.contains(&longest), "{}", piped.stdout);
}

#[test]
fn vm_create_from_each_cloud_template_on_the_test_driver() {
    let d = tmp();
    for t in ["rocky9", "ubuntu24", "debian12"] {
        // The test driver has no upload streams (seed) and there is no
        // internet (image): a blank disk and no seed; the live tiers do the rest.
        let v = Boxvirt::new(d.path())
            .uri(&test_uri("node.xml"))
            .args(["-o", "json", "vm", "create", "--template", t])
            .args(["--memory", "1024", "--vcpus", "2"])
            .args(["--blank-disk", "--no-seed", "--start"])
            .run()
            .json();
        assert_eq!(v["name"], format!("{t}-1"));
        assert_eq!(v["domain_type"], "test");
        assert_eq!(v["volumes"][0], format!("{t}-1.qcow2"));
        assert_eq!(v["started"], true);
        // A DHCP reservation was planned in the fixture's range.
        assert!(v["ip"].as_str().unwrap().starts_with("192.168.122."), "{v}");
        // No --wait: no readiness report.
        assert!(v.get("ready").is_none(), "{v}");
    }
}

#[test]
fn vm_create_with_two_networks_gets_a_nic_and_an_address_on_each() {
    let d = tmp();
    let v = Boxvirt::new(d.path())
        .uri(&test_uri("two-networks.xml"))
        .args([
            "-o",
            "json",
            "vm",
            "create",
            "--template",
            "tiny",
            "--name",
            "duo",
        ])
        .args(["--no-seed", "--network", "data", "--network", "default"])
        .stderr_has("created vm 'duo' from template tiny (test, network data, ip 10.77.0.")
        .stderr_has(", also on default (192.168.122.")
        .run()
        .json();
    let nics = v["nics"].as_array().unwrap();
    assert_eq!(nics.len(), 2, "{v}");
    // The first network is the primary: the VM's ip, network and mac.
    assert_eq!(nics[0]["network"], "data");
    assert_eq!(v["network"], "data");
    assert_eq!(v["ip"], nics[0]["ip"]);
    assert_eq!(v["mac"], nics[0]["mac"]);
    assert!(
        nics[0]["ip"].as_str().unwrap().starts_with("10.77.0."),
        "{v}"
    );
    assert_eq!(nics[1]["network"], "default");
    assert!(
        nics[1]["ip"].as_str().unwrap().starts_with("192.168.122."),
        "{v}"
    );
    // A MAC per (VM, network): the same on every create, never shared.
    assert_eq!(
        nics[0]["mac"],
        boxvirt::vm::identity::nic_mac("duo", "data", 0)
    );
    assert_eq!(
        nics[1]["mac"],
        boxvirt::vm::identity::nic_mac("duo", "default", 1)
    );
    assert_ne!(nics[0]["mac"], nics[1]["mac"]);
}

#[test]
fn default_name_skips_names_in_use() {
    let d = tmp();
    Boxvirt::new(d.path())
        .uri(&test_uri("node.xml"))
        .args(["-o", "json", "vm", "create", "--template", "tiny"])
        .args(["--name", "web-2", "--no-seed"])
        .stdout_has("\"web-2\"")
        .run();
}

#[test]
fn bad_input_gets_one_line_and_the_documented_exit_code() {
    let d = tmp();
    let long = "x".repeat(65);
    let create = ["vm", "create", "--template", "tiny"];
    let cases: Vec<(Vec<&str>, i32, &str)> =
        vec![
        (vec!["--name", ""], 2, "is empty"),
        (vec!["--name", &long], 2, "longer than 64"),
        (vec!["--name", "a/b"], 2, "'/'"),
        (vec!["--name", "a'b"], 2, "contains"),
        (vec!["--name", "a<b"], 2, "'<'"),
        (vec!["--name", "a b"], 2, "' '"),
        (vec!["--name=-x"], 2, "starts with '-'"),
        (vec!["--memory", "8"], 2, "memory"),
        (vec!["--memory", "99999999"], 2, "memory"),
        (vec!["--vcpus", "0"], 2, "vcpus"),
        (vec!["--vcpus", "1000"], 2, "vcpus"),
        (vec!["--name", "web-1"], 4, "already exists"),
        (vec!["--network", "nonet"], 3, "network 'nonet' not found"),
        (
            vec!["--network", "default", "--network", "default"],
            2,
            "network 'default' is given twice",
        ),
        (
            vec!["--network", "default", "--network", "nonet"],
            3,
            "network 'nonet' not found",
        ),
        (
            vec![
                "--network", "n1", "--network", "n2", "--network", "n3", "--network", "n4",
                "--network", "n5", "--network", "n6", "--network", "n7", "--network", "n8",
                "--network", "n9",
            ],
            2,
            "9 networks given; a VM gets at most 8 NICs",
        ),
        (vec!["--disk-size", "5"], 2, "has no disk"),
        (vec!["--image", "rocky9"], 2, "has no disk"),
        (vec!["--ssh-key", "/nonexistent.pub"], 2, "/nonexistent.pub"),
        (
            vec!["--user-data", "/nonexistent.yaml"],
            2,
            "/nonexistent.yaml",
        ),
        (vec!["--set", "memory=64"], 2, "use --memory"),
        (
            vec!["--set", "colour=red"],
            2,
            "unknown domain template parameter",
        ),
        (
            vec!["--template-dir", "/nonexistent"],
            3,
            "template dir /nonexistent (--template-dir or BOXVIRT_TEMPLATE_DIR) is not a directory",
        ),
    ];
    let mut all: Vec<(Vec<&str>, i32, &str)> = cases
        .into_iter()
        .map(|(extra, code, needle)| ([&create[..], &extra].concat(), code, needle))
        .collect();
    all.extend([
        (
            vec!["vm", "create", "--template", "nope"],
            3,
            "no domain template named \"nope\"",
        ),
        (vec!["vm", "start", "ghost"], 3, "vm 'ghost' not found"),
        (
            vec!["vm", "delete", "ghost", "--yes"],
            3,
            "vm 'ghost' not found",
        ),
        (
            vec!["vm", "wait", "ghost", "--allow-cloud-init-errors"],
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
    ]);
    for (args, code, needle) in all {
        Boxvirt::new(d.path())
            .uri(&test_uri("node.xml"))
            .args(args)
            .status(code)
            .error_has(needle)
            .run();
        // Nothing half-made: not even the instance key in ./data/ssh.
        let left: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "{needle}: left {left:?}");
    }
}

#[test]
fn unreachable_uris_exit_5_naming_the_uri_and_next_step() {
    let d = tmp();
    let list = |uri: Option<&str>| {
        let b = Boxvirt::new(d.path());
        match uri {
            Some(u) => b.uri(u),
            None => b,
        }
        .args(["vm", "list"])
        .status(5)
    };
    list(None)
        .error_has("data/libvirt-run/libvirt-sock")
        .error_has("boxvirt up")
        .run();
    list(Some("qemu+unix:///system?socket=/nonexistent/sock"))
        .error_has("/nonexistent/sock")
        .run();
    // A socket file nobody listens on (a stale bind mount looks like this).
    let sock = d.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let uri = format!("qemu+unix:///system?socket={}", sock.display());
    list(Some(&uri)).error_has("refused").run();
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
    Boxvirt::new(d.path())
        .uri(&test_uri("node.xml"))
        .args(["--template-dir", "tpl", "vm", "create", "--template", "bad"])
        .status(1)
        .error_has("tpl/domain/bad.xml")
        .error_has("line 2, column")
        .run();
    // The same directory from the environment variable.
    Boxvirt::new(d.path())
        .env("BOXVIRT_TEMPLATE_DIR", "tpl")
        .args(["template", "show", "bad"])
        .status(1)
        .error_has("bad.xml")
        .run();
}

#[test]
fn dotenv_in_the_working_directory_sets_the_instance() {
    let d = tmp();
    std::fs::write(
        d.path().join(".env"),
        "BOXMAN_INSTANCE_NAME=lab2\nBOXMAN_DATA_DIR=./data-lab2\n",
    )
    .unwrap();
    Boxvirt::new(d.path())
        .args(["vm", "list"])
        .status(5)
        .stderr_has("data-lab2/libvirt-run/libvirt-sock")
        .stderr_has("instance 'lab2'")
        .run();
}

#[test]
fn net_ensure_reports_changes_and_json() {
    let d = tmp();
    let uri = test_uri("node.xml");
    Boxvirt::new(d.path())
        .uri(&uri)
        .args(["net", "ensure", "isolated"])
        .stdout("network 'isolated': defined, started, set to autostart (64 address slots)\n")
        .run();
    let v = Boxvirt::new(d.path())
        .uri(&uri)
        .args(["-o", "json", "net", "ensure", "isolated", "--slots", "3"])
        .run()
        .json();
    assert_eq!(v["slots"], 3);
    Boxvirt::new(d.path())
        .uri(&uri)
        .args(["net", "ensure", "isolated", "--slots", "9999"])
        .status(2)
        .error_has("--slots 9999 is more than the 253 free addresses")
        .run();
    let v = Boxvirt::new(d.path())
        .uri(&uri)
        .args(["-o", "json", "net", "ensure", "default"])
        .run()
        .json();
    // The fixture's default network has no block and no VM on it: migrated.
    assert_eq!(
        v["changes"],
        serde_json::json!(["slots-added", "autostart-set"])
    );
    assert_eq!(v["slots"], 64);
}

#[test]
fn template_show_renders_with_escaping() {
    let d = tmp();
    let show = || Boxvirt::new(d.path()).args(["template", "show"]);
    show()
        .args(["tiny", "--set", "cmdline=console=ttyS0 x=<&>"])
        .stdout_has("<cmdline>console=ttyS0 x=&lt;&amp;&gt;</cmdline>")
        .run();
    show().arg("default").status(2).error_has("--kind").run();
    show().args(["default", "--kind", "network"]).run();
}

#[test]
fn doctor_json_on_the_test_driver() {
    let d = tmp();
    let doctor = |fixture: &str| {
        Boxvirt::new(d.path())
            .uri(&test_uri(fixture))
            .args(["doctor", "-o", "json"])
    };
    let run = doctor("node.xml").any_status().run();
    let v = run.json();
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
    let v = doctor("empty.xml").status(1).run().json();
    let net = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "network-default")
        .unwrap();
    assert_eq!(net["status"], "fail");
    assert_eq!(net["fix"], "boxvirt net ensure default");
}

/// The cloud-init verdict only matters when waiting: clap's usage error.
#[test]
fn allow_cloud_init_errors_needs_wait_on_create() {
    let d = tmp();
    Boxvirt::new(d.path())
        .uri(&test_uri("node.xml"))
        .args(["vm", "create", "--template", "tiny"])
        .arg("--allow-cloud-init-errors")
        .status(2)
        .stderr_has("required arguments were not provided:\n  --wait")
        .run();
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
        let run = Boxvirt::new(d.path())
            .args(args.iter().copied())
            .status(2)
            .run();
        assert!(
            run.stderr.starts_with("error: invalid value '0'"),
            "{}",
            run.stderr
        );
    }
    Boxvirt::new(d.path())
        .env("BOXMAN_SSH_PORT", "0")
        .arg("up")
        .status(2)
        .error_has("BOXMAN_SSH_PORT=\"0\" is not a TCP port")
        .run();
    let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
    assert!(left.is_empty(), "left {left:?}");
}

/// A reader that stops early (`| head -1`) ends boxvirt quietly with 0:
/// no panic, and no death by SIGPIPE (which stays ignored so that a libvirt
/// daemon going away mid-call is an error boxvirt can report).
#[test]
fn a_closed_stdout_pipe_ends_quietly() {
    let d = tmp();
    Boxvirt::new(d.path())
        .uri("test:///default")
        .args(["template", "show", "rocky9"])
        .stdout_closed()
        .run();
}

/// A network with VMs on it is not deleted from under them unless --force.
#[test]
fn net_delete_refuses_a_network_in_use_unless_forced() {
    let d = tmp();
    let delete = |name: &str| {
        Boxvirt::new(d.path())
            .uri(&test_uri("network-in-use.xml"))
            .args(["net", "delete", name, "--yes"])
    };
    delete("default")
        .status(4)
        .error_has("network 'default' is used by vm 'web-1' (running)")
        .stderr_has("--force")
        .run();
    delete("default")
        .arg("--force")
        .stderr_has("deleted network 'default'")
        .run();
    delete("idle").stderr_has("deleted network 'idle'").run();
}
