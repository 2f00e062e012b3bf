//! Tier 4: libvirt over TLS from a nested host made with `up --tls`, against
//! the real Docker engine, the real image and the real `virsh`.
//!
//! One instance (`tls-e2e`, its own data dir, `--auto-ports`): boxvirt and
//! virsh connect over TLS with the instance's client certificate; a client
//! with no certificate, with one from another CA and with a DN not on the
//! list is refused, and libvirtd's own log says why (so the refusal is the
//! server's, not a broken URI); the plain TCP port stays closed; `tls
//! rotate` keeps the CA and shuts the old client certificate out; a key
//! others can read stops `up`; `up` without `--tls` turns the listener off.
//!
//! Requires (and FAILS without): a Docker engine on /var/run/docker.sock
//! (tests/harness/start-dockerd.sh) and the base image debian:bookworm-slim
//! (tests/harness/base-image.sh).

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use boxvirt::nested::tls_certs::{client_dn, Ca};
use common::nested::docker;
use common::{Boxvirt, Run};

const INSTANCE: &str = "tls-e2e";
const CONTAINER: &str = "boxman-libvirt-tls-e2e";

/// The test's instance: its working dir and data dir. Dropping it removes
/// the container, so a failed assertion leaves nothing running.
struct Instance {
    work: tempfile::TempDir,
}

impl Instance {
    fn new() -> Instance {
        docker(&["rm", "-f", CONTAINER]);
        Instance {
            work: tempfile::Builder::new()
                .prefix("boxvirt-tls-e2e-")
                .tempdir()
                .unwrap(),
        }
    }
    fn data(&self) -> PathBuf {
        self.work.path().join("data")
    }
    fn pki(&self) -> PathBuf {
        self.data().join("pki")
    }
    /// `boxvirt --instance tls-e2e --data-dir DATA ARGS`, exit 0 expected.
    fn boxvirt<'a>(&self, args: impl IntoIterator<Item = &'a str>) -> Boxvirt {
        let data = self.data();
        Boxvirt::new(self.work.path())
            .args(["--instance", INSTANCE, "--data-dir"])
            .arg(data.to_str().unwrap())
            .args(args)
    }
    /// A client directory (libvirt's pkipath layout) of the test's own.
    fn client_dir(&self, name: &str) -> PathBuf {
        let dir = self.work.path().join(name);
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        docker(&["rm", "-f", CONTAINER]);
    }
}

