//! Tier 3: a VM with two NICs on a REAL libvirtd (tests/harness/live-libvirtd.sh)
//! with the tiny guest. Two networks boxvirt makes (each with its block of
//! address slots) from templates in the test's own --template-dir; the
//! guest's NICs carry the MACs and get the addresses boxvirt reported,
//! checked inside the guest over ssh; delete frees both slots.
//! The tiny guest's init runs its DHCP client on every NIC.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use boxvirt::libvirt::Libvirt;
use boxvirt::vm::slots;
use common::*;

/// boxvirt in the live namespace with `tpl` as --template-dir (and cwd).
fn live(tpl: &Path, args: &[&str]) -> Run {
    let dir = tpl.to_str().unwrap().to_string();
    let mut full = vec!["--template-dir", dir.as_str()];
    full.extend_from_slice(args);
    in_live_ns(tpl, &full)
}

/// An isolated network template `network/NAME.xml` (DHCP, no forwarding)
/// on 10.OCTET.X.0/24, X from this process so parallel runs do not meet.
fn network_template(tpl: &Path, name: &str, octet: u8) -> String {
    let x = std::process::id() % 250 + 2;
    std::fs::create_dir_all(tpl.join("network")).unwrap();
    std::fs::write(
        tpl.join(format!("network/{name}.xml")),
        format!(
            "<network>\n  <name>{name}</name>\n  <ip address='10.{octet}.{x}.1' netmask='255.255.255.0'>\n    <dhcp>\n      <range start='10.{octet}.{x}.2' end='10.{octet}.{x}.254'/>\n    </dhcp>\n  </ip>\n</network>\n"
        ),
    )
    .unwrap();
    format!("10.{octet}.{x}.")
}

/// Deletes the VM, then the networks, when dropped (also on a failed assert).
struct Cleanup {
    tpl: PathBuf,
    vm: String,
    networks: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = live(&self.tpl, &["vm", "delete", &self.vm, "--yes"]);
        for n in &self.networks {
            let _ = live(&self.tpl, &["net", "delete", n, "--yes", "--force"]);
        }
    }
}

