//! Tier 3: crash safety on a REAL libvirtd (tests/harness/live-libvirtd.sh).
//! `vm create` is killed with SIGKILL right after each step
//! (`BOXVIRT_INJECT_FAILURE=abort:<step>`: no rollback runs); then a re-run
//! of the create, a `vm delete`, or `boxvirt gc --yes` must leave nothing.
//! The test's own network has no address slots, so the create makes a live
//! DHCP reservation (the object a kill used to strand).

mod common;

use std::path::{Path, PathBuf};

use boxvirt::libvirt::Libvirt;
use common::*;

fn live(dir: &Path, args: &[&str]) -> Run {
    let uri = live_uri();
    let mut full = vec!["-c", uri.as_str()];
    full.extend_from_slice(args);
    boxvirt_in(dir, &full)
}

fn conn() -> Libvirt {
    Libvirt::open(&live_uri(), "live").unwrap()
}

/// A NAT network of the test's own, defined without a block of slots.
struct Net {
    dir: PathBuf,
    name: String,
}

impl Net {
    /// `octet`: the test's own subnet 10.OCTET.x.0/24 and name.
    fn new(dir: &Path, octet: u8) -> Net {
        let pid = std::process::id();
        let name = format!("crashnet{octet}-{pid}");
        let x = pid % 250 + 2;
        let xml = format!(
            "<network><name>{name}</name><forward mode='nat'/><ip address='10.{octet}.{x}.1' netmask='255.255.255.0'><dhcp><range start='10.{octet}.{x}.2' end='10.{octet}.{x}.254'/></dhcp></ip></network>"
        );
        conn().ensure_network(&name, || Ok(xml)).unwrap();
        assert!(boxvirt::vm::slots::block(&conn().network_xml(&name).unwrap()).is_none());
        Net {
            dir: dir.to_path_buf(),
            name,
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = live(
            &self.dir,
            &["net", "delete", &self.name, "--yes", "--force"],
        );
    }
}

/// `vm create --template debian12 --blank-disk --start` of `vm` on the
/// test's network: no base image needed, and every step (disk volume,
/// seed, reservation, define, start, metadata) applies.
fn create(net: &Net, vm: &str, hook: Option<&str>) -> Run {
    let uri = live_uri();
    let args = [
        "-c",
        &uri,
        "vm",
        "create",
        "--template",
        "debian12",
        "--name",
        vm,
        "--network",
        &net.name,
        "--blank-disk",
        "--disk-size",
        "1",
        "--memory",
        "256",
        "--start",
    ];
    let env: Vec<(&str, &str)> = hook
        .map(|h| ("BOXVIRT_INJECT_FAILURE", h))
        .into_iter()
        .collect();
    boxvirt_env(&net.dir, &args, &env)
}

/// Killed right after `step`: exited by a signal, no exit code.
fn create_killed_after(net: &Net, vm: &str, step: &str) {
    let run = create(net, vm, Some(&format!("abort:{step}")));
    assert_eq!(run.code, -1, "killed after '{step}': {}", run.stderr);
}

/// No domain, volume or reservation of `vm` exists.
fn assert_nothing_left(net: &Net, vm: &str, case: &str) {
    let c = conn();
    assert!(!c.domain_exists(vm).unwrap(), "{case}: domain left behind");
    let vols = volume_names(&c);
    for v in [format!("{vm}.qcow2"), format!("{vm}-seed.img")] {
        assert!(!vols.contains(&v), "{case}: volume {v} left behind");
    }
    let hosts = boxvirt::xml::find_all(
        &c.network_xml(&net.name).unwrap(),
        &["network", "ip", "dhcp", "host"],
    );
    assert!(
        !hosts.iter().any(|h| h.attr("name") == Some(vm)),
        "{case}: DHCP reservation left behind"
    );
}

fn setup(octet: u8) -> (tempfile::TempDir, Net) {
    let d = tempfile::tempdir().unwrap();
    let net = Net::new(d.path(), octet);
    (d, net)
}

/// The steps after which the create is not finished yet: the last one
/// (the final metadata) marks it finished.
fn unfinished_steps() -> &'static [&'static str] {
    let steps = boxvirt::vm::create::STEPS;
    assert_eq!(steps.last(), Some(&"metadata"));
    &steps[..steps.len() - 1]
}

#[test]
fn a_create_killed_after_any_step_is_finished_by_running_it_again() {
    let (_d, net) = setup(83);
    for step in unfinished_steps() {
        let vm = format!("crash-rerun-{step}-{}", std::process::id());
        create_killed_after(&net, &vm, step);
        let again = create(&net, &vm, None);
        assert_eq!(again.code, 0, "re-run after '{step}': {}", again.stderr);
        assert!(conn().domain_exists(&vm).unwrap());
        live(&net.dir, &["vm", "delete", &vm, "--yes"]).ok();
        assert_nothing_left(&net, &vm, &format!("re-run after '{step}', then delete"));
    }
    // Killed after the last step: the VM is complete; the re-run is a
    // plain conflict, and delete removes all of it.
    let vm = format!("crash-rerun-metadata-{}", std::process::id());
    create_killed_after(&net, &vm, "metadata");
    let again = create(&net, &vm, None).expect_code(4);
    assert!(
        again.one_line_error().contains("already exists"),
        "{}",
        again.stderr
    );
    live(&net.dir, &["vm", "delete", &vm, "--yes"]).ok();
    assert_nothing_left(&net, &vm, "killed after 'metadata', then delete");
}

