//! Tier 3: `env apply` and `env destroy` against the REAL libvirtd
//! (tests/harness/live-libvirtd.sh) with the tiny guest: three VMs made
//! and started in parallel, a second apply that changes nothing, one VM
//! forced to fail (rolled back, named, the others kept), a changed field
//! that waits for --replace, and a destroy that leaves nothing the
//! environment made while the network that existed before stays.

mod common;

use std::path::Path;

use boxvirt::libvirt::Libvirt;
use common::*;

/// Everything this test made goes when it ends, even after a failed
/// assertion: the environment, then the network made before it.
struct Cleanup<'a> {
    dir: &'a Path,
    uri: String,
    conn: &'a Libvirt,
    network: String,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = boxvirt_in(self.dir, &["-c", &self.uri, "-y", "env", "destroy"]);
        let _ = self.conn.delete_network(&self.network);
    }
}

fn names(conn: &Libvirt) -> Vec<String> {
    conn.list_domains()
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect()
}

fn env_file(env: &str, pre: &str, subnet: u32, memory: u64, extra: bool) -> String {
    let mut s = format!(
        "name: {env}\nnetworks:\n  {pre}: {{template: isolated}}\n  {env}-own: {{template: isolated, cidr: 10.232.{subnet}.0/24}}\ndefaults: {{template: tiny, memory: {memory}}}\nvms:\n  - {{name: {env}-n, count: 2, networks: [{env}-own]}}\n  - {{name: {env}-p, networks: [{pre}]}}\n"
    );
    if extra {
        s.push_str(&format!("  - {{name: {env}-x, networks: [{env}-own]}}\n"));
    }
    s
}

#[test]
fn apply_in_parallel_converges_refuses_silent_replaces_and_destroy_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let uri = live_uri();
    let conn = common::live_conn();
    upload_tiny(&uri);
    let pid = std::process::id();
    let env = format!("ea{pid}");
    let subnet = 10 + pid % 200;
    // A network that exists before the environment (made through boxvirt's
    // libvirt layer): the environment uses it and must leave it alone.
    let pre = format!("{env}-pre");
    conn.ensure_network(&pre, || {
        Ok(format!(
            "<network><name>{pre}</name><bridge name='bp{pid}'/><ip address='10.233.{subnet}.1' prefix='24'><dhcp><range start='10.233.{subnet}.2' end='10.233.{subnet}.254'/></dhcp></ip></network>"
        ))
    })
    .unwrap();
    let _cleanup = Cleanup {
        dir: dir.path(),
        uri: uri.clone(),
        conn: &conn,
        network: pre.clone(),
    };
    let file = dir.path().join("boxvirt.yaml");
    std::fs::write(&file, env_file(&env, &pre, subnet, 256, false)).unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["-c", uri.as_str()];
        all.extend_from_slice(args);
        boxvirt_in(dir.path(), &all)
    };

    // 1. Three VMs, made and started three at a time.
    let applied = run(&["-o", "json", "env", "apply", "--parallel", "3", "--start"]).ok();
    let report: serde_json::Value = serde_json::from_str(&applied.stdout).unwrap();
    assert_eq!(
        objects(&report),
        [
            format!("network {env}-own created active"),
            format!("vm {env}-n-1 created running"),
            format!("vm {env}-n-2 created running"),
            format!("vm {env}-p created running"),
        ],
        "{}",
        applied.stderr
    );
    for i in 1..=3 {
        let ip = report["objects"][i]["ip"].as_str().unwrap();
        let want = if i < 3 { "10.232." } else { "10.233." };
        assert!(ip.starts_with(want), "{ip}");
    }
    // Plain progress lines (no terminal here), one VM at a time named.
    assert!(
        applied.stderr.contains(&format!("[{env}-n-2] started")),
        "{}",
        applied.stderr
    );
    let listed = run(&["-o", "json", "vm", "list", "--env", &env]).ok();
    for vm in [
        format!("{env}-n-1"),
        format!("{env}-n-2"),
        format!("{env}-p"),
    ] {
        assert_eq!(row_named(&listed.stdout, &vm)["state"], "running");
    }

    // 2. Again: nothing changes, and it says so.
    let again = run(&["-o", "json", "env", "apply", "--start"]).ok();
    assert!(
        again
            .stderr
            .contains(&format!("environment '{env}' is up to date: nothing to do")),
        "{}",
        again.stderr
    );
    let report: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(report["changed"], false);

    // 3. One more VM, forced to fail after its domain is defined: it is
    // rolled back and named; the others stay as they were.
    std::fs::write(&file, env_file(&env, &pre, subnet, 256, true)).unwrap();
    let failed = boxvirt_env(
        dir.path(),
        &["-c", &uri, "env", "apply", "--start"],
        &[("BOXVIRT_INJECT_FAILURE", &format!("define@{env}-x"))],
    )
    .expect_code(1);
    assert!(
        failed.one_line_error().contains(&format!(
            "env apply: 1 of 4 failed: vm '{env}-x' on host 'current': creating vm '{env}-x': injected failure after step 'define'; rolled back:"
        )),
        "{}",
        failed.stderr
    );
    let doms = names(&conn);
    assert!(!doms.contains(&format!("{env}-x")), "{doms:?}");
    assert!(doms.contains(&format!("{env}-n-1")), "{doms:?}");
    assert!(
        !volume_names(&conn)
            .iter()
            .any(|v| v.starts_with(&format!("{env}-x"))),
        "volumes of the failed VM left behind"
    );
    std::fs::write(&file, env_file(&env, &pre, subnet, 256, false)).unwrap();

    // 4. A changed field: the plan says "needs replace", and apply without
    // --replace changes nothing.
    std::fs::write(&file, env_file(&env, &pre, subnet, 192, false)).unwrap();
    let plan = run(&["-o", "json", "env", "plan"]).ok();
    assert!(
        plan.stdout.contains("memory 256 -> 192; needs replace"),
        "{}",
        plan.stdout
    );
    let refused = run(&["env", "apply", "--start"]).expect_code(4);
    assert!(
        refused
            .one_line_error()
            .contains("pass --replace to delete and re-create them, nothing was changed"),
        "{}",
        refused.stderr
    );
    let listed = run(&["-o", "json", "vm", "list", "--env", &env]).ok();
    assert_eq!(
        row_named(&listed.stdout, &format!("{env}-n-1"))["memory_mib"],
        256
    );

    // 5. Destroy: the VMs, their volumes and reservations, and the network
    // the environment made go; the network that was there before stays.
    run(&["-y", "env", "destroy"]).ok();
    let doms = names(&conn);
    assert!(!doms.iter().any(|d| d.starts_with(&env)), "{doms:?}");
    assert!(
        !volume_names(&conn).iter().any(|v| v.starts_with(&env)),
        "volumes left behind"
    );
    assert!(conn
        .network_summary(&format!("{env}-own"))
        .unwrap()
        .is_none());
    let pre_xml = conn.network_xml(&pre).unwrap();
    // Only the environment's VM had a reservation on it.
    assert!(!pre_xml.contains("<host "), "reservation left: {pre_xml}");
    assert!(
        run(&["env", "destroy"])
            .ok()
            .stderr
            .contains("nothing to do"),
        "a second destroy has nothing to do"
    );
}

