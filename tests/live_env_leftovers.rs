//! Tier 3: `env destroy` finds what killed creates left of the
//! environment's VMs on the REAL libvirtd (tests/harness/live-libvirtd.sh):
//! an `env apply` aborted after one VM's reservation step (its seed, no
//! domain) and a `vm create` of another of its names aborted after its
//! define (a domain still carrying the template's metadata). Destroy
//! removes both and says so; the leftovers of a VM the file does not name
//! stay (they are `boxvirt gc`'s).

mod common;

use std::path::Path;

use boxvirt::libvirt::Libvirt;
use boxvirt::vm::leftovers;
use common::*;

/// Whatever this test made goes when it ends, even after a failed assertion.
struct Cleanup<'a> {
    dir: &'a Path,
    uri: String,
    names: Vec<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = boxvirt_in(self.dir, &["-c", &self.uri, "-y", "env", "destroy"]);
        for n in &self.names {
            let _ = boxvirt_in(self.dir, &["-c", &self.uri, "vm", "delete", n, "--yes"]);
        }
    }
}

/// The leftovers of VMs whose names start with `prefix`: "vm kind object".
fn leftovers_of(conn: &Libvirt, prefix: &str) -> Vec<String> {
    leftovers::find(conn, None)
        .unwrap()
        .into_iter()
        .filter(|l| l.vm.starts_with(prefix))
        .map(|l| format!("{} {}", l.vm, l.kind))
        .collect()
}

#[test]
fn env_destroy_removes_the_leftovers_of_its_vms_and_only_those() {
    let dir = tempfile::tempdir().unwrap();
    let uri = live_uri();
    let conn = common::live_conn();
    upload_tiny(&uri);
    let pid = std::process::id();
    let env = format!("lo{pid}");
    let net = format!("{env}-net");
    let subnet = 10 + pid % 200;
    let (b, c, z) = (format!("{env}-b"), format!("{env}-c"), format!("{env}-z"));
    let _cleanup = Cleanup {
        dir: dir.path(),
        uri: uri.clone(),
        names: vec![c.clone(), z.clone()],
    };
    std::fs::write(
        dir.path().join("boxvirt.yaml"),
        format!(
            "name: {env}\nnetworks:\n  {net}: {{template: isolated, cidr: 10.234.{subnet}.0/24}}\ndefaults: {{template: tiny, networks: [{net}]}}\nvms:\n  - {{name: {env}-a}}\n  - {{name: {env}-b}}\n  - {{name: {env}-c}}\n"
        ),
    )
    .unwrap();
    let run = |args: &[&str], abort: &str| {
        let mut all = vec!["-c", uri.as_str()];
        all.extend_from_slice(args);
        boxvirt_env(
            dir.path(),
            &all,
            &[("BOXVIRT_INJECT_FAILURE", &format!("abort:{abort}"))],
        )
    };

    // A killed apply: b has its seed and reservation, no domain.
    let killed = run(
        &["env", "apply", "--parallel", "1"],
        &format!("reservation@{b}"),
    );
    assert_ne!(killed.code, 0, "{}", killed.stderr);
    // A killed create of c (a name of the file): an unfinished domain.
    let create = |name: &str, step: &str| {
        let args = ["vm", "create", "--template", "tiny", "--name", name];
        run(&[&args[..], &["--network", net.as_str()]].concat(), step).code
    };
    assert_ne!(create(&c, "define"), 0);
    // And one of z, which the file does not name.
    assert_ne!(create(&z, "reservation"), 0);
    let before = leftovers_of(&conn, &env);
    // (Networks boxvirt made give addresses from slots: no reservation
    // is left, the domain was the claim.)
    for want in [format!("{b} volume"), format!("{z} volume")] {
        assert!(before.contains(&want), "{want}: {before:?}");
    }
    assert!(conn.domain_exists(&c).unwrap());

    let destroyed = boxvirt_in(dir.path(), &["-c", &uri, "env", "destroy", "-y"]).ok();
    assert!(
        destroyed.stderr.contains(&format!(
            "vm '{b}' had no domain (an interrupted create or delete); deleted its leftovers: default/{b}-seed.img"
        )),
        "{}",
        destroyed.stderr
    );
    assert!(
        destroyed.stderr.contains(&format!("deleted vm '{c}'")),
        "{}",
        destroyed.stderr
    );
    let domains: Vec<String> = conn
        .list_domains()
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .filter(|n| n.starts_with(&env))
        .collect();
    assert!(domains.is_empty(), "{domains:?}");
    assert_eq!(leftovers_of(&conn, &env), [format!("{z} volume")]);
    assert!(!conn.list_networks().unwrap().iter().any(|n| n.name == net));
}
