//! Tier 4: one environment on two hosts. Two nested instances on this
//! machine, each with its own data dir and `--auto-ports`, stand in for
//! two hypervisors; the file names them with `instance:` and `data_dir:`
//! (relative to the file). Plan, a parallel apply that waits for every VM,
//! a second apply that changes nothing, one ssh config reaching a VM on
//! each host through that host's jump host, and a destroy that removes the
//! environment from both hosts and leaves a VM and a network it did not
//! make.
//!
//! Requires (and FAILS without): a Docker engine (tests/harness/start-dockerd.sh),
//! the base image (tests/harness/base-image.sh) and the tiny guest
//! (tests/harness/build-tiny-guest.sh). Instances are `e2e-env-left` and
//! `e2e-env-right` in a temp dir with a temp HOME; dropping the test's
//! [`Pair`] removes their containers.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::nested::{docker, free_port};
use common::{row_named, Run};

const IMAGE: &str = "boxvirt/nested-host:debian";
const BASE_IMAGE: &str = "debian:bookworm-slim";
const ENV: &str = "e2e-pair";

/// The environment: a NAT network on both hosts, two VMs pinned left and
/// one right. The network's subnet differs from the nested hosts' own
/// 'default' network, which stays up beside it.
const FILE: &str = "name: e2e-pair
hosts:
  left:  {instance: e2e-env-left,  data_dir: data-left}
  right: {instance: e2e-env-right, data_dir: data-right}
networks:
  lan: {template: default, cidr: 10.77.0.0/24}
defaults: {template: tiny, networks: [lan]}
vms:
  - name: web
    count: 2
    host: left
  - name: db
    host: right
";

/// The temp dir both instances (and the file) live in; removes their
/// containers when dropped, so a failed assertion leaves nothing running.
struct Pair {
    work: tempfile::TempDir,
}

impl Pair {
    fn new() -> Pair {
        let work = tempfile::Builder::new()
            .prefix("boxvirt-env-pair-")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(work.path().join("home")).unwrap();
        for side in ["left", "right"] {
            // A leftover of an interrupted run would make `up` a no-op.
            docker(&["rm", "-f", &format!("boxman-libvirt-e2e-env-{side}")]);
        }
        Pair { work }
    }

    fn dir(&self) -> &Path {
        self.work.path()
    }

    /// boxvirt in the work dir with the test's HOME and the suite's build cache.
    fn boxvirt(&self, args: &[&str]) -> Run {
        common::Boxvirt::new(self.dir())
            .env("HOME", self.dir().join("home").to_str().unwrap())
            .env("BOXVIRT_CACHE_DIR", common::build_cache().to_str().unwrap())
            .args(args.iter().copied())
            .any_status()
            .run()
    }

    /// boxvirt against one instance (`left` or `right`); asserts exit 0.
    fn on(&self, side: &str, args: &[&str]) -> Run {
        let instance = format!("e2e-env-{side}");
        let data = format!("data-{side}");
        let mut all = vec!["--instance", &instance, "--data-dir", &data];
        all.extend_from_slice(args);
        self.boxvirt(&all).ok()
    }

    /// `env SUB -f FILE ARGS` in JSON; asserts exit 0.
    fn env(&self, sub: &str, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["-o", "json", "env", sub, "-f", "pair.yaml"];
        all.extend_from_slice(args);
        self.boxvirt(&all).ok().json()
    }