/// boxvirt (or any program) inside the live daemon's network namespace,
/// where the guests' addresses are reachable.
fn in_ns(cwd: &Path, program: &Path, args: &[&str]) -> Run {
    let netns = std::env::var("BOXVIRT_LIVE_NETNS").unwrap_or_else(|_| "boxvirt-live".into());
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &netns])
        .arg(program)
        .args(args)
        .current_dir(cwd)
        .env_remove("LIBVIRT_DEFAULT_URI")
        .output()
        .expect("ip netns exec");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn apply_wait_makes_every_vm_ready_and_env_ssh_config_reaches_each() {
    let dir = tempfile::tempdir().unwrap();
    let uri = live_uri();
    let conn = common::live_conn();
    upload_tiny(&uri);
    let pid = std::process::id();
    let env = format!("ew{pid}");
    let subnet = 10 + pid % 200;
    std::fs::write(
        dir.path().join("boxvirt.yaml"),
        format!("name: {env}\nnetworks:\n  {env}-n: {{template: isolated, cidr: 10.234.{subnet}.0/24}}\ndefaults: {{template: tiny}}\nvms:\n  - {{name: {env}, count: 2, networks: [{env}-n]}}\n"),
    )
    .unwrap();
    // The instance key does not exist yet: both creates need the same one.
    let _cleanup = Cleanup {
        dir: dir.path(),
        uri: uri.clone(),
        conn: &conn,
        network: format!("{env}-n"),
    };
    let applied = in_ns(
        dir.path(),
        &bin(),
        &[
            "-c",
            &uri,
            "-o",
            "json",
            "env",
            "apply",
            "--wait",
            "--timeout",
            "240",
            "--parallel",
            "2",
        ],
    )
    .ok();
    let report: serde_json::Value = serde_json::from_str(&applied.stdout).unwrap();
    assert_eq!(
        objects(&report),
        [
            format!("network {env}-n created active"),
            format!("vm {env}-1 created ready"),
            format!("vm {env}-2 created ready"),
        ],
        "{}",
        applied.stderr
    );
    let config = boxvirt_in(dir.path(), &["-c", &uri, "env", "ssh-config", &env]).ok();
    let file = dir.path().join("ssh.conf");
    std::fs::write(&file, &config.stdout).unwrap();
    for vm in [format!("{env}-1"), format!("{env}-2")] {
        assert!(
            config.stdout.contains(&format!("Host {vm}\n")),
            "{}",
            config.stdout
        );
        let ssh = in_ns(
            dir.path(),
            Path::new("ssh"),
            &["-F", file.to_str().unwrap(), &vm, "--", "uname", "-n"],
        )
        .ok();
        assert_eq!(ssh.stdout.trim(), vm);
    }
}
