//! Tier 2 (libvirt test driver): `env destroy` removes what a killed
//! create left of one of the file's VMs (tests/fixtures/leftovers.xml:
//! 'ghost' has a disk, a seed and a live reservation, no domain), says so,
//! and leaves the objects that are not its VMs' (another domain's disk, a
//! base image, a reservation someone else made). tests/live_env_leftovers.rs
//! does the same on a real libvirtd, where the removal can be checked.

mod common;

use common::*;

#[test]
fn env_destroy_asks_about_and_removes_the_leftovers_of_its_vms() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("boxvirt.yaml"),
        "name: haunted\ndefaults: {template: tiny}\nvms:\n  - {name: ghost}\n  - {name: never-made}\n",
    )
    .unwrap();
    let destroy = |extra: &[&str]| {
        Boxvirt::new(dir.path())
            .uri(&test_uri("leftovers.xml"))
            .args(["env", "destroy"])
            .args(extra.iter().copied())
    };
    destroy(&[])
        .status(2)
        .error_has("destroy environment 'haunted': leftovers (no domain) of vms ghost on host 'current': refusing without --yes")
        .run();
    let run = destroy(&["-y", "-o", "json"]).run();
    let report = run.json();
    assert_eq!(report["objects"][0]["name"], "ghost", "{report:#}");
    assert_eq!(report["objects"][0]["state"], "deleted", "{report:#}");
    assert_eq!(report["objects"].as_array().unwrap().len(), 1, "{report:#}");
    assert!(
        run.stderr.contains("vm 'ghost' had no domain (an interrupted create or delete); deleted its leftovers: default/ghost-seed.img, default/ghost.qcow2, DHCP reservation 192.168.122.50 on default"),
        "{}",
        run.stderr
    );
    for kept in ["shared.qcow2", "debian12-", "192.168.122.51", "other"] {
        assert!(!run.stderr.contains(kept), "{kept}: {}", run.stderr);
    }
}

#[test]
fn env_destroy_leaves_the_leftovers_of_vms_the_file_does_not_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("boxvirt.yaml"),
        "name: haunted\ndefaults: {template: tiny}\nvms:\n  - {name: ghost-2}\n",
    )
    .unwrap();
    Boxvirt::new(dir.path())
        .uri(&test_uri("leftovers.xml"))
        .args(["env", "destroy", "-y"])
        .stderr_has("environment 'haunted' has nothing on its hosts; nothing to do")
        .run();
}
