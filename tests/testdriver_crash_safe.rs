//! Tier 2 (libvirt test driver): what a killed `vm create` of 'ghost' left
//! (tests/fixtures/leftovers.xml: disk, seed, live reservation, no domain)
//! is listed by `gc`, removed by `gc --yes`, `vm delete ghost` or a new
//! `vm create --name ghost`; objects that are not leftovers stay.

mod common;

use common::*;

fn uri() -> String {
    test_uri("leftovers.xml")
}

/// In gc's order: by VM, volumes (by name) before reservations.
const GHOST: [&str; 3] = ["ghost-seed.img", "ghost.qcow2", "192.168.122.50"];

#[test]
fn gc_lists_only_leftovers_and_removes_them_with_yes() {
    let d = tempfile::tempdir().unwrap();
    let listed = Boxvirt::new(d.path())
        .uri(&uri())
        .args(["-o", "json", "gc"])
        .run()
        .expect_code(0);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout).unwrap();
    let objects: Vec<&str> = rows.iter().map(|r| r["object"].as_str().unwrap()).collect();
    assert_eq!(objects, GHOST, "{}", listed.stdout);
    assert!(rows.iter().all(|r| r["vm"] == "ghost"));
    let removed = Boxvirt::new(d.path())
        .uri(&uri())
        .args(["gc", "--yes"])
        .run()
        .expect_code(0);
    for o in GHOST {
        assert!(removed.stderr.contains(o), "{}", removed.stderr);
    }
    assert!(
        !removed.stderr.contains("shared.qcow2"),
        "{}",
        removed.stderr
    );
}

#[test]
fn gc_with_names_lists_only_those_vms() {
    let d = tempfile::tempdir().unwrap();
    Boxvirt::new(d.path())
        .uri(&uri())
        .args(["gc", "other-vm"])
        .stdout("no boxvirt-made objects without a domain\n")
        .status(0)
        .run();
}

#[test]
fn vm_delete_removes_leftovers_of_a_vm_without_a_domain() {
    let d = tempfile::tempdir().unwrap();
    let run = Boxvirt::new(d.path())
        .uri(&uri())
        .args(["vm", "delete", "ghost", "--yes"])
        .status(0)
        .run();
    for o in GHOST {
        assert!(run.stderr.contains(o), "{}", run.stderr);
    }
    Boxvirt::new(d.path())
        .uri(&uri())
        .args(["vm", "delete", "nobody", "--yes"])
        .status(3)
        .error_has("vm 'nobody' not found")
        .run();
}

#[test]
fn vm_create_of_the_same_name_clears_the_leftovers_and_proceeds() {
    let d = tempfile::tempdir().unwrap();
    let run = Boxvirt::new(d.path())
        .uri(&uri())
        .args(["-o", "json", "vm", "create", "--template", "tiny"])
        .args(["--name", "ghost", "--no-seed"])
        .status(0)
        .stdout_has("\"ghost\"")
        .stderr_has("removed leftovers of an earlier, interrupted create of vm 'ghost'")
        .run();
    assert!(run.stderr.contains("ghost-seed.img"), "{}", run.stderr);
}