#[test]
fn vm_delete_removes_what_a_killed_create_left_after_any_step() {
    let (_d, net) = setup(84);
    for step in boxvirt::vm::create::STEPS {
        let vm = format!("crash-del-{step}-{}", std::process::id());
        create_killed_after(&net, &vm, step);
        let del = live(&net.dir, &["vm", "delete", &vm, "--yes"]).ok();
        assert!(
            del.stderr.contains(&format!("vm '{vm}'")) && del.stderr.contains("deleted"),
            "after '{step}': {}",
            del.stderr
        );
        assert_nothing_left(&net, &vm, &format!("delete after '{step}'"));
        // Nothing at all is left: now it is "not found".
        live(&net.dir, &["vm", "delete", &vm, "--yes"]).expect_code(3);
    }
}

#[test]
fn gc_lists_then_removes_what_a_killed_create_left() {
    let (_d, net) = setup(85);
    let vm = format!("crash-gc-{}", std::process::id());
    create_killed_after(&net, &vm, "reservation");
    let listed = live(&net.dir, &["gc", "-o", "json"]).ok();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout).unwrap();
    let mine: Vec<String> = rows
        .iter()
        .filter(|r| r["vm"] == vm.as_str())
        .map(|r| r["object"].as_str().unwrap().to_string())
        .collect();
    assert!(
        mine.contains(&format!("{vm}-seed.img")),
        "{}",
        listed.stdout
    );
    assert!(
        rows.iter().any(|r| r["vm"] == vm.as_str()
            && r["kind"] == "reservation"
            && r["home"] == net.name.as_str()),
        "{}",
        listed.stdout
    );
    // Kernel and base images are never garbage.
    assert!(
        !rows.iter().any(|r| {
            let o = r["object"].as_str().unwrap_or_default();
            o.ends_with(".vmlinuz") || o.ends_with(".initrd")
        }),
        "{}",
        listed.stdout
    );
    // Listing changed nothing.
    assert!(volume_names(&conn()).contains(&format!("{vm}-seed.img")));
    // Only this test's VM: the daemon is shared with other runs.
    live(&net.dir, &["gc", "--yes", &vm]).ok();
    assert_nothing_left(&net, &vm, "gc --yes");
}

/// `env apply` killed after each step of its one VM's create: the next
/// apply finishes it, and `env destroy` then leaves nothing.
#[test]
fn an_env_apply_killed_after_any_step_is_finished_by_applying_again() {
    let d = tempfile::tempdir().unwrap();
    let uri = live_uri();
    upload_tiny(&uri);
    let pid = std::process::id();
    let env = format!("crashenv{pid}");
    let vm = format!("{env}-vm");
    let x = pid % 250 + 2;
    std::fs::write(
        d.path().join("boxvirt.yaml"),
        format!(
            "name: {env}\nnetworks:\n  {env}-net: {{template: isolated, cidr: 10.86.{x}.0/24}}\ndefaults: {{template: tiny, memory: 256}}\nvms:\n  - {{name: {vm}, networks: [{env}-net]}}\n"
        ),
    )
    .unwrap();
    let run = |args: &[&str], env_vars: &[(&str, &str)]| {
        let mut all = vec!["-c", uri.as_str()];
        all.extend_from_slice(args);
        boxvirt_env(d.path(), &all, env_vars)
    };
    struct Destroy<'a>(&'a dyn Fn());
    impl Drop for Destroy<'_> {
        fn drop(&mut self) {
            (self.0)()
        }
    }
    let destroy = || {
        let _ = run(&["-y", "env", "destroy"], &[]);
    };
    let _guard = Destroy(&destroy);
    // tiny has no disk volume step.
    for step in unfinished_steps().iter().filter(|s| **s != "volume") {
        let hook = format!("abort:{step}");
        let killed = run(
            &["env", "apply", "--start"],
            &[("BOXVIRT_INJECT_FAILURE", &hook)],
        );
        assert_eq!(killed.code, -1, "killed after '{step}': {}", killed.stderr);
        let again = run(&["env", "apply", "--start"], &[]);
        assert_eq!(again.code, 0, "apply after '{step}': {}", again.stderr);
        assert!(conn().domain_exists(&vm).unwrap(), "after '{step}'");
        run(&["-y", "env", "destroy"], &[]).ok();
        let c = conn();
        assert!(!c.domain_exists(&vm).unwrap(), "after '{step}'");
        let vols = volume_names(&c);
        assert!(
            !vols.iter().any(|v| v.starts_with(&vm)),
            "after '{step}': {vols:?}"
        );
        assert!(c.network_summary(&format!("{env}-net")).unwrap().is_none());
    }
}
