//! Tier 3: `env plan`, `env list` and `env show` against the REAL libvirtd
//! (tests/harness/live-libvirtd.sh): the environment mark written into a
//! domain's metadata the way apply will write it, read back through the
//! real daemon; the host's real memory. Domains are only defined (never
//! started), with names unique to this test, and undefined at the end.

mod common;

use std::collections::BTreeMap;

use boxvirt::env::mark::EnvMark;
use boxvirt::libvirt::Libvirt;
use common::*;

/// Undefines the domain when dropped, so a failed assertion leaves nothing.
struct Defined<'a> {
    conn: &'a Libvirt,
    name: String,
}

impl Drop for Defined<'_> {
    fn drop(&mut self) {
        let _ = self.conn.undefine_domain(&self.name);
    }
}

/// A shut-off domain with `memory` MiB and, when given, an environment mark.
fn define<'a>(conn: &'a Libvirt, name: &str, memory: u64, mark: Option<&EnvMark>) -> Defined<'a> {
    let xml = format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>{memory}</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>"
    );
    conn.define_domain(&xml).unwrap();
    let guard = Defined {
        conn,
        name: name.to_string(),
    };
    if let Some(mark) = mark {
        let meta = format!("<vm template='tiny'>{}</vm>", mark.to_xml());
        conn.set_domain_metadata(name, &meta).unwrap();
    }
    guard
}

fn config(memory: u64) -> BTreeMap<String, String> {
    [
        ("memory", memory.to_string()),
        ("template", "tiny".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[test]
fn plan_list_and_show_read_marks_from_the_real_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let uri = live_uri();
    let conn = common::live_conn();
    let env = format!("envlive{}", std::process::id());
    let mark = EnvMark {
        env: env.clone(),
        digest: "d".repeat(64),
        config: config(64),
    };
    let kept = format!("{env}-a");
    let old = format!("{env}-b");
    let plain = format!("{env}-plain");
    let _a = define(&conn, &kept, 64, Some(&mark));
    let _b = define(
        &conn,
        &old,
        64,
        Some(&EnvMark {
            config: config(32),
            ..mark.clone()
        }),
    );
    let _p = define(&conn, &plain, 128, None);

    // a stays, b changes (made with 32 MiB), c is new; plain is not ours.
    let file = format!(
        "name: {env}\ndefaults: {{template: tiny, memory: 64}}\nvms:\n  - {{name: {kept}}}\n  - {{name: {old}}}\n  - {{name: {env}-c}}\n"
    );
    std::fs::write(dir.path().join("boxvirt.yaml"), &file).unwrap();
    let plan = Boxvirt::new(dir.path())
        .uri(&uri)
        .args(["env", "plan", "-o", "json"])
        .run()
        .json();
    let host = &plan["hosts"][0];
    assert!(host["total_mib"].as_u64().unwrap() > 0, "{plan}");
    assert!(host["free_mib"].as_u64().unwrap() > 0, "{plan}");
    let actions: Vec<String> = host["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a["action"].as_str().unwrap(),
                a["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            format!("keep {kept}"),
            format!("change {old}"),
            format!("create {env}-c")
        ]
    );
    assert_eq!(
        host["actions"][1]["detail"],
        "memory 32 -> 64; needs replace"
    );

    // The plain VM's name in the file: a conflict, unless adopted.
    std::fs::write(
        dir.path().join("boxvirt.yaml"),
        format!("{file}  - {{name: {plain}}}\n"),
    )
    .unwrap();
    Boxvirt::new(dir.path())
        .uri(&uri)
        .args(["env", "plan"])
        .status(4)
        .error_has(&format!(
            "vm '{plain}' already exists on host 'current' outside environment '{env}'"
        ))
        .run();
    Boxvirt::new(dir.path())
        .uri(&uri)
        .args(["env", "plan", "--adopt"])
        .stdout_has("adopt  │ memory 128 -> 64; needs replace")
        .run();

    let list = Boxvirt::new(dir.path())
        .uri(&uri)
        .args(["env", "list", "-o", "json"])
        .run()
        .json();
    let ours = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == env.as_str())
        .unwrap_or_else(|| panic!("{env} not in {list}"));
    assert_eq!(ours["vms"], serde_json::json!([kept, old]));
    assert_eq!(ours["active"], 0);
    let show = Boxvirt::new(dir.path())
        .uri(&uri)
        .args(["env", "show", &env, "-o", "json"])
        .run()
        .json();
    assert_eq!(show[1]["config"]["memory"], "32");
    assert_eq!(show[0]["digest"], "d".repeat(64));
}

/// `instance:` hosts connect to `<data_dir>/libvirt-run/libvirt-sock`, the
/// data dir taken relative to the file. Here that socket is a link to the
/// live daemon's, standing in for a nested instance's.
#[test]
fn instance_hosts_connect_through_their_data_dirs_socket() {
    let dir = tempfile::tempdir().unwrap();
    let uri = live_uri();
    let daemon_socket = boxvirt::uri::Uri::parse(&uri)
        .expect("the live URI parses")
        .param_path("socket")
        .unwrap_or_else(|| std::path::PathBuf::from("/run/libvirt/libvirt-sock"));
    let run_dir = dir.path().join("labs/d1/libvirt-run");
    std::fs::create_dir_all(&run_dir).unwrap();
    std::os::unix::fs::symlink(&daemon_socket, run_dir.join("libvirt-sock")).unwrap();
    std::fs::write(
        dir.path().join("labs/lab.yaml"),
        "name: instlab\nhosts:\n  one: {instance: first, data_dir: d1}\n  two: {instance: second, data_dir: d2}\ndefaults: {template: tiny}\nvms:\n  - {name: instlab-a, host: one}\n",
    )
    .unwrap();
    // d2 has no socket: that host is unreachable, named, with how to start it.
    Boxvirt::new(dir.path())
        .args(["env", "plan", "-f", "labs/lab.yaml"])
        .status(5)
        .error_has("host 'two' is unreachable: cannot reach libvirt at qemu+unix:///system?socket=")
        .stderr_has("/labs/d2/libvirt-run/libvirt-sock (no socket at ")
        .stderr_has("run 'boxvirt up --instance second --data-dir ")
        .run();
    std::fs::create_dir_all(dir.path().join("labs/d2/libvirt-run")).unwrap();
    std::os::unix::fs::symlink(
        &daemon_socket,
        dir.path().join("labs/d2/libvirt-run/libvirt-sock"),
    )
    .unwrap();
    let plan = Boxvirt::new(dir.path())
        .args(["env", "plan", "-f", "labs/lab.yaml", "-o", "json"])
        .run()
        .json();
    let want = format!(
        "qemu+unix:///system?socket={}/labs/d1/libvirt-run/libvirt-sock",
        dir.path().display()
    );
    assert_eq!(plan["hosts"][0]["host"], "one");
    assert_eq!(plan["hosts"][0]["uri"], want.as_str());
    assert_eq!(plan["hosts"][0]["actions"][0]["name"], "instlab-a");
    assert_eq!(plan["hosts"][0]["actions"][0]["action"], "create");
    assert_eq!(plan["hosts"][1]["actions"], serde_json::json!([]));
}
