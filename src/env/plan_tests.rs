//! Unit tests of plan.rs, compiled only under #[cfg(test)] (see its `mod tests`):
//! plan diffs on hand-made host states, no libvirt needed.

use std::path::PathBuf;

use super::*;
use crate::env::mark::EnvMark;
use crate::env::observed::{ObservedNetwork, Reach};
use crate::error::Exit;

const LAB: &str = "name: lab
hosts:
  left: {uri: 'test:///left'}
  right: {uri: 'test:///right'}
networks:
  mgmt: {template: default}
  data: {template: isolated, cidr: 10.10.0.0/24}
defaults: {template: tiny, memory: 512}
vms:
  - name: ctrl
    networks: [mgmt]
  - name: node
    count: 3
    host: right
    networks: [mgmt, data]
";

fn desired(text: &str) -> Desired {
    let src = crate::env::Source::from_text("lab.yaml".into(), PathBuf::from("/"), text.into());
    crate::env::from_source(&src, &crate::template::Catalog::new(None)).unwrap()
}

fn host(name: &str, free: u64, networks: &[&str], domains: Vec<ObservedDomain>) -> HostState {
    HostState {
        name: name.into(),
        uri: format!("test:///{name}"),
        reach: Reach::Up(Observed {
            total_mib: 8192,
            free_mib: free,
            networks: networks
                .iter()
                .map(|n| ObservedNetwork {
                    name: n.to_string(),
                    cidr: None,
                })
                .collect(),
            domains,
        }),
    }
}

/// A domain `env` made from `vm`'s config as the file says now.
fn made(d: &Desired, vm: &str, env: &str) -> ObservedDomain {
    let spec = d.vms.iter().find(|v| v.name == vm).unwrap();
    ObservedDomain {
        name: vm.into(),
        memory_mib: spec.memory_mib,
        vcpus: 1,
        active: true,
        mark: Some(EnvMark {
            env: env.into(),
            digest: "old".into(),
            config: spec.config(),
        }),
    }
}

fn stranger(name: &str) -> ObservedDomain {
    ObservedDomain {
        name: name.into(),
        memory_mib: 1024,
        vcpus: 2,
        active: false,
        mark: None,
    }
}

/// `host: verb name` for each action, for compact assertions.
fn lines(plan: &Plan) -> Vec<String> {
    plan.hosts
        .iter()
        .flat_map(|h| {
            h.actions
                .iter()
                .map(move |a| format!("{}: {} {}", h.host, a.action.as_str(), a.name))
        })
        .collect()
}

#[test]
fn a_fresh_pair_of_hosts_gets_everything_created_where_it_belongs() {
    let d = desired(LAB);
    let hosts = [
        host("left", 4096, &[], vec![]),
        host("right", 2048, &["mgmt"], vec![]),
    ];
    let p = plan(&d, &hosts, Options::default()).unwrap();
    assert_eq!(
        lines(&p),
        [
            "left: create mgmt",
            "left: create ctrl",
            "right: create data",
            "right: keep mgmt",
            "right: create node-1",
            "right: create node-2",
            "right: create node-3",
        ]
    );
    assert_eq!(p.env, "lab");
    assert_eq!(p.digest.len(), 64);
    assert!(!p.is_converged());
    let ctrl = &p.hosts[0].actions[1];
    assert_eq!(ctrl.detail, "tiny, 512 MiB, on mgmt");
}

#[test]
fn a_second_plan_after_apply_keeps_everything() {
    let d = desired(LAB);
    let left = host("left", 4096, &["mgmt"], vec![made(&d, "ctrl", "lab")]);
    let right = host(
        "right",
        100,
        &["mgmt", "data"],
        ["node-1", "node-2", "node-3"]
            .iter()
            .map(|n| made(&d, n, "lab"))
            .collect(),
    );
    let p = plan(&d, &[left, right], Options::default()).unwrap();
    assert!(p.is_converged(), "{:?}", lines(&p));
    // ctrl stays on left though right would now have less free memory.
    assert_eq!(lines(&p)[1], "left: keep ctrl");
}

#[test]
fn a_changed_field_is_a_change_that_needs_replace() {
    let before = desired(LAB);
    let after = desired(&LAB.replace("memory: 512", "memory: 768"));
    let left = host("left", 4096, &["mgmt"], vec![made(&before, "ctrl", "lab")]);
    let p = plan(
        &after,
        &[left, host("right", 4096, &[], vec![])],
        Options::default(),
    )
    .unwrap();
    let ctrl = &p.hosts[0].actions[1];
    assert_eq!(ctrl.action, Verb::Change);
    assert_eq!(
        ctrl.changes,
        [Change {
            field: "memory".into(),
            now: Some("512".into()),
            wanted: Some("768".into())
        }]
    );
    assert_eq!(ctrl.detail, "memory 512 -> 768; needs replace");
}

#[test]
fn vms_of_this_env_no_longer_in_the_file_are_deleted_others_untouched() {
    let d = desired(LAB);
    let mut gone = made(&d, "ctrl", "lab");
    gone.name = "old-1".into();
    let mut theirs = made(&d, "ctrl", "other");
    theirs.name = "theirs".into();
    let left = host(
        "left",
        4096,
        &["mgmt"],
        vec![made(&d, "ctrl", "lab"), gone, theirs, stranger("mine")],
    );
    let p = plan(
        &d,
        &[left, host("right", 0, &[], vec![])],
        Options::default(),
    )
    .unwrap();
    let left_lines = &lines(&p)[..3];
    assert_eq!(
        left_lines,
        ["left: keep mgmt", "left: keep ctrl", "left: delete old-1"]
    );
    assert_eq!(p.hosts[0].actions[2].detail, "no longer in lab.yaml");
}

