//! The cloud-init seed read back by tools that are not boxvirt: mtools and
//! fsck.fat for the filesystem, PyYAML (cloud-init's own YAML reader) for
//! the texts, the tiny guest's awk reader, and finally a real boot of the
//! tiny guest on the live libvirtd with the seed as its disk.
//! Needs: mtools, dosfstools, python3-yaml, gawk/mawk; for the boot test the
//! live libvirtd (tests/harness/live-libvirtd.sh start) and the tiny guest
//! (tests/harness/build-tiny-guest.sh). Nothing here skips: a missing tool
//! or daemon fails the test with the step to fix it.

mod common;

use common::{live_uri, tiny_dir};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use boxvirt::cloudinit::{self, HostKey, SeedSpec};
use boxvirt::libvirt::Libvirt;

fn client_key() -> String {
    let key = cloudinit::generate_host_key("me@laptop").unwrap();
    key.public_line
}

fn spec(name: &str, mac: &str) -> SeedSpec {
    SeedSpec {
        instance_id: cloudinit::new_instance_id(name).unwrap(),
        hostname: name.to_string(),
        user: "boxvirt".to_string(),
        authorized_keys: vec![client_key()],
        host_key: cloudinit::generate_host_key(name).unwrap(),
        mac: mac.to_string(),
        more_macs: Vec::new(),
        extra_user_data: None,
    }
}

/// Runs a tool; panics with its output (and the install hint) if it fails.
fn run(cmd: &str, args: &[&str], input: Option<&str>) -> String {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {cmd}: {e} (install mtools, dosfstools and python3-yaml: tests/harness/install-deps.sh)")
        });
    if let Some(text) = input {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}

/// YAML as PyYAML's safe_load (what cloud-init uses) reads it, as JSON.
fn pyyaml(text: &str) -> serde_json::Value {
    let script = "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))";
    serde_json::from_str(&run("python3", &["-c", script], Some(text))).unwrap()
}

