//! One row per hardening guideline (README's eight): applied, not applied,
//! or not possible here, with the reason. Everything is read from outside
//! the container: its inspect data, the socket and the data dir.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use bollard::models::HostConfig;
use serde::Serialize;

use super::{apparmor, caps, credentials, seccomp, LABEL_HARDENED, LABEL_TLS};

/// What the container's inspect data says about hardening.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ContainerFacts {
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub security_opt: Vec<String>,
    pub readonly_rootfs: bool,
    pub systempaths_unconfined: bool,
    pub memory: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub pids_limit: Option<i64>,
}

impl ContainerFacts {
    pub fn from_host_config(h: &HostConfig) -> ContainerFacts {
        ContainerFacts {
            privileged: h.privileged.unwrap_or(false),
            cap_add: h.cap_add.clone().unwrap_or_default(),
            security_opt: h.security_opt.clone().unwrap_or_default(),
            readonly_rootfs: h.readonly_rootfs.unwrap_or(false),
            systempaths_unconfined: h.masked_paths.as_ref().is_some_and(|m| m.is_empty()),
            memory: h.memory.filter(|m| *m > 0),
            nano_cpus: h.nano_cpus.filter(|c| *c > 0),
            pids_limit: h.pids_limit.filter(|p| *p > 0),
        }
    }
}

/// Everything the rows are made from.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub container: Option<ContainerFacts>,
    pub hardened: bool,
    pub tls: bool,
    /// (mode, gid) of the libvirt socket.
    pub socket: Option<(u32, u32)>,
    pub host_gid: u32,
    pub auth_conf: bool,
    /// `auth_unix_rw` of libvirtd.conf (None: the packaged default).
    pub auth_unix_rw: Option<String>,
    /// The `user` of qemu.conf (None: the packaged default).
    pub qemu_user: Option<String>,
    /// qemu.conf is root-only (0600): a non-root host user cannot read it.
    pub qemu_conf_readable: bool,
    pub apparmor: bool,
}

impl Observed {
    pub fn gather(
        container: Option<(ContainerFacts, &std::collections::HashMap<String, String>)>,
        socket: &Path,
        data_dir: &Path,
        host_gid: u32,
    ) -> Observed {
        let label = |labels: &std::collections::HashMap<String, String>, k: &str| {
            labels.get(k).is_some_and(|v| v == "1")
        };
        Observed {
            hardened: container
                .as_ref()
                .is_some_and(|(_, l)| label(l, LABEL_HARDENED)),
            tls: container.as_ref().is_some_and(|(_, l)| label(l, LABEL_TLS)),
            container: container.map(|(f, _)| f),
            socket: std::fs::metadata(socket)
                .ok()
                .map(|m| (m.mode() & 0o777, m.gid())),
            host_gid,
            auth_conf: credentials::auth_conf(data_dir).is_file(),
            auth_unix_rw: conf_value(&data_dir.join("libvirt-etc/libvirtd.conf"), "auth_unix_rw"),
            qemu_user: conf_value(&data_dir.join("libvirt-etc/qemu.conf"), "user"),
            qemu_conf_readable: std::fs::File::open(data_dir.join("libvirt-etc/qemu.conf")).is_ok(),
            apparmor: apparmor::kernel_has_apparmor(),
        }
    }
}

