//! libvirt over TLS for an instance (`up --tls`, `tls rotate`): the PKI in
//! the data dir, what the container gets of it, and the checks that keep it
//! private. The certificates themselves are made in `tls_certs.rs`.
//!
//! ```text
//! DATA/pki/                 0700  the clients' pkipath (libvirt's file names)
//!   cacert.pem                    the CA
//!   clientcert.pem                the client certificate (DN on the server's list)
//!   clientkey.pem           0600
//!   ca/cakey.pem            0600  the CA's key (never leaves the host)
//!   ca/cacert.pem                 the CA (the copy the others come from)
//!   server/sans                   the names the server certificate holds
//!   server/CA/              ->    /etc/pki/CA (read-only): cacert.pem
//!   server/libvirt/         ->    /etc/pki/libvirt (read-only): servercert.pem,
//!                                 private/serverkey.pem (0600), allowed-dn
//! ```

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bollard::models::{Mount, MountType};
use serde::Serialize;

use super::tls_certs::{client_dn, expires, parse_san, Ca, Issued, San};
use super::Engine;
use crate::atomic_file::write_whole;
use crate::error::{Failure, Result};
use crate::settings::Settings;

/// Container label: "1" when the container serves libvirt over TLS.
pub const LABEL_TLS: &str = "boxvirt.tls";
/// The port libvirtd listens on inside the container (libvirt-tls.sh).
pub const CONTAINER_PORT: &str = "16514/tcp";
/// Certificates are renewed (server) or flagged (client) this many days
/// before they expire.
pub const RENEW_DAYS: i64 = 30;
/// The script in the image that sets up (and reloads) the listener.
const SCRIPT: &str = "/usr/local/libexec/boxvirt/libvirt-tls.sh";

/// Whether the instance serves libvirt over TLS (`up --tls`,
/// `BOXVIRT_TLS=1`). The one place that decides it.
pub fn wanted(s: &Settings) -> bool {
    // The hardened profile includes TLS (guideline 7).
    s.tls || s.hardened
}

/// A `--tls-san` value, checked: a DNS name or an IP address (exit 2).
pub fn check_san(text: &str) -> Result<San> {
    parse_san(text).ok_or_else(|| {
        Failure::usage(format!(
            "--tls-san {text:?} is neither a DNS name nor an IP address; pass e.g. --tls-san host.example.org or --tls-san 192.0.2.10"
        ))
    })
}

/// What the container spec carries for TLS (part of its fingerprint, so
/// turning TLS on or off, another port or other names recreate it).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TlsSpec {
    pub address: String,
    pub port: u16,
    pub sans: Vec<String>,
    pub pki_dir: PathBuf,
}

impl TlsSpec {
    pub fn of(s: &Settings) -> Option<TlsSpec> {
        wanted(s).then(|| TlsSpec {
            address: s
                .listen
                .map(|a| a.to_string())
                .unwrap_or_else(|| "127.0.0.1".into()),
            port: s.libvirt_tls_port,
            sans: server_sans(s).iter().map(San::to_string).collect(),
            pki_dir: s.pki_dir(),
        })
    }

    /// The server side of the PKI, mounted read-only where libvirtd looks.
    pub fn mounts(&self) -> Vec<Mount> {
        let pki = Pki::new(&self.pki_dir);
        [
            (pki.server_ca_dir(), "/etc/pki/CA"),
            (pki.server_dir(), "/etc/pki/libvirt"),
        ]
        .into_iter()
        .map(|(source, target)| Mount {
            source: Some(source.to_string_lossy().into_owned()),
            target: Some(target.to_string()),
            typ: Some(MountType::BIND),
            read_only: Some(true),
            ..Default::default()
        })
        .collect()
    }
}

/// The server certificate's names: 127.0.0.1, localhost, this machine's
/// name, the --listen address, then every --tls-san (each once).
pub fn server_sans(s: &Settings) -> Vec<San> {
    let mut names = vec![
        San::Ip(std::net::Ipv4Addr::LOCALHOST.into()),
        San::Dns("localhost".into()),
    ];
    names.extend(hostname().as_deref().and_then(parse_san));
    names.extend(s.listen.filter(|a| !a.is_unspecified()).map(San::Ip));
    names.extend(s.tls_sans.iter().filter_map(|n| parse_san(n)));
    let mut unique = Vec::new();
    for n in names {
        if !unique.contains(&n) {
            unique.push(n);
        }
    }
    unique
}

fn hostname() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// A private key (only its owner may read it) or anything else (nobody
/// but its owner may change it).
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Key,
    Public,
}