    fn names(&self, side: &str, what: &str) -> Vec<String> {
        let rows = self.on(side, &["-o", "json", what, "list"]).json();
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// Pool 'default' of one host, listed by the real virsh.
    fn volumes(&self, side: &str) -> String {
        let socket = self
            .dir()
            .join(format!("data-{side}/libvirt-run/libvirt-sock"));
        let out = Command::new("virsh")
            .arg("-c")
            .arg(format!("qemu+unix:///system?socket={}", socket.display()))
            .args(["vol-list", "default"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for side in ["left", "right"] {
            docker(&["rm", "-f", &format!("boxman-libvirt-e2e-env-{side}")]);
        }
    }
}

/// The actions of one host in `env plan -o json`: (object, name, action).
fn host_actions(plan: &serde_json::Value, host: &str) -> Vec<(String, String, String)> {
    let h = plan["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == host)
        .unwrap_or_else(|| panic!("no host {host} in {plan:#}"));
    let s = |v: &serde_json::Value| v.as_str().unwrap().to_string();
    h["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (s(&a["object"]), s(&a["name"]), s(&a["action"])))
        .collect()
}

fn triples(items: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    items
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

#[test]
fn nested_env_on_two_hosts() {
    assert!(
        docker(&["info"]),
        "no Docker engine answers: run tests/harness/start-dockerd.sh first"
    );
    assert!(
        docker(&["image", "inspect", BASE_IMAGE]) || docker(&["image", "inspect", IMAGE]),
        "neither {BASE_IMAGE} nor {IMAGE} is present: run tests/harness/base-image.sh first"
    );
    common::tiny_dir();
    let pair = Pair::new();

    // Two hosts, each with the tiny guest in its pool; left already has a
    // network and a VM of its own, which the environment must not touch.
    // Both come up at once from the same free ssh port: one of them loses
    // it to the other between its check and its start, and must move on
    // to the next free port (--auto-ports) instead of failing.
    let port = free_port(24000).to_string();
    std::thread::scope(|s| {
        for side in ["left", "right"] {
            let (pair, port) = (&pair, &port);
            s.spawn(move || pair.on(side, &["up", "--auto-ports", "--ssh-port", port]));
        }
    });
    let ports: Vec<String> = ["left", "right"]
        .iter()
        .map(|side| pair.on(side, &["-o", "json", "status"]).json()["sshd"]["port"].to_string())
        .collect();
    assert_ne!(ports[0], ports[1], "two instances on one ssh port");
    for side in ["left", "right"] {
        pair.on(side, &["image", "build", "tiny"]);
    }
    pair.on("left", &["net", "ensure", "default"]);
    pair.on(
        "left",
        &[
            "vm",
            "create",
            "--template",
            "tiny",
            "--name",
            "keep-1",
            "--network",
            "default",
            "--no-seed",
        ],
    );
    std::fs::write(pair.dir().join("pair.yaml"), FILE).unwrap();

    // plan: per host, what apply would make there.
    let plan = pair.env("plan", &[]);
    assert_eq!(
        host_actions(&plan, "left"),
        triples(&[
            ("network", "lan", "create"),
            ("vm", "web-1", "create"),
            ("vm", "web-2", "create"),
        ]),
        "{plan:#}"
    );
    assert_eq!(
        host_actions(&plan, "right"),
        triples(&[("network", "lan", "create"), ("vm", "db", "create")]),
        "{plan:#}"
    );

    // apply: everything made and ready on its host.
    let applied = pair.env("apply", &["--parallel", "4", "--wait", "--timeout", "900"]);
    assert_eq!(applied["changed"], true, "{applied:#}");
    for (vm, host) in [("web-1", "left"), ("web-2", "left"), ("db", "right")] {
        let row = row_named(&applied["objects"].to_string(), vm);
        assert_eq!(
            (row["host"].as_str(), row["state"].as_str()),
            (Some(host), Some("ready")),
            "{applied:#}"
        );
    }
    assert_eq!(pair.names("left", "vm"), ["keep-1", "web-1", "web-2"]);
    assert_eq!(pair.names("right", "vm"), ["db"]);

    // A second apply changes nothing.
    let again = pair.env("apply", &["--parallel", "4", "--wait"]);
    assert_eq!(again["changed"], false, "{again:#}");
    for o in again["objects"].as_array().unwrap() {
        assert_eq!(o["action"], "unchanged", "{again:#}");
    }

    // One ssh config for both hosts, each VM through its own jump host.
    let conf = pair
        .boxvirt(&["env", "ssh-config", ENV, "-f", "pair.yaml"])
        .ok()
        .stdout;
    let conf_file = pair.dir().join("pair.ssh.conf");
    std::fs::write(&conf_file, &conf).unwrap();
    for (vm, side) in [("web-1", "left"), ("db", "right")] {
        assert!(
            conf.contains(&format!("-W %h:%p boxman-e2e-env-{side}")),
            "{conf}"
        );
        let out = ssh(&conf_file, vm);
        assert_eq!(out.trim(), vm);
    }

    // destroy: the environment goes from both hosts; keep-1 and 'default' stay.
    let destroyed = pair.env("destroy", &["-y"]);
    assert_eq!(destroyed["failed"], 0, "{destroyed:#}");
    assert_eq!(pair.names("left", "vm"), ["keep-1"]);
    assert!(pair.names("right", "vm").is_empty());
    for side in ["left", "right"] {
        let nets = pair.names(side, "net");
        assert!(!nets.iter().any(|n| n == "lan"), "{side}: {nets:?}");
        let vols = pair.volumes(side);
        for vm in ["web-1", "web-2", "db"] {
            assert!(!vols.contains(&format!("{vm}.qcow2")), "{side}: {vols}");
            assert!(!vols.contains(&format!("{vm}-seed.img")), "{side}: {vols}");
        }
    }
    assert!(pair.names("left", "net").iter().any(|n| n == "default"));
    let nothing = pair
        .boxvirt(&["env", "destroy", "-f", "pair.yaml", "-y"])
        .ok();
    assert!(
        nothing.stderr.contains("has nothing on its hosts"),
        "{nothing:?}"
    );

    // Containers and data go; the image stays for other tests.
    for side in ["left", "right"] {
        pair.on(side, &["clean", "containers", "--yes"]);
        pair.on(side, &["clean", "data", "--yes"]);
    }
}

/// `ssh -F CONF HOST hostname` as the test's user; the output.
fn ssh(conf: &PathBuf, host: &str) -> String {
    let out = Command::new("ssh")
        .arg("-F")
        .arg(conf)
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=30",
            host,
            "hostname",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh to {host}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
