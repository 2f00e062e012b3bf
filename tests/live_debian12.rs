//! Tier 3, a REAL distribution with REAL cloud-init, offline: `image build
//! debian12` (Debian packages only, built in a throwaway container of the
//! nested-host image, cached by its inputs), then two VMs from that one base
//! on the live libvirtd, `--wait`ed until cloud-init itself reports success.
//! Everything cloud-init was asked to do is checked from inside the guests.
//! boxvirt runs inside the live daemon's network namespace, where the
//! guests' bridge is (traffic never leaves it).

mod common;

use std::path::Path;

use common::Run;

const URI: &str = "qemu:///system";

fn in_ns(cwd: &Path, args: &[&str]) -> Run {
    common::in_live_ns(cwd, args)
}

/// A command in the guest over `vm ssh` (pinned host key, strict checking).
fn guest(cwd: &Path, name: &str, command: &str) -> String {
    let run = in_ns(cwd, &["vm", "ssh", name, "--", command]);
    assert_eq!(
        run.code, 0,
        "in {name}: `{command}` failed: {}{}",
        run.stdout, run.stderr
    );
    run.stdout.trim().to_string()
}

const USER_DATA: &str = "#cloud-config
write_files:
  - path: /etc/boxvirt-written
    content: \"written by write_files\\n\"
runcmd:
  - [sh, -c, \"echo ran > /var/tmp/boxvirt-runcmd\"]
";

#[test]
fn debian12_from_an_offline_build_is_ready_when_cloud_init_succeeded() {
    let d = tempfile::tempdir().unwrap();
    // The build (or its cache) and the upload into the empty daemon's pool.
    let built = in_ns(d.path(), &["image", "build", "debian12"]);
    assert_eq!(built.code, 0, "image build debian12: {}", built.stderr);
    let list = in_ns(d.path(), &["image", "list", "-o", "json"]).ok();
    let row = common::row_named(&list.stdout, "debian12");
    assert!(row["volume"]["name"].is_string(), "not in the pool: {row}");

    in_ns(d.path(), &["net", "ensure", "default"]).ok();
    std::fs::write(d.path().join("user-data.yaml"), USER_DATA).unwrap();
    let pid = std::process::id();
    let names = [format!("deb-a-{pid}"), format!("deb-b-{pid}")];
    let _guards: Vec<common::VmGuard> = names
        .iter()
        .map(|n| common::VmGuard {
            uri: URI.into(),
            name: n.clone(),
        })
        .collect();

    // Both from the same base, started together, each waited for until
    // cloud-init's own result says it succeeded.
    let waits: Vec<_> = names
        .iter()
        .map(|name| {
            let (cwd, name) = (d.path().to_path_buf(), name.clone());
            std::thread::spawn(move || {
                in_ns(
                    &cwd,
                    &[
                        "-o",
                        "json",
                        "vm",
                        "create",
                        "--template",
                        "debian12",
                        "--name",
                        &name,
                        "--disk-size",
                        "6",
                        "--user-data",
                        "user-data.yaml",
                        "--wait",
                        "--timeout",
                        "600",
                    ],
                )
            })
        })
        .collect();
    let created: Vec<Run> = waits.into_iter().map(|t| t.join().unwrap()).collect();
    for (name, run) in names.iter().zip(&created) {
        assert_eq!(run.code, 0, "create {name} --wait: {}", run.stderr);
    }

    let mut identities = Vec::new();
    for (name, run) in names.iter().zip(&created) {
        let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        let ip = v["ip"].as_str().expect("a reserved address").to_string();
        // meta-data: the hostname.
        assert_eq!(guest(d.path(), name, "hostname"), *name);
        // The login user with its key (vm ssh logs in with it) and
        // passwordless sudo.
        assert_eq!(guest(d.path(), name, "id -un"), "boxvirt");
        assert_eq!(guest(d.path(), name, "sudo -n id -u"), "0");
        // network-config: the reserved address, on the NIC cloud-init
        // configured by MAC.
        let addrs = guest(d.path(), name, "ip -4 -o addr show scope global");
        assert!(addrs.contains(&format!("inet {ip}/")), "{name}: {addrs}");
        let rendered = guest(
            d.path(),
            name,
            "cat /etc/network/interfaces.d/50-cloud-init",
        );
        assert!(rendered.contains("dhcp"), "{name}: {rendered}");
        // --user-data: write_files and runcmd ran.
        assert_eq!(
            guest(d.path(), name, "cat /etc/boxvirt-written"),
            "written by write_files"
        );
        assert_eq!(guest(d.path(), name, "cat /var/tmp/boxvirt-runcmd"), "ran");
        // cloud-init itself: done, no error, nothing left unconfigured.
        let status = guest(d.path(), name, "cloud-init status --long");
        assert!(
            status.contains("status: done") && !status.contains("error:"),
            "{name}: {status}"
        );
        assert_eq!(guest(d.path(), name, "sudo -n dpkg --audit"), "");
        // The root filesystem grew to --disk-size (6 GiB, base is smaller).
        let root_kib: u64 = guest(d.path(), name, "df --output=size -k / | tail -n 1")
            .trim()
            .parse()
            .unwrap();
        assert!(root_kib > 5 * 1024 * 1024, "{name}: root is {root_kib} KiB");
        // The host key the guest presents is the one boxvirt pinned: vm ssh
        // checks it strictly against known_hosts, and it is the seed's.
        let presented = guest(
            d.path(),
            name,
            "sudo -n cat /etc/ssh/ssh_host_ed25519_key.pub",
        );
        let known =
            std::fs::read_to_string(d.path().join("data/ssh/vm_known_hosts")).unwrap_or_default();
        let key = presented.split_whitespace().nth(1).unwrap().to_string();
        assert!(known.contains(&key), "{name}: {key} not pinned in {known}");
        let machine_id = guest(d.path(), name, "cat /etc/machine-id");
        assert_eq!(machine_id.len(), 32, "{name}: machine-id {machine_id:?}");
        identities.push((key, machine_id));
    }
    // Two VMs from one base: their own host key and machine-id each.
    assert_ne!(identities[0].0, identities[1].0, "same host key");
    assert_ne!(identities[0].1, identities[1].1, "same machine-id");

    // vm delete leaves nothing: domain, volumes (disk, seed), reservation,
    // NVRAM.
    for name in &names {
        in_ns(d.path(), &["vm", "delete", name, "--yes"]).ok();
    }
    let conn = boxvirt::libvirt::Libvirt::open(URI, "live").unwrap();
    let vols = common::volume_names(&conn);
    let net = conn.network_xml("default").unwrap();
    let doms = in_ns(d.path(), &["vm", "list", "-o", "json"]).ok().stdout;
    for name in &names {
        assert!(!doms.contains(name.as_str()), "{name} still defined");
        assert!(
            !vols.iter().any(|v| v.starts_with(name.as_str())),
            "{vols:?}"
        );
        assert!(!net.contains(name.as_str()), "reservation of {name} left");
        let nvram = format!("/var/lib/libvirt/qemu/nvram/{name}_VARS.fd");
        assert!(!Path::new(&nvram).exists(), "{nvram} left");
    }
}