#[test]
fn a_name_taken_outside_the_env_is_a_conflict_unless_adopted() {
    let d = desired(LAB);
    let hosts = [
        host("left", 4096, &[], vec![stranger("ctrl")]),
        host("right", 0, &[], vec![]),
    ];
    let e = plan(&d, &hosts, Options::default()).unwrap_err();
    assert_eq!(e.exit, Exit::Conflict);
    assert_eq!(
        e.message,
        "vm 'ctrl' already exists on host 'left' outside environment 'lab'; rename it in lab.yaml, delete it, or pass --adopt to take it over"
    );
    let p = plan(&d, &hosts, Options { adopt: true }).unwrap();
    let ctrl = &p.hosts[0].actions[1];
    assert_eq!((ctrl.action, ctrl.name.as_str()), (Verb::Adopt, "ctrl"));
    let fields: Vec<&str> = ctrl.changes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, ["memory"]);
}

#[test]
fn a_vm_claimed_by_another_environment_is_a_conflict_even_with_adopt() {
    let d = desired(LAB);
    let hosts = [
        host("left", 4096, &[], vec![]),
        host("right", 0, &[], vec![made(&d, "node-2", "prod")]),
    ];
    for adopt in [false, true] {
        let e = plan(&d, &hosts, Options { adopt }).unwrap_err();
        assert_eq!(e.exit, Exit::Conflict);
        assert!(
            e.message.starts_with(
                "vm 'node-2' on host 'right' belongs to environment 'prod', not 'lab'"
            ),
            "{}",
            e.message
        );
    }
}

#[test]
fn an_unreachable_host_fails_the_plan_with_exit_5_naming_it() {
    let d = desired(LAB);
    let down = HostState {
        name: "right".into(),
        uri: "test:///right".into(),
        reach: Reach::Down("cannot reach libvirt at test:///right (gone)".into()),
    };
    let e = plan(
        &d,
        &[host("left", 4096, &[], vec![]), down],
        Options::default(),
    )
    .unwrap_err();
    assert_eq!(e.exit, Exit::Connect);
    assert_eq!(
        e.message,
        "host 'right' is unreachable: cannot reach libvirt at test:///right (gone); nothing was planned"
    );
}

#[test]
fn more_memory_than_a_host_has_in_total_is_refused() {
    let d = desired(&LAB.replace("memory: 512", "memory: 3000"));
    let e = plan(
        &d,
        &[
            host("left", 4096, &[], vec![]),
            host("right", 4096, &[], vec![]),
        ],
        Options::default(),
    )
    .unwrap_err();
    assert_eq!(e.exit, Exit::Usage);
    assert_eq!(
        e.message,
        "lab.yaml: the VMs placed on host 'right' (node-1, node-2, node-3) need 9000 MiB, more than its 8192 MiB in total; lower their memory or add a host"
    );
}

#[test]
fn unpinned_groups_spread_by_free_memory_and_the_plan_is_deterministic() {
    let text = "name: lab\nhosts:\n  a: {uri: 'test:///a'}\n  b: {uri: 'test:///b'}\ndefaults: {template: tiny, memory: 1024}\nvms:\n  - {name: w, count: 4}\n";
    let d = desired(text);
    let hosts = [host("a", 2048, &[], vec![]), host("b", 4096, &[], vec![])];
    let p = plan(&d, &hosts, Options::default()).unwrap();
    assert_eq!(
        lines(&p),
        [
            "a: create w-3",
            "b: create w-1",
            "b: create w-2",
            "b: create w-4"
        ]
    );
    assert_eq!(p, plan(&desired(text), &hosts, Options::default()).unwrap());
}

#[test]
fn a_vm_moved_by_a_new_pin_is_deleted_there_and_created_here() {
    let before = desired(LAB);
    let after = desired(&LAB.replace("  - name: ctrl\n", "  - name: ctrl\n    host: right\n"));
    let left = host("left", 4096, &["mgmt"], vec![made(&before, "ctrl", "lab")]);
    let p = plan(
        &after,
        &[left, host("right", 4096, &["mgmt", "data"], vec![])],
        Options::default(),
    )
    .unwrap();
    let all = lines(&p);
    assert!(all.contains(&"left: delete ctrl".to_string()), "{all:?}");
    assert!(all.contains(&"right: create ctrl".to_string()), "{all:?}");
    assert_eq!(
        p.hosts[0].actions.last().unwrap().detail,
        "moves to host 'right'"
    );
}

#[test]
fn a_network_with_another_subnet_is_a_change() {
    let d = desired(LAB);
    let mut right = host("right", 4096, &["mgmt"], vec![]);
    if let Reach::Up(o) = &mut right.reach {
        o.networks.push(ObservedNetwork {
            name: "data".into(),
            cidr: Some("10.20.0.0/24".into()),
        });
    }
    let p = plan(
        &d,
        &[host("left", 4096, &[], vec![]), right],
        Options::default(),
    )
    .unwrap();
    let data = p.hosts[1]
        .actions
        .iter()
        .find(|a| a.name == "data")
        .unwrap();
    assert_eq!(data.action, Verb::Change);
    assert_eq!(
        data.detail,
        "cidr 10.20.0.0/24 -> 10.10.0.0/24; needs replace"
    );
}

#[test]
fn diff_lists_fields_set_on_one_side_only() {
    let m = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let d = diff(&m(&[("a", "1"), ("b", "2")]), &m(&[("b", "2"), ("c", "3")]));
    let fields: Vec<&str> = d.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(fields, ["a", "c"]);
    assert_eq!(d[0].wanted, None);
}