/// `KEY = "..."` of a libvirt config file (the last active assignment).
fn conf_value(path: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().rev().find_map(|l| {
        let l = l.split('#').next()?.trim();
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    pub guideline: u8,
    pub name: &'static str,
    /// applied | not applied | not possible here
    pub state: &'static str,
    pub detail: String,
}

pub const APPLIED: &str = "applied";
pub const NOT_APPLIED: &str = "not applied";
pub const NOT_POSSIBLE: &str = "not possible here";

/// status -o json's `hardening` object.
#[derive(Debug, Clone, Serialize)]
pub struct Hardening {
    /// hardened | default
    pub profile: &'static str,
    pub guidelines: Vec<Row>,
}

pub fn hardening(o: &Observed) -> Hardening {
    Hardening {
        profile: if o.hardened { "hardened" } else { "default" },
        guidelines: rows(o),
    }
}

fn row(guideline: u8, name: &'static str, state: &'static str, detail: String) -> Row {
    Row {
        guideline,
        name,
        state,
        detail,
    }
}

const HINT: &str = "run 'boxvirt up --hardened'";

pub fn rows(o: &Observed) -> Vec<Row> {
    let Some(c) = &o.container else {
        return (1..=8)
            .map(|n| row(n, NAMES[n as usize - 1], NOT_APPLIED, "no container".into()))
            .collect();
    };
    vec![
        no_privileged(c),
        socket_auth(o),
        socket_group(o),
        read_only_root(c),
        profiles(o, c),
        limits(c),
        tls(o),
        non_root(o),
    ]
}

const NAMES: [&str; 8] = [
    "no privileged, minimal capabilities",
    "socket authentication",
    "socket 0770, host GID",
    "read-only root filesystem",
    "seccomp/AppArmor profiles",
    "resource limits",
    "TLS for remote libvirt",
    "non-root QEMU",
];

fn no_privileged(c: &ContainerFacts) -> Row {
    let (state, detail) = if c.privileged {
        (
            NOT_APPLIED,
            format!("the container is --privileged; {HINT}"),
        )
    } else if caps::is_minimal(&c.cap_add) {
        (
            APPLIED,
            format!("capabilities added: {}", c.cap_add.join(" ")),
        )
    } else {
        (
            NOT_APPLIED,
            format!(
                "not privileged, but {} capabilities added ({}); {HINT} for {}",
                c.cap_add.len(),
                c.cap_add.join(" "),
                caps::HARDENED.join(" ")
            ),
        )
    };
    row(1, NAMES[0], state, detail)
}

fn socket_auth(o: &Observed) -> Row {
    let (state, detail) = if o.hardened && o.auth_conf {
        (
            APPLIED,
            "SASL SCRAM-SHA-256; clients use DATA/auth/auth.conf (LIBVIRT_AUTH_FILE)".into(),
        )
    } else if o.hardened {
        (
            NOT_APPLIED,
            "hardened, but DATA/auth/auth.conf is missing; run 'boxvirt up --hardened' again"
                .into(),
        )
    } else {
        (
            NOT_APPLIED,
            format!("auth_unix_rw = \"none\": the socket's group is the only check; {HINT}"),
        )
    };
    row(2, NAMES[1], state, detail)
}

fn socket_group(o: &Observed) -> Row {
    let (state, detail) = match o.socket {
        Some((0o770, gid)) if gid == o.host_gid => (
            APPLIED,
            format!("mode 0770, group id {gid} (the host user's)"),
        ),
        Some((mode, gid)) => (
            NOT_APPLIED,
            format!(
                "mode {mode:04o}, group id {gid} (want 0770 and {}); run 'boxvirt up' again",
                o.host_gid
            ),
        ),
        None => (NOT_APPLIED, "no socket yet; run 'boxvirt up'".into()),
    };
    row(3, NAMES[2], state, detail)
}

fn read_only_root(c: &ContainerFacts) -> Row {
    let (state, detail) = if c.readonly_rootfs {
        (
            APPLIED,
            "ReadonlyRootfs, tmpfs for /run /tmp /var/log /var/lib/libvirt ...".into(),
        )
    } else {
        (
            NOT_APPLIED,
            format!("the root filesystem is writable; {HINT}"),
        )
    };
    row(4, NAMES[3], state, detail)
}

fn profiles(o: &Observed, c: &ContainerFacts) -> Row {
    let confined = seccomp::is_confined(&c.security_opt);
    let (apparmor_ok, apparmor) = apparmor::row_part(o.apparmor, &c.security_opt);
    let proc = if c.systempaths_unconfined {
        "all of /proc writable (systempaths=unconfined)"
    } else {
        "/proc masked as Docker does, only /proc/sys/net writable"
    };
    let (state, detail) = if confined && !c.systempaths_unconfined {
        let detail = format!("seccomp: boxvirt's profile (Docker's default); {proc}; {apparmor}");
        if apparmor_ok {
            (APPLIED, detail)
        } else {
            (
                NOT_APPLIED,
                format!("{detail}; run 'boxvirt up --hardened' again"),
            )
        }
    } else if !o.apparmor && !confined {
        (
            NOT_APPLIED,
            format!("seccomp=unconfined, {proc}; {apparmor}; {HINT}"),
        )
    } else {
        (
            NOT_APPLIED,
            format!(
                "seccomp {}; {proc}; {apparmor}; {HINT}",
                if confined { "confined" } else { "unconfined" }
            ),
        )
    };
    row(5, NAMES[4], state, detail)
}

fn limits(c: &ContainerFacts) -> Row {
    let mut parts = Vec::new();
    if let Some(m) = c.memory {
        parts.push(format!("memory {} MiB", m / (1024 * 1024)));
    }
    if let Some(n) = c.nano_cpus {
        parts.push(format!("cpus {}", n as f64 / 1e9));
    }
    if let Some(p) = c.pids_limit {
        parts.push(format!("pids {p}"));
    }
    let (state, detail) = if c.memory.is_some() && c.pids_limit.is_some() {
        (APPLIED, parts.join(", "))
    } else if parts.is_empty() {
        (
            NOT_APPLIED,
            format!("no limits; {HINT} or pass --memory/--cpus/--pids-limit"),
        )
    } else {
        (
            NOT_APPLIED,
            format!("only {}; pass --memory and --pids-limit", parts.join(", ")),
        )
    };
    row(6, NAMES[5], state, detail)
}

fn tls(o: &Observed) -> Row {
    let (state, detail) = if o.tls {
        (APPLIED, "libvirtd listens on TLS only".into())
    } else {
        (NOT_APPLIED, "run 'boxvirt up --tls'".into())
    };
    row(7, NAMES[6], state, detail)
}

fn non_root(o: &Observed) -> Row {
    let (state, detail) = match o.qemu_user.as_deref() {
        Some("root") | Some("0") | Some("+0") => {
            (NOT_APPLIED, format!("qemu.conf: user = \"root\"; {HINT}"))
        }
        Some(u) => (APPLIED, format!("QEMU runs as {u} (qemu.conf), dynamic ownership on; libvirtd stays root (bridges, firewall rules)")),
        None if o.qemu_conf_readable => (APPLIED, "QEMU runs as the packaged unprivileged user (qemu.conf has no user); libvirtd stays root (bridges, firewall rules)".into()),
        None => (APPLIED, format!("QEMU runs as the packaged unprivileged user{} (qemu.conf is root-only, not read here); libvirtd stays root (bridges, firewall rules)", if o.hardened { ", set by --hardened" } else { "" })),
    };
    row(8, NAMES[7], state, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hardened() -> Observed {
        Observed {
            container: Some(ContainerFacts {
                cap_add: vec!["NET_ADMIN".into()],
                security_opt: vec![seccomp::security_opt()],
                readonly_rootfs: true,
                memory: Some(4 << 30),
                pids_limit: Some(4096),
                ..Default::default()
            }),
            hardened: true,
            socket: Some((0o770, 1000)),
            host_gid: 1000,
            auth_conf: true,
            auth_unix_rw: Some("sasl".into()),
            qemu_user: Some("libvirt-qemu".into()),
            qemu_conf_readable: true,
            ..Default::default()
        }
    }

    #[test]
    fn config_values_are_read_by_key_last_assignment_wins() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("qemu.conf");
        std::fs::write(
            &f,
            "#user = \"root\"\nuser = \"a\"\ngroup = \"g\"\nuser = \"b\"  # set by boxvirt\n",
        )
        .unwrap();
        assert_eq!(conf_value(&f, "user").as_deref(), Some("b"));
        assert_eq!(conf_value(&f, "group").as_deref(), Some("g"));
        assert_eq!(conf_value(&f, "namespaces"), None);
    }

    #[test]
    fn hardened_applies_all_but_tls_and_says_why_for_apparmor() {
        let rows = rows(&hardened());
        assert_eq!(rows.len(), 8);
        for r in &rows {
            if r.guideline == 7 {
                assert_eq!(r.state, NOT_APPLIED);
                assert_eq!(r.detail, "run 'boxvirt up --tls'");
            } else {
                assert_eq!(r.state, APPLIED, "{r:?}");
            }
        }
        assert!(rows[4]
            .detail
            .contains("AppArmor: not possible here: the kernel has no AppArmor"));
    }

    #[test]
    fn with_apparmor_in_the_kernel_row_5_wants_boxvirts_profile() {
        let mut o = hardened();
        o.apparmor = true;
        // A hardened container without the profile (Docker's default applies).
        let r = &rows(&o)[4];
        assert_eq!(r.state, NOT_APPLIED, "{r:?}");
        assert!(r.detail.contains("docker-default"), "{r:?}");
        assert!(r.detail.contains("up --hardened"), "{r:?}");
        // With it.
        if let Some(c) = o.container.as_mut() {
            c.security_opt.push(apparmor::security_opt(apparmor::NAME));
        }
        let r = &rows(&o)[4];
        assert_eq!(r.state, APPLIED, "{r:?}");
        assert!(
            r.detail.contains("AppArmor: profile boxvirt-nested-host"),
            "{r:?}"
        );
        assert!(!r.detail.contains("not possible"), "{r:?}");
        // The same container where the kernel has none: the reason stays.
        o.apparmor = false;
        let r = &rows(&o)[4];
        assert_eq!(r.state, APPLIED, "{r:?}");
        assert!(
            r.detail
                .contains("AppArmor: not possible here: the kernel has no AppArmor"),
            "{r:?}"
        );
    }

    #[test]
    fn the_default_profile_is_reported_as_not_applied_with_a_hint() {
        let mut o = hardened();
        o.hardened = false;
        o.auth_conf = false;
        o.auth_unix_rw = Some("none".into());
        o.container = Some(ContainerFacts {
            cap_add: crate::nested::container::CAPABILITIES
                .iter()
                .map(|c| c.to_string())
                .collect(),
            security_opt: vec!["seccomp=unconfined".into()],
            systempaths_unconfined: true,
            ..Default::default()
        });
        let rows = rows(&o);
        for n in [1, 2, 4, 5, 6] {
            assert_eq!(rows[n - 1].state, NOT_APPLIED, "{:?}", rows[n - 1]);
        }
        assert_eq!(rows[2].state, APPLIED);
    }
}