/// The PKI's paths under one directory.
pub struct Pki {
    root: PathBuf,
}

impl Pki {
    pub fn new(root: &Path) -> Pki {
        Pki {
            root: root.to_path_buf(),
        }
    }
    pub fn of(s: &Settings) -> Pki {
        Pki::new(&s.pki_dir())
    }
    pub fn ca_key(&self) -> PathBuf {
        self.root.join("ca/cakey.pem")
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca/cacert.pem")
    }
    pub fn client_ca(&self) -> PathBuf {
        self.root.join("cacert.pem")
    }
    pub fn client_cert(&self) -> PathBuf {
        self.root.join("clientcert.pem")
    }
    pub fn client_key(&self) -> PathBuf {
        self.root.join("clientkey.pem")
    }
    fn sans_file(&self) -> PathBuf {
        self.root.join("server/sans")
    }
    fn server_ca_dir(&self) -> PathBuf {
        self.root.join("server/CA")
    }
    fn server_dir(&self) -> PathBuf {
        self.root.join("server/libvirt")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.server_dir().join("servercert.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.server_dir().join("private/serverkey.pem")
    }
    pub fn allowed_dn(&self) -> PathBuf {
        self.server_dir().join("allowed-dn")
    }

    fn dirs(&self) -> Vec<(PathBuf, u32)> {
        vec![
            (self.root.clone(), 0o700),
            (self.root.join("ca"), 0o700),
            (self.root.join("server"), 0o700),
            (self.server_ca_dir(), 0o755),
            (self.server_dir(), 0o755),
            (self.server_dir().join("private"), 0o700),
        ]
    }

    fn files(&self) -> Vec<(PathBuf, Kind)> {
        vec![
            (self.ca_key(), Kind::Key),
            (self.ca_cert(), Kind::Public),
            (self.client_ca(), Kind::Public),
            (self.client_cert(), Kind::Public),
            (self.client_key(), Kind::Key),
            (self.sans_file(), Kind::Public),
            (self.server_ca_dir().join("cacert.pem"), Kind::Public),
            (self.server_cert(), Kind::Public),
            (self.server_key(), Kind::Key),
            (self.allowed_dn(), Kind::Public),
        ]
    }

    /// Refuses a PKI whose files someone else owns or could read (keys) or
    /// change (everything), naming the first such file. `owners`: the uids
    /// that may own them (this process and the host user).
    pub fn check(&self, owners: &[u32]) -> Result<()> {
        let dirs = self.dirs().into_iter().map(|(d, _)| (d, Kind::Public));
        for (path, kind) in dirs.chain(self.files()) {
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let shown = path.display();
            let fix = format!(
                "or remove {} and run 'boxvirt up --tls' for new certificates",
                self.root.display()
            );
            if meta.file_type().is_symlink() {
                return Err(Failure::failed(format!(
                    "{shown} is a symbolic link, not a file boxvirt made; remove it {fix}"
                )));
            }
            if !owners.contains(&meta.uid()) {
                return Err(Failure::failed(format!(
                    "{shown} is owned by uid {}, not by you (uid {}); check who changed it, then 'chown' it back {fix}",
                    meta.uid(),
                    owners[0]
                )));
            }
            let mode = meta.mode() & 0o7777;
            let (bad, want, why) = match kind {
                Kind::Key => (mode & 0o077, mode & 0o700, "group or others can read it"),
                Kind::Public => (mode & 0o022, mode & !0o022, "group or others can change it"),
            };
            if bad != 0 {
                return Err(Failure::failed(format!(
                    "{shown} has mode {mode:04o} ({why}); run 'chmod {want:o} {}' {fix}",
                    crate::quote::shell_path(&path)
                )));
            }
        }
        Ok(())
    }

    fn read(&self, path: &Path) -> Option<String> {
        fs::read_to_string(path).ok().filter(|t| !t.is_empty())
    }

    /// The CA, its certificates and the server and client certificates:
    /// made where missing, the server's reissued when its names changed.
    /// True when anything was written (libvirtd must load it).
    pub fn ensure(&self, s: &Settings) -> Result<bool> {
        self.make_dirs(s)?;
        let (ca, new_ca) = match (self.read(&self.ca_key()), self.read(&self.ca_cert())) {
            (Some(key), Some(cert)) => (Ca::load(&key, &cert)?, false),
            _ => (Ca::generate()?, true),
        };
        let mut changed = new_ca;
        if new_ca {
            self.write(s, &self.ca_key(), &ca.key_pem(), 0o600)?;
            self.write(s, &self.ca_cert(), &ca.cert_pem, 0o644)?;
        }
        for copy in [self.client_ca(), self.server_ca_dir().join("cacert.pem")] {
            if self.read(&copy).as_deref() != Some(ca.cert_pem.as_str()) {
                self.write(s, &copy, &ca.cert_pem, 0o644)?;
                changed = true;
            }
        }
        let sans = sans_text(&server_sans(s));
        let server_missing = [self.server_cert(), self.server_key()]
            .iter()
            .any(|p| self.read(p).is_none());
        // Nobody holds a copy of the server certificate: renew it in time.
        let server_ending = self.days_left(&self.server_cert()) < RENEW_DAYS;
        if new_ca
            || server_missing
            || server_ending
            || self.read(&self.sans_file()) != Some(sans.clone())
        {
            self.issue_server(s, &ca, &sans)?;
            changed = true;
        }
        let client_missing = [self.client_cert(), self.client_key(), self.allowed_dn()]
            .iter()
            .any(|p| self.read(p).is_none());
        if new_ca || client_missing {
            self.issue_client(s, &ca)?;
            changed = true;
        }
        // Under sudo (or another --host-uid), the files are the host user's,
        // as every file boxvirt makes in the data dir.
        let dirs = self.dirs().into_iter().map(|(d, _)| d);
        for path in dirs.chain(self.files().into_iter().map(|(f, _)| f)) {
            give(&path, s);
        }
        Ok(changed)
    }

    /// New server and client certificates from the kept CA (the server's
    /// names as before); the client gets a new DN, so the old client
    /// certificate is no longer let in. Returns the new DN.
    pub fn rotate(&self, s: &Settings, ca: &Ca) -> Result<String> {
        let sans = self
            .read(&self.sans_file())
            .unwrap_or_else(|| sans_text(&server_sans(s)));
        self.issue_server(s, ca, &sans)?;
        self.issue_client(s, ca)
    }

    /// The CA made by the first `up --tls` (not found before it).
    pub fn ca(&self, s: &Settings) -> Result<Ca> {
        let (Some(key), Some(cert)) = (self.read(&self.ca_key()), self.read(&self.ca_cert()))
        else {
            return Err(Failure::not_found(format!(
                "no TLS certificates for instance '{}' in {}; run 'boxvirt up --tls' first",
                s.instance,
                self.root.display()
            )));
        };
        Ca::load(&key, &cert)
    }

    /// Whole days until the certificate at `path` expires (0 when it does
    /// not parse or has expired).
    fn days_left(&self, path: &Path) -> i64 {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        self.read(path)
            .and_then(|pem| expires(&pem))
            .map_or(0, |end| ((end - now) / 86400).max(0))
    }

    /// The client certificate expires within [`RENEW_DAYS`]: Some(days left).
    /// (Renewing it changes what clients hold: `tls rotate` does that.)
    pub fn client_ending(&self) -> Option<i64> {
        let days = self.days_left(&self.client_cert());
        (self.client_cert().exists() && days < RENEW_DAYS).then_some(days)
    }

    /// The DN libvirtd lets in (what the last client certificate carries).
    pub fn client_dn(&self) -> Option<String> {
        self.read(&self.allowed_dn()).map(|t| t.trim().to_string())
    }

    fn issue_server(&self, s: &Settings, ca: &Ca, sans: &str) -> Result<()> {
        let names: Vec<San> = sans.lines().filter_map(parse_san).collect();
        let cn = format!("boxvirt-server-{}", s.instance);
        let issued = ca.issue_server(&cn, &names)?;
        self.write_pair(s, &issued, &self.server_cert(), &self.server_key())?;
        self.write(s, &self.sans_file(), sans, 0o644)
    }

    fn issue_client(&self, s: &Settings, ca: &Ca) -> Result<String> {
        let cn = format!("boxvirt-client-{}-{}", s.instance, unique_id());
        let issued = ca.issue_client(&cn)?;
        self.write_pair(s, &issued, &self.client_cert(), &self.client_key())?;
        let dn = client_dn(&cn);
        self.write(s, &self.allowed_dn(), &format!("{dn}\n"), 0o644)?;
        Ok(dn)
    }

    /// The key first: a certificate never sits beside a key it does not
    /// belong to for longer than one rename.
    fn write_pair(&self, s: &Settings, issued: &Issued, cert: &Path, key: &Path) -> Result<()> {
        self.write(s, key, &issued.key_pem, 0o600)?;
        self.write(s, cert, &issued.cert_pem, 0o644)
    }

    fn write(&self, s: &Settings, path: &Path, text: &str, mode: u32) -> Result<()> {
        write_whole(path, text.as_bytes(), mode)
            .map_err(|e| Failure::failed(format!("cannot write {}: {e}", path.display())))?;
        give(path, s);
        Ok(())
    }

    fn make_dirs(&self, s: &Settings) -> Result<()> {
        for (dir, mode) in self.dirs() {
            let fail = |e: std::io::Error| {
                Failure::failed(format!("cannot create {}: {e}", dir.display()))
            };
            if !dir.is_dir() {
                fs::create_dir_all(&dir).map_err(fail)?;
                fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).map_err(fail)?;
                give(&dir, s);
            }
        }
        Ok(())
    }
}