fn docker_out(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `virsh -c URI list --all`: (succeeded, stdout + stderr).
fn virsh_list(uri: &str) -> (bool, String) {
    virsh_list_as(uri, None)
}

/// The same, as another user (uid = gid, no other groups) when given.
fn virsh_list_as(uri: &str, uid: Option<u32>) -> (bool, String) {
    let mut cmd = match uid {
        None => Command::new("virsh"),
        Some(id) => {
            let mut c = Command::new("setpriv");
            let id = id.to_string();
            c.args(["--reuid", &id, "--regid", &id, "--clear-groups", "virsh"]);
            c.env("HOME", "/nonexistent");
            c
        }
    };
    let out = cmd
        .args(["-c", uri, "list", "--all"])
        .env_remove("LIBVIRT_DEFAULT_URI")
        .stdin(Stdio::null())
        .output()
        .expect("virsh (libvirt-clients) must be installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// libvirtd's error log inside the container (supervisord keeps it).
fn server_log() -> String {
    docker_out(&[
        "exec",
        CONTAINER,
        "cat",
        "/var/log/supervisor/libvirtd.stderr.log",
    ])
}

/// The URI with another pkipath (the same port and host).
fn with_pkipath(uri: &str, dir: &Path) -> String {
    let base = uri.split_once('?').unwrap().0;
    format!(
        "{base}?pkipath={}",
        boxvirt::uri::encode(dir.as_os_str().as_encoded_bytes())
    )
}

/// virsh is refused at `uri`, and libvirtd logs `reason` for it.
#[track_caller]
fn refused(uri: &str, reason: &str) {
    let before = server_log().matches(reason).count();
    let (ok, text) = virsh_list(uri);
    assert!(!ok, "virsh got in at {uri}: {text}");
    let after = server_log().matches(reason).count();
    assert!(
        after > before,
        "libvirtd did not log {reason:?} for {uri} (virsh said: {text}); log:\n{}",
        server_log()
    );
}

fn write(path: &Path, text: &str, mode: u32) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A TCP socket listening on `port` in the container (its /proc/net/tcp*).
fn listens_inside(port: u16) -> bool {
    let tables = docker_out(&["exec", CONTAINER, "cat", "/proc/net/tcp", "/proc/net/tcp6"]);
    let want = format!(":{port:04X}");
    tables.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[1].ends_with(&want) && f[3] == "0A"
    })
}

fn up_tls(inst: &Instance) -> Run {
    inst.boxvirt([
        "-o",
        "json",
        "up",
        "--tls",
        "--tls-san",
        "tls-e2e.example.org",
        "--auto-ports",
        "--no-link-ssh",
    ])
    .run()
}

#[test]
fn libvirt_over_tls_end_to_end() {
    assert!(
        docker(&["info"]),
        "no Docker engine answers on /var/run/docker.sock: run tests/harness/start-dockerd.sh first"
    );
    let inst = Instance::new();

    // up --tls: the summary names the TLS URI, which answers at once.
    let up = up_tls(&inst).json();
    let uri = up["tls_uri"]
        .as_str()
        .expect("tls_uri in up's JSON")
        .to_string();
    assert!(uri.starts_with("qemu+tls://127.0.0.1:"), "{uri}");
    assert!(
        uri.ends_with(&format!("/system?pkipath={}", inst.pki().display())),
        "{uri}"
    );
    let pki = inst.pki();
    for key in [
        "clientkey.pem",
        "ca/cakey.pem",
        "server/libvirt/private/serverkey.pem",
    ] {
        assert_eq!(mode(&pki.join(key)), 0o600, "{key}");
    }
    assert_eq!(mode(&pki), 0o700);
    assert_eq!(
        docker_out(&[
            "inspect",
            "-f",
            "{{index .Config.Labels \"boxvirt.tls\"}}",
            CONTAINER
        ])
        .trim(),
        "1"
    );
    let printed = inst.boxvirt(["-o", "json", "uri"]).run().json();
    assert_eq!(printed["tls_uri"], uri.as_str(), "{printed:#}");

    // boxvirt and virsh over TLS.
    Boxvirt::new(inst.work.path())
        .args(["-c", &uri, "vm", "list"])
        .stdout_has("no VMs")
        .run();
    let doctor = Boxvirt::new(inst.work.path())
        .args(["-c", &uri, "-o", "json", "doctor"])
        .run()
        .json();
    let libvirt_row = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "libvirt")
        .unwrap();
    assert_eq!(libvirt_row["status"], "pass", "{doctor:#}");
    let (ok, text) = virsh_list(&uri);
    assert!(ok, "virsh over TLS: {text}");

    // TLS only: libvirtd listens on 16514 in the container, not on 16509,
    // and Docker publishes no TCP port for it.
    assert!(listens_inside(16514));
    assert!(
        !listens_inside(16509),
        "libvirtd listens on the plain TCP port"
    );
    let published = docker_out(&["port", CONTAINER]);
    assert!(!published.contains("16509"), "{published}");
    assert!(published.contains("16514/tcp -> 127.0.0.1:"), "{published}");

    // No client certificate.
    let bare = inst.client_dir("no-cert");
    fs::copy(pki.join("cacert.pem"), bare.join("cacert.pem")).unwrap();
    refused(&with_pkipath(&uri, &bare), "No certificate was found");

    // A certificate from another CA, with the allowed DN. The client trusts
    // both CAs, so it sends the certificate and the server decides.
    let allowed = fs::read_to_string(pki.join("server/libvirt/allowed-dn")).unwrap();
    let cn = allowed.trim().strip_prefix("CN=").unwrap().to_string();
    let foreign_ca = Ca::generate().unwrap();
    let foreign = foreign_ca.issue_client(&cn).unwrap();
    let dir = inst.client_dir("foreign-ca");
    let ca_pem = fs::read_to_string(pki.join("cacert.pem")).unwrap();
    write(
        &dir.join("cacert.pem"),
        &format!("{ca_pem}{}", foreign_ca.cert_pem),
        0o644,
    );
    write(&dir.join("clientcert.pem"), &foreign.cert_pem, 0o644);
    write(&dir.join("clientkey.pem"), &foreign.key_pem, 0o600);
    refused(&with_pkipath(&uri, &dir), "hasn't got a known issuer");

    // Our CA, another DN.
    let ca = Ca::load(
        &fs::read_to_string(pki.join("ca/cakey.pem")).unwrap(),
        &ca_pem,
    )
    .unwrap();
    let intruder = ca.issue_client("intruder").unwrap();
    assert_ne!(client_dn("intruder"), allowed.trim());
    let dir = inst.client_dir("other-dn");
    write(&dir.join("cacert.pem"), &ca_pem, 0o644);
    write(&dir.join("clientcert.pem"), &intruder.cert_pem, 0o644);
    write(&dir.join("clientkey.pem"), &intruder.key_pem, 0o600);
    refused(
        &with_pkipath(&uri, &dir),
        "not on the list of allowed clients",
    );

    // tls rotate: the CA stays, the old client certificate is shut out.
    let old = inst.client_dir("old-client");
    for f in ["cacert.pem", "clientcert.pem", "clientkey.pem"] {
        fs::copy(pki.join(f), old.join(f)).unwrap();
    }
    let rotated = inst.boxvirt(["-o", "json", "tls", "rotate"]).run().json();
    assert_eq!(rotated["reloaded"], true, "{rotated:#}");
    assert_ne!(rotated["client_dn"], allowed.trim(), "{rotated:#}");
    assert_eq!(fs::read_to_string(pki.join("cacert.pem")).unwrap(), ca_pem);
    assert_ne!(
        fs::read(pki.join("clientcert.pem")).unwrap(),
        fs::read(old.join("clientcert.pem")).unwrap()
    );
    let (ok, text) = virsh_list(&uri);
    assert!(ok, "virsh with the new client certificate: {text}");
    refused(
        &with_pkipath(&uri, &old),
        "not on the list of allowed clients",
    );

    // A key others can read stops `up --tls` and `tls rotate`, naming it.
    let key = pki.join("clientkey.pem");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    for args in [
        vec!["up", "--tls", "--auto-ports", "--no-link-ssh"],
        vec!["tls", "rotate"],
    ] {
        inst.boxvirt(args)
            .status(1)
            .error_has(&format!("{} has mode 0644", key.display()))
            .run();
    }
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();

    // up without --tls: the container is recreated without the listener.
    inst.boxvirt(["up", "--auto-ports", "--no-link-ssh"]).run();
    assert_eq!(
        docker_out(&[
            "inspect",
            "-f",
            "{{index .Config.Labels \"boxvirt.tls\"}}",
            CONTAINER
        ])
        .trim(),
        ""
    );
    assert!(
        !listens_inside(16514),
        "TLS listener left on after up without --tls"
    );
    let printed = inst.boxvirt(["-o", "json", "uri"]).run().json();
    assert!(printed.get("tls_uri").is_none(), "{printed:#}");

    // And back on, for a host user who is not root (as under sudo): the
    // same CA, every PKI file handed to that user, who connects with virsh.
    const USER: u32 = 4242;
    fs::set_permissions(inst.work.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let id = USER.to_string();
    let up = inst
        .boxvirt(["-o", "json", "--host-uid", &id, "--host-gid", &id])
        .args(["up", "--tls", "--auto-ports", "--no-link-ssh"])
        .run()
        .json();
    let uri = up["tls_uri"].as_str().unwrap().to_string();
    assert_eq!(fs::read_to_string(pki.join("cacert.pem")).unwrap(), ca_pem);
    for f in [
        "clientkey.pem",
        "clientcert.pem",
        "ca/cakey.pem",
        "server/libvirt/private/serverkey.pem",
    ] {
        assert_eq!(fs::metadata(pki.join(f)).unwrap().uid(), USER, "{f}");
    }
    let (ok, text) = virsh_list_as(&uri, Some(USER));
    assert!(
        ok,
        "virsh over TLS as uid {USER} after switching back: {text}"
    );

    inst.boxvirt(["down"]).run();
}

#[test]
fn tls_bad_input_is_refused_before_anything_starts() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let run = |args: &[&str]| {
        Boxvirt::new(work.path())
            .args([
                "--instance",
                "tls-bad",
                "--data-dir",
                data.to_str().unwrap(),
            ])
            .args(args.iter().copied())
    };
    run(&["up", "--tls", "--tls-san", "not a name"])
        .status(2)
        .error_has("--tls-san \"not a name\" is neither a DNS name nor an IP address")
        .run();
    run(&[
        "up",
        "--tls",
        "--tls-san",
        "ok.example.org",
        "--tls-san",
        "300.1.1.1",
    ])
    .status(2)
    .error_has("300.1.1.1")
    .run();
    run(&["up", "--listen", "127.0.0.1"])
        .status(2)
        .error_has("go with --tls")
        .run();
    run(&["up", "--tls", "--listen", "no-address"])
        .status(2)
        .run();
    // Nothing was made.
    assert!(!data.exists(), "bad input left {}", data.display());
    // Nothing to rotate before the first `up --tls`.
    run(&["tls", "rotate"])
        .status(3)
        .error_has("run 'boxvirt up --tls' first")
        .run();
}