#[test]
fn seed_image_reads_back_with_mtools_and_fsck_fat() {
    let s = spec("tiny-7", "52:54:00:12:34:56");
    let image = cloudinit::build_seed_image(&s).unwrap();
    assert!(
        image.len() <= 2 * 1024 * 1024,
        "seed is {} bytes",
        image.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.img");
    std::fs::write(&path, &image).unwrap();
    let img = path.to_str().unwrap();

    let fsck = run("fsck.fat", &["-n", img], None);
    assert!(
        fsck.contains("3 files") || fsck.contains("files,"),
        "{fsck}"
    );
    let label = run("mlabel", &["-s", "-i", img, "::"], None);
    assert_eq!(label.trim(), "Volume label is CIDATA");
    let listing = run("mdir", &["-i", img, "::"], None);
    for name in ["meta-data", "user-data", "network-config"] {
        assert!(
            listing
                .lines()
                .any(|l| l.trim_end().ends_with(&format!(" {name}"))),
            "{name} missing:\n{listing}"
        );
    }
    assert!(listing.contains("3 files"), "{listing}");
    assert_eq!(
        run("mtype", &["-i", img, "::meta-data"], None),
        cloudinit::meta_data(&s)
    );
    assert_eq!(
        run("mtype", &["-i", img, "::user-data"], None),
        cloudinit::user_data(&s).unwrap()
    );
    assert_eq!(
        run("mtype", &["-i", img, "::network-config"], None),
        cloudinit::network_config(&s)
    );
    assert_eq!(
        cloudinit::meta_data(&s),
        format!("instance-id: {}\nlocal-hostname: tiny-7\n", s.instance_id)
    );
}

#[test]
fn pyyaml_reads_every_file_as_meant() {
    let s = spec("tiny-8", "52:54:00:12:34:56");
    let meta = pyyaml(&cloudinit::meta_data(&s));
    assert_eq!(
        meta,
        serde_json::json!({"instance-id": s.instance_id, "local-hostname": "tiny-8"})
    );

    // An all-digit MAC must stay a string (YAML 1.1 would read 52:54:... as base 60).
    let net = pyyaml(&cloudinit::network_config(&s));
    assert_eq!(
        net,
        serde_json::json!({"version": 2, "ethernets": {"eth0": {
            "match": {"macaddress": "52:54:00:12:34:56"}, "set-name": "eth0", "dhcp4": true, "dhcp-identifier": "mac"}}})
    );
    // A second NIC: its own entry, its routes behind the primary's.
    let two = cloudinit::SeedSpec {
        more_macs: vec!["52:54:00:65:43:21".into()],
        ..s.clone()
    };
    let net = pyyaml(&cloudinit::network_config(&two));
    assert_eq!(
        net["ethernets"]["eth1"],
        serde_json::json!({"match": {"macaddress": "52:54:00:65:43:21"}, "set-name": "eth1",
            "dhcp4": true, "dhcp-identifier": "mac", "dhcp4-overrides": {"route-metric": 200}})
    );
    assert_eq!(
        net["ethernets"]["eth0"]["match"]["macaddress"],
        "52:54:00:12:34:56"
    );

    let user = pyyaml(&cloudinit::user_data(&s).unwrap());
    assert_eq!(user["hostname"], "tiny-8");
    assert_eq!(user["users"][0]["name"], "boxvirt");
    assert_eq!(user["users"][0]["sudo"], "ALL=(ALL) NOPASSWD:ALL");
    assert_eq!(
        user["users"][0]["ssh_authorized_keys"][0],
        s.authorized_keys[0].as_str()
    );
    assert_eq!(
        user["ssh_keys"]["ed25519_private"],
        s.host_key.private_openssh.as_str()
    );
    assert_eq!(
        user["ssh_keys"]["ed25519_public"],
        s.host_key.public_line.as_str()
    );
    assert_eq!(user["ssh_deletekeys"], true);
    assert_eq!(user["disable_root"], true);
    assert_eq!(user["bootcmd"][0][4], s.instance_id.as_str());

    // Names that YAML 1.1 would turn into booleans or numbers stay strings.
    let mut odd = spec("on", "52:54:00:12:34:56");
    odd.user = "yes".into();
    odd.hostname = "0755".into();
    let user = pyyaml(&cloudinit::user_data(&odd).unwrap());
    assert_eq!(
        (user["hostname"].as_str(), user["users"][0]["name"].as_str()),
        (Some("0755"), Some("yes"))
    );
    assert_eq!(
        pyyaml(&cloudinit::meta_data(&odd))["local-hostname"],
        "0755"
    );
}

#[test]
fn merged_user_data_keeps_boxvirts_user_keys_and_identity() {
    let mut s = spec("tiny-9", "52:54:00:aa:bb:cc");
    s.extra_user_data = Some(
        "#cloud-config\nhostname: stolen\npackages: [git, 'on']\nruncmd:\n  - [sh, -c, 'echo \"hi: there\"']\nusers:\n  - default\n  - name: boxvirt\n    groups: [adm]\n  - name: alice\n    ssh_authorized_keys: [ssh-ed25519 AAAA alice]\nssh_keys:\n  ed25519_private: no\nwrite_files:\n  - path: /etc/motd\n    content: |\n      hello\n      world\n".into(),
    );
    let user = pyyaml(&cloudinit::user_data(&s).unwrap());
    assert_eq!(user["hostname"], "tiny-9");
    assert_eq!(user["users"][0]["name"], "boxvirt");
    assert_eq!(
        user["users"][0]["ssh_authorized_keys"][0],
        s.authorized_keys[0].as_str()
    );
    assert_eq!(user["users"][0]["groups"], serde_json::json!(["adm"]));
    assert_eq!(user["users"][1], "default");
    assert_eq!(user["users"][2]["name"], "alice");
    assert_eq!(
        user["ssh_keys"]["ed25519_private"],
        s.host_key.private_openssh.as_str()
    );
    assert_eq!(user["packages"], serde_json::json!(["git", "on"]));
    assert_eq!(
        user["runcmd"][0],
        serde_json::json!(["sh", "-c", "echo \"hi: there\""])
    );
    assert_eq!(user["write_files"][0]["content"], "hello\nworld\n");
}

#[test]
fn tiny_guest_awk_reads_the_user_data() {
    let dir = tempfile::tempdir().unwrap();
    let awk =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/image-build/tiny/cloud-config.awk");
    let keyout = dir.path().join("ed25519_private");
    let mut s = spec("tiny-5", "52:54:00:12:34:56");
    let plain = s.authorized_keys[0].clone();
    let odd = format!("{} odd: comment #1", plain.rsplit_once(' ').unwrap().0);
    s.authorized_keys.push(odd.clone());
    let facts = run(
        "awk",
        &[
            "-v",
            &format!("keyout={}", keyout.display()),
            "-f",
            awk.to_str().unwrap(),
        ],
        Some(&cloudinit::user_data(&s).unwrap()),
    );
    let want =
        format!("HOSTNAME tiny-5\nUSER boxvirt\nSHELL boxvirt /bin/sh\nKEY boxvirt {plain}\nKEY boxvirt {odd}\n");
    assert_eq!(facts, want);
    assert_eq!(
        std::fs::read_to_string(&keyout).unwrap(),
        s.host_key.private_openssh
    );
}

// ---- a real boot --------------------------------------------------------------

/// Destroys and undefines the domain and removes its files, even when the
/// test fails half-way.
struct Cleanup {
    uri: String,
    name: String,
    files: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(lv) = Libvirt::open(&self.uri, "cleanup") {
            if lv.domain_exists(&self.name).unwrap_or(false) {
                let _ = lv.destroy_domain(&self.name);
                let _ = lv.undefine_domain(&self.name);
            }
        }
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

fn domain_xml(name: &str, tiny: &Path, seed: &Path, mac: &str, log: &Path) -> String {
    format!(
        "<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 quiet</cmdline>
  </os>
  <features><acpi/><apic/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{seed}'/>
      <target dev='vda' bus='virtio'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <mac address='{mac}'/>
      <source network='default'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'>
      <log file='{log}' append='off'/>
      <target port='0'/>
    </serial>
    <console type='pty'><target type='serial' port='0'/></console>
    <memballoon model='none'/>
  </devices>
</domain>",
        kernel = tiny.join("vmlinuz").display(),
        initrd = tiny.join("initrd.img").display(),
        seed = seed.display(),
        log = log.display(),
    )
}

fn wait_for_line(file: &Path, marker: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.starts_with(marker)) {
            return line.trim_end().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no {marker:?} in {} within {timeout:?}; it holds:\n{text}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_tiny_guest_boots_with_the_seed_and_takes_its_identity() {
    let cwd = tempfile::tempdir().unwrap();
    let uri = live_uri();
    let ensure = common::boxvirt_in(cwd.path(), &["-c", &uri, "net", "ensure", "default"]);
    assert_eq!(
        ensure.code, 0,
        "live libvirtd not reachable at {uri} (start it with tests/harness/live-libvirtd.sh start): {}",
        ensure.stderr
    );
    let tiny = tiny_dir();

    let pid = std::process::id();
    let name = format!("seedtest-{pid}");
    let mac = format!("52:54:00:5e:{:02x}:{:02x}", (pid >> 8) & 0xff, pid & 0xff);
    let seed = PathBuf::from(format!("/var/lib/libvirt/images/{name}.img"));
    let log = PathBuf::from(format!("/var/log/libvirt/qemu/{name}.serial.log"));
    // libvirt's own per-domain log goes too.
    let qemu_log = PathBuf::from(format!("/var/log/libvirt/qemu/{name}.log"));
    let _cleanup = Cleanup {
        uri: uri.clone(),
        name: name.clone(),
        files: vec![seed.clone(), log.clone(), qemu_log],
    };

    let s = spec(&name, &mac);
    let image = cloudinit::build_seed_image(&s).unwrap();
    std::fs::create_dir_all(seed.parent().unwrap()).unwrap();
    std::fs::write(&seed, &image).unwrap();
    let _ = std::fs::remove_file(&log);

    let lv = Libvirt::open(&uri, "start it with tests/harness/live-libvirtd.sh start").unwrap();
    lv.define_domain(&domain_xml(&name, &tiny, &seed, &mac, &log))
        .unwrap();
    lv.start_domain(&name).unwrap();

    let wait = Duration::from_secs(180);
    assert_eq!(
        wait_for_line(&log, "BOXVIRT-TINY-HOSTNAME", wait),
        format!("BOXVIRT-TINY-HOSTNAME {name}")
    );
    let host: &HostKey = &s.host_key;
    assert_eq!(
        wait_for_line(&log, "BOXVIRT-TINY-HOSTKEY", wait),
        format!("BOXVIRT-TINY-HOSTKEY {}", host.pinned())
    );
    wait_for_line(&log, "BOXVIRT-TINY-BOOT-FINISHED", wait);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("boxvirt-tiny: NoCloud seed on /dev/vda"),
        "{text}"
    );

    assert!(lv.destroy_domain(&name).unwrap());
    lv.undefine_domain(&name).unwrap();
    assert!(!lv.domain_exists(&name).unwrap());
}