/// Hands a PKI file or directory to the host user when running as root
/// (as `ssh_keys::hand_over`, but never through a symbolic link).
fn give(path: &Path, s: &Settings) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let _ = std::os::unix::fs::lchown(path, Some(s.host_uid), Some(s.host_gid));
    }
}

fn sans_text(sans: &[San]) -> String {
    sans.iter().map(|n| format!("{n}\n")).collect()
}

/// Eight hex digits that differ between two client certificates (the DN
/// is not a secret: the CA's signature is what lets a client in).
fn unique_id() -> String {
    use sha2::{Digest, Sha256};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!("{nanos}-{}", std::process::id());
    hex::encode(&Sha256::digest(seed.as_bytes())[..4])
}

/// The uids that may own the PKI: this process and the host user.
pub fn owners(s: &Settings) -> Vec<u32> {
    // SAFETY: geteuid has no preconditions.
    vec![unsafe { libc::geteuid() }, s.host_uid]
}

/// Makes libvirtd in the running container load the PKI again (new
/// certificates and client DN): libvirt-tls.sh restarts it.
pub fn reload(engine: &Engine, container: &str) -> Result<()> {
    let (code, output) = engine.exec(container, &[SCRIPT, "reload"])?;
    if code != 0 {
        let last = output.lines().last().unwrap_or("no output").to_string();
        return Err(Failure::failed(format!(
            "cannot reload libvirtd's TLS certificates in {container} ({last}); run 'boxvirt restart --tls'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::GlobalArgs;
    use crate::settings::Sources;

    fn settings(data: &Path) -> Settings {
        let src = Sources {
            cwd: data.to_path_buf(),
            // SAFETY: no preconditions.
            uid: unsafe { libc::geteuid() },
            gid: unsafe { libc::getegid() },
            ..Default::default()
        };
        let mut s = Settings::resolve(&GlobalArgs::default(), &src).unwrap();
        s.tls = true;
        s.tls_sans = vec!["build-7.example.org".into(), "192.0.2.10".into()];
        s.listen = Some("0.0.0.0".parse().unwrap());
        s
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().mode() & 0o777
    }

    #[test]
    fn server_names_start_with_loopback_and_hold_the_extras_once() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = settings(tmp.path());
        s.tls_sans.push("localhost".into());
        let sans: Vec<String> = server_sans(&s).iter().map(San::to_string).collect();
        assert_eq!(&sans[..2], ["127.0.0.1", "localhost"]);
        assert!(
            sans.ends_with(&["build-7.example.org".into(), "192.0.2.10".into()]),
            "{sans:?}"
        );
        assert_eq!(sans.iter().filter(|n| *n == "localhost").count(), 1);
        // 0.0.0.0 is not a name anybody dials; a real address is.
        assert!(!sans.contains(&"0.0.0.0".to_string()));
        s.listen = Some("192.0.2.99".parse().unwrap());
        assert!(server_sans(&s).contains(&San::Ip("192.0.2.99".parse().unwrap())));
        assert!(check_san("no good").is_err());
        assert_eq!(
            check_san("a b").unwrap_err().exit,
            crate::error::Exit::Usage
        );
    }

    #[test]
    fn ensure_makes_private_keys_and_keeps_what_is_there() {
        let tmp = tempfile::tempdir().unwrap();
        let s = settings(tmp.path());
        let pki = Pki::of(&s);
        assert!(pki.ensure(&s).unwrap());
        for key in [pki.ca_key(), pki.client_key(), pki.server_key()] {
            assert_eq!(mode(&key), 0o600, "{key:?}");
        }
        for public in [pki.client_ca(), pki.client_cert(), pki.server_cert()] {
            assert_eq!(mode(&public), 0o644, "{public:?}");
        }
        assert_eq!(mode(&s.pki_dir()), 0o700);
        pki.check(&owners(&s)).unwrap();
        let dn = pki.client_dn().unwrap();
        assert!(dn.starts_with("CN=boxvirt-client-default-"), "{dn}");

        // Nothing to do the second time; other names reissue the server only.
        let ca = fs::read(pki.ca_cert()).unwrap();
        let server = fs::read(pki.server_cert()).unwrap();
        assert!(!pki.ensure(&s).unwrap());
        let mut other = s.clone();
        other.tls_sans.push("second.example.org".into());
        assert!(pki.ensure(&other).unwrap());
        assert_ne!(fs::read(pki.server_cert()).unwrap(), server);
        assert_eq!(fs::read(pki.ca_cert()).unwrap(), ca);
        assert_eq!(pki.client_dn().unwrap(), dn);
        let sans = fs::read_to_string(pki.sans_file()).unwrap();
        assert!(sans.ends_with("second.example.org\n"), "{sans}");
        // A server certificate that cannot be read (or ends soon) is renewed.
        fs::write(pki.server_cert(), "junk").unwrap();
        assert!(pki.ensure(&other).unwrap());
        assert!(fs::read_to_string(pki.server_cert())
            .unwrap()
            .starts_with("-----BEGIN"));
        assert_eq!(pki.client_ending(), None);
    }

    #[test]
    fn rotate_keeps_the_ca_and_changes_the_client_dn() {
        let tmp = tempfile::tempdir().unwrap();
        let s = settings(tmp.path());
        let pki = Pki::of(&s);
        let e = pki.ca(&s).err().unwrap();
        assert_eq!(e.exit, crate::error::Exit::NotFound);
        pki.ensure(&s).unwrap();
        let (ca, dn) = (fs::read(pki.ca_cert()).unwrap(), pki.client_dn().unwrap());
        let (server, client) = (
            fs::read(pki.server_cert()).unwrap(),
            fs::read(pki.client_cert()).unwrap(),
        );
        let new_dn = pki.rotate(&s, &pki.ca(&s).unwrap()).unwrap();
        assert_ne!(new_dn, dn);
        assert_eq!(pki.client_dn().unwrap(), new_dn);
        assert_eq!(fs::read(pki.ca_cert()).unwrap(), ca);
        assert_eq!(fs::read(pki.client_ca()).unwrap(), ca);
        assert_ne!(fs::read(pki.server_cert()).unwrap(), server);
        assert_ne!(fs::read(pki.client_cert()).unwrap(), client);
        assert_eq!(mode(&pki.client_key()), 0o600);
    }

    #[test]
    fn a_readable_key_or_a_writable_cert_is_refused_by_name() {
        let tmp = tempfile::tempdir().unwrap();
        let s = settings(tmp.path());
        let pki = Pki::of(&s);
        pki.ensure(&s).unwrap();
        fs::set_permissions(pki.client_key(), fs::Permissions::from_mode(0o644)).unwrap();
        let e = pki.check(&owners(&s)).unwrap_err();
        assert!(
            e.message.contains("clientkey.pem has mode 0644"),
            "{}",
            e.message
        );
        assert!(e.message.contains("chmod 600"), "{}", e.message);
        fs::set_permissions(pki.client_key(), fs::Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(pki.server_cert(), fs::Permissions::from_mode(0o666)).unwrap();
        let e = pki.check(&owners(&s)).unwrap_err();
        assert!(
            e.message.contains("servercert.pem has mode 0666"),
            "{}",
            e.message
        );
        fs::set_permissions(pki.server_cert(), fs::Permissions::from_mode(0o644)).unwrap();
        pki.check(&owners(&s)).unwrap();
        // Owned by someone else.
        let e = pki.check(&[u32::MAX - 1]).unwrap_err();
        assert!(e.message.contains("is owned by uid"), "{}", e.message);
        // A symlink in place of a key.
        fs::remove_file(pki.client_key()).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", pki.client_key()).unwrap();
        let e = pki.check(&owners(&s)).unwrap_err();
        assert!(e.message.contains("symbolic link"), "{}", e.message);
    }

    #[test]
    fn the_spec_mounts_the_server_side_read_only() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = settings(tmp.path());
        s.listen = None;
        let spec = TlsSpec::of(&s).unwrap();
        assert_eq!((spec.address.as_str(), spec.port), ("127.0.0.1", 16514));
        let mounts = spec.mounts();
        assert!(mounts.iter().all(|m| m.read_only == Some(true)));
        let targets: Vec<_> = mounts.iter().map(|m| m.target.clone().unwrap()).collect();
        assert_eq!(targets, ["/etc/pki/CA", "/etc/pki/libvirt"]);
        s.tls = false;
        assert_eq!(TlsSpec::of(&s), None);
    }
}