/// A root shell command in the guest through the ssh config boxvirt
/// writes (the tiny guest gives root every seed key); its stdout.
fn as_root(cfg: &Path, vm: &str, command: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &live_netns(), "ssh", "-F"])
        .arg(cfg)
        .args([
            "-l",
            "root",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
        ])
        .args([vm, command])
        .output()
        .expect("ip netns exec ssh");
    assert!(
        out.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn two_nics_on_two_boxvirt_networks_get_their_addresses_and_delete_frees_both_slots() {
    let d = tempfile::tempdir().unwrap();
    let tpl = d.path().to_path_buf();
    let pid = std::process::id();
    let (net_a, net_b) = (format!("mnic-a-{pid}"), format!("mnic-b-{pid}"));
    let vm = format!("mnic-{pid}");
    let prefix_a = network_template(&tpl, &net_a, 93);
    let prefix_b = network_template(&tpl, &net_b, 94);
    let _cleanup = Cleanup {
        tpl: tpl.clone(),
        vm: vm.clone(),
        networks: vec![net_a.clone(), net_b.clone()],
    };
    upload_tiny(&live_uri());
    for n in [&net_a, &net_b] {
        live(&tpl, &["net", "ensure", n, "--slots", "8"]).ok();
    }
    let conn = Libvirt::open(&live_uri(), "live").unwrap();
    let blocks_before: Vec<String> = [&net_a, &net_b]
        .iter()
        .map(|n| conn.network_xml(n).unwrap())
        .collect();

    // `vm create --template tiny --name VM`, a `--network` per network, then `more`.
    let create = |networks: &[&str], more: &[&str]| {
        let mut args = vec!["vm", "create", "--template", "tiny", "--name", &vm];
        for n in networks {
            args.extend(["--network", n]);
        }
        args.extend_from_slice(more);
        live(&tpl, &args)
    };

    // Bad input first: nothing of the VM may be left by it.
    let twice = create(&[&net_a, &net_a], &[]);
    assert_eq!(twice.code, 2, "{}", twice.stderr);
    assert!(twice
        .one_line_error()
        .contains(&format!("network '{net_a}' is given twice")));
    let unknown = create(&[&net_a, "mnic-nosuch"], &[]);
    assert_eq!(unknown.code, 3, "{}", unknown.stderr);
    assert!(unknown
        .one_line_error()
        .contains("network 'mnic-nosuch' not found"));
    assert!(!conn.domain_exists(&vm).unwrap());
    assert!(!volume_names(&conn).iter().any(|v| v.starts_with(&vm)));

    let serial = format!("serial_log=/var/log/libvirt/qemu/{vm}.serial.log");
    let created = create(
        &[&net_a, &net_b],
        &["-o", "json", "--set", &serial, "--wait", "--timeout", "240"],
    );
    assert_eq!(created.code, 0, "{}", created.stderr);
    let v: serde_json::Value = serde_json::from_str(&created.stdout).unwrap();
    let nic = |i: usize, key: &str| v["nics"][i][key].as_str().unwrap().to_string();
    let (ip_a, ip_b) = (nic(0, "ip"), nic(1, "ip"));
    assert_eq!(
        (nic(0, "network"), nic(1, "network")),
        (net_a.clone(), net_b.clone())
    );
    assert!(
        ip_a.starts_with(&prefix_a) && ip_b.starts_with(&prefix_b),
        "{v}"
    );
    assert_eq!(
        v["ip"].as_str(),
        Some(ip_a.as_str()),
        "the first NIC is the primary"
    );
    // Each NIC's MAC is a slot of its own network's block.
    for (i, xml) in blocks_before.iter().enumerate() {
        let block = slots::block(xml).unwrap();
        let slot = block.slots.iter().find(|s| s.mac == nic(i, "mac"));
        assert_eq!(slot.map(|s| s.ip.to_string()), Some(nic(i, "ip")), "{v}");
    }

    // Inside the guest: the NICs carry those MACs, the seed's
    // network-config names both, and DHCP hands each NIC its address.
    let cfg = tpl.join("vm.ssh");
    std::fs::write(&cfg, live(&tpl, &["vm", "ssh-config", &vm]).ok().stdout).unwrap();
    for (i, dev) in ["eth0", "eth1"].iter().enumerate() {
        let mac = as_root(&cfg, &vm, &format!("cat /sys/class/net/{dev}/address"));
        assert_eq!(mac.trim(), nic(i, "mac"), "{dev}");
    }
    let netcfg = as_root(&cfg, &vm, "cat /var/lib/cloud/seed/nocloud/network-config");
    for i in 0..2 {
        assert!(
            netcfg.contains(&format!("macaddress: '{}'", nic(i, "mac"))),
            "{netcfg}"
        );
    }
    // The guest's init runs DHCP on every NIC; eth1's lease may come a
    // little after eth0's (which made the VM ready).
    let on = |addrs: &str, dev: &str, ip: &str| {
        addrs
            .lines()
            .any(|l| l.contains(&format!(" {dev} ")) && l.contains(&format!(" {ip}/")))
    };
    let mut addrs = String::new();
    for _ in 0..60 {
        addrs = as_root(&cfg, &vm, "ip -4 -o addr show");
        if on(&addrs, "eth1", &ip_b) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    assert!(
        on(&addrs, "eth0", &ip_a) && on(&addrs, "eth1", &ip_b),
        "want {ip_a} on eth0, {ip_b} on eth1:\n{addrs}"
    );

    // vm ip / vm info: every address, the primary's first; vm list: the primary.
    let ipj = live(&tpl, &["-o", "json", "vm", "ip", &vm]).ok().json();
    let listed: Vec<&str> = ipj["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["ip"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [ip_a.as_str(), ip_b.as_str()], "{ipj}");
    let plain = live(&tpl, &["vm", "ip", &vm]).ok().stdout;
    assert_eq!(plain, format!("{ip_a}\n{ip_b}\n"));
    let info = live(&tpl, &["-o", "json", "vm", "info", &vm]).ok().json();
    assert_eq!(
        info["addresses"][1]["network"].as_str(),
        Some(net_b.as_str()),
        "{info}"
    );
    let list = live(&tpl, &["-o", "json", "vm", "list"]).ok();
    assert_eq!(
        row_named(&list.stdout, &vm)["ip"].as_str(),
        Some(ip_a.as_str())
    );

    // Delete: both slots free again, no reservation or leftover anywhere.
    let gone = live(&tpl, &["vm", "delete", &vm, "--yes"]).ok();
    for (n, ip) in [(&net_a, &ip_a), (&net_b, &ip_b)] {
        assert!(
            gone.stderr
                .contains(&format!("address slot {ip} on {n} (free again)")),
            "{}",
            gone.stderr
        );
    }
    let held = conn.interface_macs().unwrap().0;
    for (i, n) in [&net_a, &net_b].iter().enumerate() {
        assert!(!held.contains(&nic(i, "mac")), "slot of {n} still held");
        // No live entry was added beside the block, none is left.
        assert_eq!(conn.network_xml(n).unwrap(), blocks_before[i], "{n}");
    }
    assert!(boxvirt::vm::leftovers::find(&conn, Some(&vm))
        .unwrap()
        .is_empty());
    assert!(!conn.domain_exists(&vm).unwrap());
}

/// Names of the domains and pool volumes that start with `prefix`.
fn made_with(conn: &Libvirt, prefix: &str) -> (Vec<String>, Vec<String>) {
    let mut doms: Vec<String> = conn
        .list_domains()
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .filter(|n| n.starts_with(prefix))
        .collect();
    doms.sort();
    let mut vols: Vec<String> = volume_names(conn)
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect();
    vols.sort();
    (doms, vols)
}

/// Destroys the environment (its VMs and networks) when dropped.
struct EnvCleanup(PathBuf);

impl Drop for EnvCleanup {
    fn drop(&mut self) {
        let _ = in_live_ns(&self.0, &["-y", "env", "destroy"]);
    }
}

#[test]
fn env_replace_of_a_nic_list_keeps_the_old_vm_when_it_fails_then_swaps_in_two_nics() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_path_buf();
    let pid = std::process::id();
    let x = pid % 250 + 2;
    let env = format!("mr{pid}");
    let vm = format!("{env}-vm");
    let file = |nets: &str| {
        format!("name: {env}\nnetworks:\n  {env}-a: {{template: isolated, cidr: 10.95.{x}.0/24}}\n  {env}-b: {{template: isolated, cidr: 10.96.{x}.0/24}}\ndefaults: {{template: tiny, memory: 256}}\nvms:\n  - {{name: {vm}, networks: [{nets}]}}\n")
    };
    let _cleanup = EnvCleanup(dir.clone());
    upload_tiny(&live_uri());
    let conn = Libvirt::open(&live_uri(), "live").unwrap();
    let ifaces = |conn: &Libvirt| {
        boxvirt::vm::nic_addresses::interfaces(&conn.domain_xml(&vm, true).unwrap())
            .into_iter()
            .map(|(n, _)| n.unwrap_or_default())
            .collect::<Vec<_>>()
    };
    std::fs::write(dir.join("boxvirt.yaml"), file(&format!("{env}-a"))).unwrap();
    in_live_ns(&dir, &["env", "apply", "--start"]).ok();
    let old = (ifaces(&conn), made_with(&conn, &vm));
    assert_eq!(old.0, [format!("{env}-a")]);

    std::fs::write(dir.join("boxvirt.yaml"), file(&format!("{env}-a, {env}-b"))).unwrap();
    let refused = in_live_ns(&dir, &["env", "apply"]);
    assert_eq!(refused.code, 4, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("needs replace"),
        "{}",
        refused.stderr
    );

    // Failing right after the new VM took the name: the old one is back,
    // running, with its one NIC; nothing of the new one is left.
    let failed = Boxvirt::new(&dir)
        .wrapped_in(["ip", "netns", "exec", live_netns().as_str()])
        .uri(&live_uri())
        .env("BOXVIRT_CACHE_DIR", build_cache().to_str().unwrap())
        .env("BOXVIRT_INJECT_FAILURE", "swap")
        .args(["env", "apply", "--replace"])
        .status(1)
        .error_has("injected failure after step 'swap'; the old vm was kept and runs again")
        .run();
    assert!(
        failed.stdout.contains("failed (the old vm was kept)"),
        "{}",
        failed.stdout
    );
    assert_eq!((ifaces(&conn), made_with(&conn, &vm)), old);
    assert!(conn.domain_summary(&vm).unwrap().state.is_active());

    // A replace killed (SIGKILL, no rollback) while it made the new VM:
    // the old one never stopped; the next replace clears what was left.
    let killed = Boxvirt::new(&dir)
        .wrapped_in(["ip", "netns", "exec", live_netns().as_str()])
        .uri(&live_uri())
        .env("BOXVIRT_CACHE_DIR", build_cache().to_str().unwrap())
        .env("BOXVIRT_INJECT_FAILURE", "abort:define")
        .args(["env", "apply", "--replace"])
        .any_status()
        .run();
    assert_eq!(killed.code, -1, "{}", killed.stderr);
    assert_eq!(ifaces(&conn), old.0);
    assert!(conn.domain_summary(&vm).unwrap().state.is_active());
    assert_eq!(
        made_with(&conn, &vm).0.len(),
        2,
        "the killed replace's new vm"
    );

    // The replace that works: two NICs, running again, no temporary name.
    in_live_ns(&dir, &["env", "apply", "--replace"]).ok();
    assert_eq!(ifaces(&conn), [format!("{env}-a"), format!("{env}-b")]);
    assert!(conn.domain_summary(&vm).unwrap().state.is_active());
    let (doms, vols) = made_with(&conn, &vm);
    assert_eq!(doms, std::slice::from_ref(&vm));
    // The new VM's seed (named when it was made) and nothing else.
    assert_eq!(vols.len(), 1, "{vols:?}");
    in_live_ns(&dir, &["env", "plan"]).ok();
    assert!(boxvirt::vm::leftovers::find(&conn, None)
        .unwrap()
        .iter()
        .all(|l| !l.vm.starts_with(&vm)));

    in_live_ns(&dir, &["-y", "env", "destroy"]).ok();
    assert_eq!(made_with(&conn, &vm), (Vec::new(), Vec::new()));
    for n in ["a", "b"] {
        assert!(conn
            .network_summary(&format!("{env}-{n}"))
            .unwrap()
            .is_none());
    }
}

#[test]
fn a_two_nic_create_killed_after_any_step_is_finished_by_a_rerun_and_a_delete_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let tpl = d.path().to_path_buf();
    let pid = std::process::id();
    let (slotted, plain) = (format!("mnk-s-{pid}"), format!("mnk-p-{pid}"));
    network_template(&tpl, &slotted, 97);
    network_template(&tpl, &plain, 98);
    let vm = format!("mnk-{pid}");
    let _cleanup = Cleanup {
        tpl: tpl.clone(),
        vm: vm.clone(),
        networks: vec![slotted.clone(), plain.clone()],
    };
    upload_tiny(&live_uri());
    live(&tpl, &["net", "ensure", &slotted, "--slots", "4"]).ok();
    let conn = Libvirt::open(&live_uri(), "live").unwrap();
    // Defined straight from its template: no block, so the second NIC's
    // address is a live reservation with a MAC from the VM and network.
    let xml = std::fs::read_to_string(tpl.join(format!("network/{plain}.xml"))).unwrap();
    conn.ensure_network(&plain, || Ok(xml)).unwrap();
    let nets_before: Vec<String> = [&slotted, &plain]
        .iter()
        .map(|n| conn.network_xml(n).unwrap())
        .collect();
    let nothing_left = |after: &str| {
        assert!(!conn.domain_exists(&vm).unwrap(), "{after}");
        assert!(
            !volume_names(&conn).iter().any(|v| v.starts_with(&vm)),
            "{after}"
        );
        for (i, n) in [&slotted, &plain].iter().enumerate() {
            assert_eq!(conn.network_xml(n).unwrap(), nets_before[i], "{after}: {n}");
        }
    };
    let create = |hook: Option<&str>| {
        let mut b = Boxvirt::new(&tpl)
            .wrapped_in(["ip", "netns", "exec", live_netns().as_str()])
            .uri(&live_uri())
            .env("BOXVIRT_CACHE_DIR", build_cache().to_str().unwrap())
            .args(["--template-dir", tpl.to_str().unwrap()])
            .args(["vm", "create", "--template", "tiny", "--name", &vm])
            .args(["--network", &slotted, "--network", &plain])
            .any_status();
        if let Some(h) = hook {
            b = b.env("BOXVIRT_INJECT_FAILURE", h);
        }
        b.run()
    };
    let steps = boxvirt::vm::create::STEPS;
    // tiny has no disk volume, no --start here; after "metadata" the VM is complete.
    for step in steps
        .iter()
        .filter(|s| !matches!(**s, "volume" | "start" | "metadata"))
    {
        let killed = create(Some(&format!("abort:{step}")));
        assert_eq!(killed.code, -1, "killed after '{step}': {}", killed.stderr);
        // Delete finds whatever exists of it, the second NIC's live
        // reservation included.
        live(&tpl, &["vm", "delete", &vm, "--yes"]).ok();
        nothing_left(&format!("delete after '{step}'"));
        // Killed again, a re-run of the same create converges.
        assert_eq!(create(Some(&format!("abort:{step}"))).code, -1);
        let again = create(None);
        assert_eq!(again.code, 0, "re-run after '{step}': {}", again.stderr);
        let meta =
            boxvirt::vm::metadata::VmMetadata::parse(&conn.domain_metadata(&vm).unwrap().unwrap());
        assert_eq!(meta.reservations.len(), 2, "{meta:?}");
        assert!(meta.reservations[0].slot && !meta.reservations[1].slot);
        live(&tpl, &["vm", "delete", &vm, "--yes"]).ok();
        nothing_left(&format!("re-run after '{step}'"));
    }
}
