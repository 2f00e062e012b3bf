//! `boxvirt env plan` end to end on libvirt's test driver: the file's
//! errors with file:line:col and their exit codes, the plan's table and
//! JSON against hosts holding environment marks, placement over two
//! hosts, and an unreachable host (exit 5).

mod common;

use std::path::Path;

use common::*;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// `test:///ABS/tests/fixtures/env/NAME`.
fn env_uri(name: &str) -> String {
    test_uri(&format!("env/{name}"))
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// `host: action name` lines of a JSON plan.
fn actions(plan: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for h in plan["hosts"].as_array().unwrap() {
        for a in h["actions"].as_array().unwrap() {
            out.push(format!(
                "{}: {} {} {}",
                h["host"].as_str().unwrap(),
                a["action"].as_str().unwrap(),
                a["object"].as_str().unwrap(),
                a["name"].as_str().unwrap()
            ));
        }
    }
    out
}

#[test]
fn plan_reads_the_default_file_and_prints_a_table() {
    let dir = tmp();
    write(
        dir.path(),
        "boxvirt.yaml",
        "name: lab\nnetworks:\n  default: {template: default}\n  iso: {template: isolated, cidr: 10.10.0.0/24}\ndefaults: {template: tiny}\nvms:\n  - {name: node, count: 2, networks: [default, iso]}\n",
    );
    let run = Boxvirt::new(dir.path())
        .uri(&test_uri("node.xml"))
        .args(["env", "plan"])
        .stdout_has("│ current │ network │ default │ keep   │")
        .stdout_has("│ current │ network │ iso     │ create │ template isolated, 10.10.0.0/24")
        .stdout_has("│ current │ vm      │ node-1  │ create │ tiny, 256 MiB, on default, iso")
        .stdout_has("│ current │ vm      │ node-2  │ create │")
        .run();
    assert!(
        run.stdout
            .ends_with("environment 'lab': 3 to create, 0 to change, 0 to delete, 1 unchanged\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn plan_against_marked_domains_keeps_changes_and_deletes() {
    let dir = tmp();
    let run = Boxvirt::new(dir.path())
        .uri(&env_uri("node-lab.xml"))
        .args(["env", "plan", "-f"])
        .arg(fixture("env/app.yaml").to_str().unwrap())
        .args(["-o", "json"])
        .run();
    let plan = run.json();
    assert_eq!(
        actions(&plan),
        [
            "current: keep network default",
            "current: keep vm app-1",
            "current: change vm app-2",
            "current: delete vm old-1",
        ]
    );
    assert_eq!(plan["env"], "lab");
    assert_eq!(plan["digest"].as_str().unwrap().len(), 64);
    let host = &plan["hosts"][0];
    assert_eq!(host["total_mib"], 8192);
    let app2 = &host["actions"][2];
    assert_eq!(
        app2["changes"],
        serde_json::json!([{"field": "memory", "now": "128", "wanted": "256"}])
    );
    assert_eq!(app2["detail"], "memory 128 -> 256; needs replace");
    assert_eq!(
        plan["summary"],
        serde_json::json!({"create": 0, "keep": 2, "change": 1, "adopt": 0, "delete": 1, "converged": false})
    );
}

#[test]
fn a_converged_environment_says_so() {
    let dir = tmp();
    write(
        dir.path(),
        "prod.yaml",
        "name: prod\nvms:\n  - {name: prod-db, template: tiny, memory: 1024}\n",
    );
    Boxvirt::new(dir.path())
        .uri(&env_uri("node-lab.xml"))
        .args(["env", "plan", "-f", "prod.yaml"])
        .stdout_has("│ current │ vm   │ prod-db │ keep   │ tiny, 1024 MiB │")
        .stdout_has("environment 'prod' is up to date: nothing to do")
        .run();
    let plan = Boxvirt::new(dir.path())
        .uri(&env_uri("node-lab.xml"))
        .args(["env", "plan", "-f", "prod.yaml", "-o", "json"])
        .run()
        .json();
    assert_eq!(plan["summary"]["converged"], true);
}

#[test]
fn file_errors_name_file_line_and_column_with_their_exit_codes() {
    let dir = tmp();
    let uri = test_uri("node.xml");
    let plan = |file: &str| {
        Boxvirt::new(dir.path())
            .uri(&uri)
            .args(["env", "plan", "-f", file])
    };
    plan("nope.yaml")
        .status(3)
        .error_has(
            "nope.yaml: no such file; write one (see README \"Environments\") or pass -f FILE",
        )
        .run();
    Boxvirt::new(dir.path())
        .uri(&uri)
        .args(["env", "plan"])
        .status(3)
        .error_has("boxvirt.yaml: no such file")
        .run();
    let cases = [
        (
            "name: lab\nvms:\n  - name: a\n    template: tiny\n    memroy: 5\n",
            "error: lab.yaml:5:5: unknown field 'memroy', expected one of 'name', 'count', 'host', ",
        ),
        (
            "name: lab\nvms:\n  - {name: a, template: tiny, memory: lots}\n",
            "error: lab.yaml:3:39: invalid type: string \"lots\", expected u64",
        ),
        (
            "name: lab\nvms:\n  - name: \"a\n",
            "error: lab.yaml:4:1: found unexpected end of stream",
        ),
        (
            "name: lab\ndefaults: {template: tiny}\nvms:\n  - {name: n, count: 2}\n  - {name: n-2}\n",
            "error: lab.yaml:5:12: vm name 'n-2' is also made by vms[0] at line 4",
        ),
        (
            "name: lab\ndefaults: {template: tiny}\nvms:\n  - name: n\n    count: 0\n",
            "error: lab.yaml:5:12: count 0 for vm 'n' is out of range; use 1 to 100",
        ),
        (
            "name: lab\ndefaults: {template: tiny}\nvms:\n  - {name: n, count: 101}\n",
            "error: lab.yaml:4:22: count 101 for vm 'n' is out of range",
        ),
        (
            "name: lab\ndefaults: {template: tiny}\nvms:\n  - {name: 'a:b'}\n",
            "error: lab.yaml:4:12: invalid vm name \"a:b\": it contains ':'",
        ),
        (
            "name: lab\ndefaults: {template: tiny}\nvms:\n  - {name: a, networks: [mgmt]}\n",
            "error: lab.yaml:4:26: vm 'a' names network 'mgmt', which is not declared under networks:",
        ),
        (
            "name: lab\ndefaults: {template: tiny}\nvms:\n  - {name: a, host: far}\n",
            "error: lab.yaml:4:21: vm 'a' names host 'far', which is not declared under hosts:",
        ),
        (
            "name: lab\nvms:\n  - {name: a, template: centos}\n",
            "error: lab.yaml:3:25: no domain template named \"centos\"",
        ),
    ];
    for (text, want) in cases {
        write(dir.path(), "lab.yaml", text);
        let run = plan("lab.yaml").status(2).run();
        let line = run.one_line_error().to_string();
        assert!(line.starts_with(want), "{text:?}\nwant {want}\ngot  {line}");
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
}

#[test]
fn names_taken_outside_the_environment_conflict_unless_adopted() {
    let dir = tmp();
    write(
        dir.path(),
        "lab.yaml",
        "name: lab\ndefaults: {template: tiny}\nvms:\n  - name: web-1\n",
    );
    let plan = || {
        Boxvirt::new(dir.path())
            .uri(&env_uri("node-lab.xml"))
            .args(["env", "plan", "-f", "lab.yaml"])
    };
    plan()
        .status(4)
        .error_has("vm 'web-1' already exists on host 'current' outside environment 'lab'; rename it in lab.yaml, delete it, or pass --adopt to take it over")
        .run();
    plan()
        .arg("--adopt")
        .stdout_has("│ current │ vm   │ web-1 │ adopt  │ memory 512 -> 256; needs replace")
        .run();
    write(
        dir.path(),
        "lab.yaml",
        "name: lab\ndefaults: {template: tiny}\nvms:\n  - name: prod-db\n",
    );
    plan()
        .arg("--adopt")
        .status(4)
        .error_has("vm 'prod-db' on host 'current' belongs to environment 'prod', not 'lab'")
        .run();
}

#[test]
fn memory_above_a_hosts_total_is_refused() {
    let dir = tmp();
    write(
        dir.path(),
        "lab.yaml",
        "name: big\ndefaults: {template: tiny, memory: 3000}\nvms:\n  - {name: b, count: 3}\n",
    );
    Boxvirt::new(dir.path())
        .uri(&env_uri("node-empty.xml"))
        .args(["env", "plan", "-f", "lab.yaml"])
        .status(2)
        .error_has("lab.yaml: the VMs placed on host 'current' (b-1, b-2, b-3) need 9000 MiB, more than its 4096 MiB in total")
        .run();
}

#[test]
fn two_hosts_get_a_deterministic_placement_and_pins_are_kept() {
    let dir = tmp();
    let text = format!(
        "name: spread\nhosts:\n  b: {{uri: '{}'}}\n  a: {{uri: '{}'}}\ndefaults: {{template: tiny, memory: 1024}}\nvms:\n  - {{name: w, count: 3}}\n  - {{name: p, host: a, memory: 256}}\n",
        env_uri("node-lab.xml"),
        env_uri("node-empty.xml")
    );
    write(dir.path(), "spread.yaml", &text);
    let plan = || {
        Boxvirt::new(dir.path())
            .args(["env", "plan", "-f", "spread.yaml", "-o", "json"])
            .run()
            .json()
    };
    let first = plan();
    // b has 8192 MiB less 2304 in running VMs = 5888 free; a has 4096.
    assert_eq!(
        actions(&first),
        [
            "a: create vm w-3",
            "a: create vm p",
            "b: create vm w-1",
            "b: create vm w-2",
        ]
    );
    assert_eq!(first["hosts"][1]["free_mib"], 5888);
    assert_eq!(first, plan(), "same file, same hosts: same plan");
}

#[test]
fn an_unreachable_host_fails_the_plan_with_exit_5_naming_it() {
    let dir = tmp();
    let text = format!(
        "name: lab\nhosts:\n  ok: {{uri: '{}'}}\n  gone: {{uri: 'qemu+unix:///system?socket={}/none/sock'}}\ndefaults: {{template: tiny}}\nvms:\n  - {{name: a, host: ok}}\n",
        env_uri("node-empty.xml"),
        dir.path().display()
    );
    write(dir.path(), "lab.yaml", &text);
    Boxvirt::new(dir.path())
        .args(["env", "plan", "-f", "lab.yaml"])
        .status(5)
        .error_has(
            "host 'gone' is unreachable: cannot reach libvirt at qemu+unix:///system?socket=",
        )
        .stdout("")
        .run();
    // A nested instance that is not up names the command that starts it.
    write(
        dir.path(),
        "inst.yaml",
        "name: lab\nhosts:\n  n2: {instance: second, data_dir: d2}\n",
    );
    Boxvirt::new(dir.path())
        .args(["env", "plan", "-f", "inst.yaml"])
        .status(5)
        .error_has("host 'n2' is unreachable: cannot reach libvirt at qemu+unix:///system?socket=")
        .stderr_has("run 'boxvirt up --instance second --data-dir ")
        .run();
}

#[test]
fn env_list_and_show_read_the_vms_metadata_from_any_directory() {
    let dir = tmp();
    let uri = env_uri("node-lab.xml");
    Boxvirt::new(dir.path())
        .uri(&uri)
        .args(["env", "list"])
        .stdout_has("│ lab  │ 3   │ 3      │ 0000   │")
        .stdout_has("│ prod │ 1   │ 1      │ 1111   │")
        .stdout_lacks("web-1")
        .run();
    let list = Boxvirt::new(dir.path())
        .uri(&uri)
        .args(["env", "list", "-o", "json"])
        .run()
        .json();
    assert_eq!(list[0]["name"], "lab");
    assert_eq!(
        list[0]["vms"],
        serde_json::json!(["app-1", "app-2", "old-1"])
    );
    Boxvirt::new(dir.path())
        .uri(&test_uri("node.xml"))
        .args(["env", "list"])
        .stdout("no environments\n")
        .run();
    let show = Boxvirt::new(dir.path())
        .uri(&uri)
        .args(["env", "show", "lab", "-o", "json"])
        .run()
        .json();
    assert_eq!(show[1]["name"], "app-2");
    assert_eq!(show[1]["config"]["memory"], "128");
    Boxvirt::new(dir.path())
        .uri(&uri)
        .args(["env", "show", "lab"])
        .stdout_has("│ app-2 │ yes    │ 256 MiB │ 1     │ 0000   │ memory=128 networks=default template=tiny │")
        .run();
    Boxvirt::new(dir.path())
        .uri(&uri)
        .args(["env", "show", "nope"])
        .status(3)
        .error_has("no environment 'nope' at test://")
        .run();
    Boxvirt::new(dir.path())
        .uri(&uri)
        .args(["env", "show", "a b"])
        .status(2)
        .error_has("invalid environment name \"a b\"")
        .run();
}

// ---- env apply / destroy (the test driver keeps no state between runs:
// each run is checked by its own summary; tests/live_env_apply.rs does the
// round trip on a real libvirtd) ----

const THREE_NODES: &str = "name: lab\nnetworks:\n  default: {template: default}\n  iso: {template: isolated, cidr: 10.10.0.0/24}\ndefaults: {template: tiny}\nvms:\n  - {name: node, count: 3, networks: [iso]}\n  - {name: web, networks: [default]}\n";

#[test]
fn apply_makes_the_missing_network_then_the_vms_and_reports_each() {
    let dir = tmp();
    write(dir.path(), "boxvirt.yaml", THREE_NODES);
    let run = Boxvirt::new(dir.path())
        .uri(&test_uri("node.xml"))
        .args(["-o", "json", "env", "apply", "--no-seed", "--parallel", "3"])
        .stderr_has("host 'current': created network 'iso'")
        .stderr_has("[node-2] domain defined")
        .run();
    let report = run.json();
    assert_eq!(
        objects(&report),
        [
            "network iso created active",
            "vm node-1 created defined",
            "vm node-2 created defined",
            "vm node-3 created defined",
            "vm web created defined",
        ]
    );
    assert_eq!(report["changed"], true);
    assert_eq!(report["failed"], 0);
    // Addresses from each VM's own network.
    let ip = |i: usize| report["objects"][i]["ip"].as_str().unwrap().to_string();
    assert!(ip(1).starts_with("10.10.0."), "{}", ip(1));
    assert!(ip(4).starts_with("192.168.122."), "{}", ip(4));
}

#[test]
fn one_failed_vm_is_rolled_back_named_and_does_not_stop_the_others() {
    let dir = tmp();
    write(dir.path(), "boxvirt.yaml", THREE_NODES);
    let run = Boxvirt::new(dir.path())
        .uri(&test_uri("node.xml"))
        .env("BOXVIRT_INJECT_FAILURE", "define@node-2")
        .args(["env", "apply", "--no-seed", "--start"])
        .status(1)
        .error_has("env apply: 1 of 5 failed: vm 'node-2' on host 'current': creating vm 'node-2': injected failure after step 'define'; rolled back: vm 'node-2'")
        .run();
    assert!(
        run.stdout
            .contains("│ vm      │ node-1 │ current │ created │ running"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("│ vm      │ node-2 │ current │ created │ failed"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("│ vm      │ node-3 │ current │ created │ running"),
        "{}",
        run.stdout
    );
}

#[test]
fn changes_and_deletions_need_replace_and_nothing_else_is_touched() {
    let dir = tmp();
    let apply = || {
        Boxvirt::new(dir.path())
            .uri(&env_uri("node-lab.xml"))
            .args(["env", "apply", "--no-seed", "-f"])
            .arg(fixture("env/app.yaml").to_str().unwrap())
    };
    let refused = apply()
        .status(4)
        .error_has("needs replace: app-2 on host 'current' (memory 128 -> 256; needs replace); old-1 on host 'current' (no longer in ")
        .error_has("pass --replace to delete and re-create them, nothing was changed")
        .run();
    assert!(!refused.stderr.contains("[app-2]"), "{}", refused.stderr);
    let report = apply().args(["--replace", "-o", "json"]).run().json();
    assert_eq!(
        objects(&report),
        [
            "vm app-1 unchanged running",
            "vm old-1 deleted deleted",
            // It was running (the fixture's domains are), so it runs again.
            "vm app-2 replaced running",
        ]
    );
}

#[test]
fn a_converged_environment_applies_nothing_and_says_so() {
    let dir = tmp();
    write(
        dir.path(),
        "prod.yaml",
        "name: prod\nvms:\n  - {name: prod-db, template: tiny, memory: 1024}\n",
    );
    let run = Boxvirt::new(dir.path())
        .uri(&env_uri("node-lab.xml"))
        .args(["-o", "json", "env", "apply", "-f", "prod.yaml"])
        .stderr_has("environment 'prod' is up to date: nothing to do")
        .run();
    let report = run.json();
    assert_eq!(report["changed"], false);
    assert_eq!(objects(&report), ["vm prod-db unchanged running"]);
}

#[test]
fn bad_input_fails_before_anything_is_made() {
    let dir = tmp();
    write(
        dir.path(),
        "twice.yaml",
        "name: fresh\nnetworks:\n  default: {template: default}\n  iso: {template: isolated}\ndefaults: {template: tiny}\nvms:\n  - {name: a, networks: [iso, default, iso]}\n",
    );
    let nine: Vec<String> = (1..=9).map(|i| format!("n{i}")).collect();
    write(
        dir.path(),
        "nine.yaml",
        &format!(
            "name: fresh\nnetworks:\n{}defaults: {{template: tiny}}\nvms:\n  - {{name: a, networks: [{}]}}\n",
            nine.iter().map(|n| format!("  {n}: {{template: isolated}}\n")).collect::<String>(),
            nine.join(", ")
        ),
    );
    write(
        dir.path(),
        "taken.yaml",
        "name: fresh\nnetworks:\n  iso: {template: isolated, cidr: 10.10.0.0/24}\nvms:\n  - {name: web-1, template: tiny, networks: [iso]}\n",
    );
    write(
        dir.path(),
        "no-key.yaml",
        "name: fresh\nnetworks:\n  iso: {template: isolated, cidr: 10.10.0.0/24}\nvms:\n  - {name: a, template: tiny, networks: [iso], ssh_keys: [nope.pub]}\n",
    );
    let cases = [
        ("twice.yaml", 2, "twice.yaml:7:40: vm 'a' names network 'iso' twice; a VM gets one NIC per network, so name each once"),
        ("nine.yaml", 2, "nine.yaml:14:25: vm 'a' is on 9 networks; a VM gets at most 8 NICs"),
        ("taken.yaml", 4, "vm 'web-1' already exists on host 'current' outside environment 'fresh'"),
        ("no-key.yaml", 2, "nope.pub"),
        ("missing.yaml", 3, "missing.yaml: no such file"),
    ];
    for (file, code, msg) in cases {
        let run = Boxvirt::new(dir.path())
            .uri(&env_uri("node-lab.xml"))
            .args(["env", "apply", "-f", file])
            .status(code)
            .error_has(msg)
            .run();
        // Nothing was made: no network, no VM got as far as a step.
        assert!(!run.stderr.contains("created network"), "{}", run.stderr);
        assert!(!run.stderr.contains("] "), "{}", run.stderr);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
}

#[test]
fn destroy_removes_only_the_environments_vms_and_asks_first() {
    let dir = tmp();
    let destroy = |extra: &[&str]| {
        Boxvirt::new(dir.path())
            .uri(&env_uri("node-lab.xml"))
            .args(["env", "destroy", "-f"])
            .arg(fixture("env/app.yaml").to_str().unwrap())
            .args(extra.iter().copied())
    };
    destroy(&[])
        .status(2)
        .error_has("destroy environment 'lab': vms app-1, app-2, old-1 on host 'current': refusing without --yes")
        .run();
    let report = destroy(&["-y", "-o", "json"]).run().json();
    // prod-db (environment prod) and web-1 (no environment) are not touched.
    assert_eq!(
        objects(&report),
        [
            "vm app-1 deleted deleted",
            "vm app-2 deleted deleted",
            "vm old-1 deleted deleted",
        ]
    );
}

#[test]
fn vm_list_env_shows_only_that_environments_vms() {
    let dir = tmp();
    let run = Boxvirt::new(dir.path())
        .uri(&env_uri("node-lab.xml"))
        .args(["-o", "json", "vm", "list", "--env", "lab"])
        .run();
    let names: Vec<String> = run
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["app-1", "app-2", "old-1"]);
    Boxvirt::new(dir.path())
        .uri(&env_uri("node-lab.xml"))
        .args(["vm", "list", "--env", "nope"])
        .stdout("no VMs\n")
        .run();
}

#[test]
fn ctrl_c_rolls_back_the_create_in_flight_keeps_the_finished_and_prints_the_summary() {
    let dir = tmp();
    write(dir.path(), "boxvirt.yaml", THREE_NODES);
    // A real SIGINT, raised in node-2's create right after its domain is defined.
    let run = Boxvirt::new(dir.path())
        .uri(&test_uri("node.xml"))
        .env("BOXVIRT_INJECT_FAILURE", "signal:define@node-2")
        .args(["env", "apply", "--no-seed", "--parallel", "1"])
        .status(1)
        .stderr_has("interrupted; undoing what this run made")
        .error_has("env apply: 3 of 5 failed: vm 'node-2' on host 'current': creating vm 'node-2': interrupted by SIGINT (Ctrl-C) after step 'define'; rolled back: vm 'node-2'")
        .error_has("vm 'node-3' on host 'current': interrupted before it began; nothing was made")
        .run();
    for want in [
        "│ vm      │ node-1 │ current │ created │ defined     │ 10.10.0.",
        "│ vm      │ node-2 │ current │ created │ failed      │ -",
        "│ vm      │ node-3 │ current │ created │ not started │ -",
        "│ vm      │ web    │ current │ created │ not started │ -",
    ] {
        assert!(run.stdout.contains(want), "{want}\n{}", run.stdout);
    }
}

/// The round trip in one process: `test:///default` is the one test-driver
/// URI whose connections share a host, so what apply made is there for the
/// plan and the destroy that follow (a CLI run per step would each start
/// from a fresh host).
#[test]
fn apply_then_plan_then_destroy_round_trip_on_one_test_driver_host() {
    use boxvirt::cli::GlobalArgs;
    use boxvirt::context::Ctx;
    use boxvirt::env::{self, apply, destroy, hosts, observe, plan, refuse};
    use boxvirt::settings::{Settings, Sources};
    use boxvirt::template::Kind;

    let dir = tmp();
    let flags = GlobalArgs {
        connect: Some("test:///default".into()),
        ..Default::default()
    };
    let src = Sources {
        cwd: dir.path().to_path_buf(),
        ..Default::default()
    };
    let ctx = Ctx::new(Settings::resolve(&flags, &src).unwrap());
    let conn = ctx.libvirt().unwrap();
    // Its pool 'default' with the tiny kernel pair, as `image build tiny` leaves it.
    conn.ensure_pool("default", || {
        ctx.catalog.get(Kind::Pool, "default")?.render(&[])
    })
    .unwrap();
    for v in ["tiny-0123456789ab.vmlinuz", "tiny-0123456789ab.initrd"] {
        conn.create_volume("default", v, 1 << 20, "raw").unwrap();
    }
    let reservations = |net: &str| {
        boxvirt::xml::find_all(
            &conn.network_xml(net).unwrap(),
            &["network", "ip", "dhcp", "host"],
        )
        .len()
    };
    let default_before = reservations("default");
    let file = dir.path().join("boxvirt.yaml");
    let text = |memory: u32| {
        format!("name: rt\nnetworks:\n  default: {{template: default}}\n  rt-iso: {{template: isolated, cidr: 10.20.0.0/24}}\ndefaults: {{template: tiny, memory: {memory}}}\nvms:\n  - {{name: rt-node, count: 3, networks: [rt-iso]}}\n  - {{name: rt-web, networks: [default]}}\n")
    };
    std::fs::write(&file, text(256)).unwrap();
    let targets_of = |d: &env::Desired| hosts::targets(d, &ctx.settings);
    let plan_of = |d: &env::Desired| {
        plan::plan(
            d,
            &observe::observe_all(&targets_of(d)),
            plan::Options::default(),
        )
    };

    let desired = env::load(&file, &ctx.catalog).unwrap();
    let first = plan_of(&desired).unwrap();
    assert_eq!(first.count(plan::Verb::Create), 5, "{first:?}");
    let opts = apply::Options {
        parallel: 3,
        no_seed: true,
        ..Default::default()
    };
    let made = apply::apply(&ctx, &desired, &targets_of(&desired), &first, &opts).unwrap();
    assert!(made.iter().all(|o| o.error.is_none()), "{made:?}");
    assert_eq!(made.len(), 5, "{made:?}");
    // The env's own network has boxvirt's block of address slots (64 host
    // entries made when it was defined); its VMs take slots without adding
    // any. The pre-existing 'default' has no block: a live reservation.
    assert_eq!(reservations("rt-iso"), 64);
    assert_eq!(reservations("default"), default_before + 1);

    // The same file again: nothing to do.
    assert!(plan_of(&desired).unwrap().is_converged());
    // A changed field: every node needs replace, refused without --replace.
    std::fs::write(&file, text(320)).unwrap();
    let changed = env::load(&file, &ctx.catalog).unwrap();
    let second = plan_of(&changed).unwrap();
    assert_eq!(second.count(plan::Verb::Change), 4);
    let refused = refuse::refusals(&second, false).unwrap_err();
    assert_eq!(refused.exit, boxvirt::error::Exit::Conflict);
    refuse::refusals(&second, true).unwrap();

    // Destroy: its VMs, their reservations and its network; 'default' stays.
    let targets = targets_of(&changed);
    let conns: Vec<_> = targets
        .iter()
        .map(observe::connect)
        .collect::<Result<_, _>>()
        .unwrap();
    let vm_names: Vec<String> = changed.vms.iter().map(|v| v.name.clone()).collect();
    let found = destroy::find("rt", &vm_names, &conns).unwrap();
    assert_eq!(found.vms.len(), 4);
    assert!(found.leftovers.is_empty());
    assert_eq!(found.networks, [(0, "rt-iso".to_string())]);
    let gone = destroy::destroy(&ctx, &targets, &conns, &found, 4);
    assert!(gone.iter().all(|o| o.error.is_none()), "{gone:?}");
    assert!(destroy::find("rt", &vm_names, &conns).unwrap().is_empty());
    let names: Vec<String> = conn
        .list_domains()
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert!(!names.iter().any(|n| n.starts_with("rt-")), "{names:?}");
    assert!(conn.network_summary("rt-iso").unwrap().is_none());
    assert_eq!(reservations("default"), default_before);
}

#[test]
fn adopt_marks_a_vm_made_outside_any_environment_and_changes_nothing_else() {
    let dir = tmp();
    write(
        dir.path(),
        "own.yaml",
        "name: own\nvms:\n  - {name: web-1, template: tiny, memory: 512, vcpus: 2}\n",
    );
    let apply = |extra: &[&str]| {
        Boxvirt::new(dir.path())
            .uri(&env_uri("node-lab.xml"))
            .args(["-o", "json", "env", "apply", "-f", "own.yaml"])
            .args(extra.iter().copied())
    };
    apply(&[])
        .status(4)
        .error_has("vm 'web-1' already exists on host 'current' outside environment 'own'")
        .run();
    let report = apply(&["--adopt"]).run().json();
    assert_eq!(objects(&report), ["vm web-1 adopted running"]);
}
