//! `status`: one report of everything that makes an instance usable, with a
//! stable JSON schema (README "status") and a table. `ok` is false when any
//! part is wrong, and then `problems` says what.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use serde::Serialize;
use tabled::Tabled;

use super::container::ContainerInfo;
use super::docker::Engine;
use super::hardening::report::{self, Hardening, Observed};
use super::{ssh_config, ssh_keys};
use crate::error::Result;
use crate::settings::Settings;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub instance: String,
    pub ok: bool,
    pub problems: Vec<String>,
    pub container: ContainerPart,
    pub programs: Vec<Program>,
    pub sshd: Sshd,
    pub ports: Vec<Port>,
    pub socket: Socket,
    pub ssh_key: SshKey,
    pub ssh_config: SshConfig,
    /// One row per hardening guideline (1-8) and the profile.
    pub hardening: Hardening,
}

#[derive(Debug, Clone, Serialize)]
pub struct ContainerPart {
    pub name: String,
    pub exists: bool,
    pub state: String,
    pub health: Option<String>,
    pub image: Option<String>,
    pub started_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Program {
    pub name: String,
    pub state: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sshd {
    pub port: u16,
    pub answering: bool,
    pub banner: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Port {
    pub name: String,
    pub port: u16,
    pub published: bool,
    pub address: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Socket {
    pub path: String,
    pub uri: String,
    pub present: bool,
    pub answering: bool,
    pub libvirt_version: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SshKey {
    pub path: String,
    pub present: bool,
    pub mode: Option<String>,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SshConfig {
    pub path: String,
    pub present: bool,
    pub link: Option<String>,
}

/// One table row.
#[derive(Debug, Clone, Tabled, PartialEq, Eq)]
pub struct Row {
    #[tabled(rename = "CHECK")]
    pub check: String,
    #[tabled(rename = "STATE")]
    pub state: String,
    #[tabled(rename = "DETAIL")]
    pub detail: String,
}

/// Gathers the report. `libvirt_check` opens the socket and returns the
/// daemon version (the libvirt side lives outside `nested/`).
pub fn gather(
    engine: &Engine,
    settings: &Settings,
    libvirt_check: impl Fn() -> Result<String>,
) -> Result<Report> {
    let name = settings.container_name();
    let info = engine.container(&name)?;
    let running = info.as_ref().is_some_and(|c| c.running);
    let container = container_part(&name, info.as_ref());

    let programs = if running {
        match engine.exec(&name, &["supervisorctl", "status"]) {
            Ok((_, text)) => parse_supervisorctl(&text),
            Err(e) => vec![Program {
                name: "supervisord".into(),
                state: "UNKNOWN".into(),
                detail: e.message,
            }],
        }
    } else {
        Vec::new()
    };

    // The published port is the truth (it differs after `up --auto-ports`).
    let port = info
        .as_ref()
        .and_then(|c| c.ssh_port)
        .unwrap_or(settings.ssh_port);
    let banner = if running { ssh_banner(port) } else { None };
    let sshd = Sshd {
        port,
        answering: banner.is_some(),
        banner,
    };

    let ports = vec![
        Port {
            name: "ssh".into(),
            port,
            published: info.as_ref().is_some_and(|c| c.ssh_port.is_some()),
            address: info.as_ref().and_then(|c| c.ssh_host_ip.clone()),
        },
        Port {
            name: "libvirt-tcp".into(),
            port: settings.libvirt_tcp_port,
            published: false,
            address: None,
        },
        // Published only by `up --tls`.
        Port {
            name: "libvirt-tls".into(),
            port: info
                .as_ref()
                .and_then(|c| c.tls_port)
                .unwrap_or(settings.libvirt_tls_port),
            published: info.as_ref().is_some_and(|c| c.tls_port.is_some()),
            address: info.as_ref().and_then(|c| c.tls_host_ip.clone()),
        },
    ];

    let sock_path = settings.socket_path();
    let present = std::fs::metadata(&sock_path).is_ok();
    let (libvirt_version, error) = if present {
        match libvirt_check() {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e.message)),
        }
    } else {
        (None, None)
    };
    let socket = Socket {
        path: sock_path.display().to_string(),
        uri: settings.socket_uri(),
        present,
        answering: libvirt_version.is_some(),
        libvirt_version,
        error,
    };

    let key = settings.ssh_key_path();
    let mode = ssh_keys::key_mode(&key);
    let ssh_key = SshKey {
        path: key.display().to_string(),
        present: mode.is_some(),
        mode: mode.map(|m| format!("{m:04o}")),
        ok: mode == Some(0o600),
    };

    let link = ssh_config::link_path(settings).ok().filter(|l| {
        std::fs::read_link(l)
            .map(|t| t == settings.ssh_config_path())
            .unwrap_or(false)
    });
    let ssh_config = SshConfig {
        path: settings.ssh_config_path().display().to_string(),
        present: settings.ssh_config_path().exists(),
        link: link.map(|l| l.display().to_string()),
    };

    let observed = Observed::gather(
        info.as_ref().map(|c| (c.hardening.clone(), &c.labels)),
        &sock_path,
        &settings.data_dir,
        settings.host_gid,
    );
    let mut report = Report {
        hardening: report::hardening(&observed),
        instance: settings.instance.clone(),
        ok: true,
        problems: Vec::new(),
        container,
        programs,
        sshd,
        ports,
        socket,
        ssh_key,
        ssh_config,
    };
    report.problems = problems(&report);
    report.ok = report.problems.is_empty();
    Ok(report)
}

fn container_part(name: &str, info: Option<&ContainerInfo>) -> ContainerPart {
    ContainerPart {
        name: name.to_string(),
        exists: info.is_some(),
        state: info
            .map(|c| c.state.clone())
            .unwrap_or_else(|| "missing".into()),
        health: info.and_then(|c| c.health.clone()),
        image: info.map(|c| c.image.clone()),
        started_at: info.and_then(|c| c.started_at.clone()),
    }
}

/// What is wrong, one line each (empty: all good).
pub fn problems(r: &Report) -> Vec<String> {
    let mut p = Vec::new();
    if !r.container.exists {
        p.push(format!(
            "container {} does not exist; run 'boxvirt up'",
            r.container.name
        ));
    } else if r.container.state != "running" {
        p.push(format!(
            "container {} is {}; run 'boxvirt up'",
            r.container.name, r.container.state
        ));
    } else {
        if r.container.health.as_deref() == Some("unhealthy") {
            p.push(format!(
                "container {} is unhealthy; see 'boxvirt logs'",
                r.container.name
            ));
        }
        for prog in &r.programs {
            // net-default is a one-shot: EXITED is its normal end.
            // STARTING is supervisord's first `startsecs` (1-2 s) of a
            // program: `up` returns before they pass, as soon as libvirt and
            // sshd answer. A program that fails to start goes BACKOFF or
            // FATAL, and libvirtd and sshd are judged by their answers below.
            let fine = matches!(prog.state.as_str(), "RUNNING" | "STARTING")
                || (prog.name == "net-default" && prog.state == "EXITED");
            if !fine {
                p.push(format!("program {} is {}", prog.name, prog.state));
            }
        }
        if !r.sshd.answering {
            p.push(format!("sshd does not answer on 127.0.0.1:{}", r.sshd.port));
        }
    }
    if r.container.state == "running" || r.socket.present {
        if !r.socket.present {
            p.push(format!("no libvirt socket at {}", r.socket.path));
        } else if !r.socket.answering {
            p.push(format!("libvirt does not answer on {}", r.socket.path));
        }
    }
    if !r.ssh_key.present {
        p.push(format!("no ssh key at {}", r.ssh_key.path));
    } else if !r.ssh_key.ok {
        p.push(format!(
            "ssh key {} has mode {} (ssh wants 0600)",
            r.ssh_key.path,
            r.ssh_key.mode.clone().unwrap_or_default()
        ));
    }
    p
}

/// The table form of a report.
pub fn rows(r: &Report) -> Vec<Row> {
    let row = |check: &str, state: &str, detail: String| Row {
        check: check.into(),
        state: state.into(),
        detail,
    };
    let mut rows = Vec::new();
    let health = r
        .container
        .health
        .as_deref()
        .map(|h| format!(" ({h})"))
        .unwrap_or_default();
    rows.push(row(
        "container",
        &format!("{}{health}", r.container.state),
        format!(
            "{}{}",
            r.container.name,
            r.container
                .image
                .as_deref()
                .map(|i| format!(", image {i}"))
                .unwrap_or_default()
        ),
    ));
    for prog in &r.programs {
        rows.push(row(
            &format!("program {}", prog.name),
            &prog.state,
            prog.detail.clone(),
        ));
    }
    rows.push(row(
        "sshd",
        if r.sshd.answering {
            "answering"
        } else {
            "not answering"
        },
        format!(
            "127.0.0.1:{}{}",
            r.sshd.port,
            r.sshd
                .banner
                .as_deref()
                .map(|b| format!(" {b}"))
                .unwrap_or_default()
        ),
    ));
    for port in &r.ports {
        let (state, detail) = if port.published {
            (
                "published",
                format!(
                    "{}:{} -> {}",
                    port.address.as_deref().unwrap_or("?"),
                    port.port,
                    if port.name == "ssh" {
                        "22/tcp"
                    } else {
                        super::tls::CONTAINER_PORT
                    }
                ),
            )
        } else if port.name == "ssh" {
            ("not published", port.port.to_string())
        } else {
            (
                "reserved",
                format!(
                    "{} (not published: libvirtd has no TCP/TLS listener)",
                    port.port
                ),
            )
        };
        rows.push(row(&format!("port {}", port.name), state, detail));
    }
    let sock_state = match (r.socket.present, r.socket.answering) {
        (false, _) => "missing",
        (true, true) => "answering",
        (true, false) => "not answering",
    };
    let sock_detail = match (&r.socket.libvirt_version, &r.socket.error) {
        (Some(v), _) => format!("{} (libvirt {v})", r.socket.path),
        (None, Some(e)) => format!("{}: {e}", r.socket.path),
        _ => r.socket.path.clone(),
    };
    rows.push(row("libvirt socket", sock_state, sock_detail));
    rows.push(row(
        "ssh key",
        if r.ssh_key.ok {
            "ok"
        } else if r.ssh_key.present {
            "bad mode"
        } else {
            "missing"
        },
        format!(
            "{}{}",
            r.ssh_key.path,
            r.ssh_key
                .mode
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        ),
    ));
    rows.push(row(
        "ssh config",
        if r.ssh_config.present {
            "present"
        } else {
            "missing"
        },
        format!(
            "{}{}",
            r.ssh_config.path,
            r.ssh_config
                .link
                .as_deref()
                .map(|l| format!(" (linked from {l})"))
                .unwrap_or_default()
        ),
    ));
    for g in &r.hardening.guidelines {
        rows.push(row(
            &format!("hardening {}", g.guideline),
            g.state,
            format!("{}: {}", g.name, g.detail),
        ));
    }
    rows
}

/// `supervisorctl status` lines: "name   STATE   description".
pub fn parse_supervisorctl(text: &str) -> Vec<Program> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let name = parts.next()?.to_string();
            let state = parts.next()?.to_string();
            if !state.chars().all(|c| c.is_ascii_uppercase()) {
                return None;
            }
            Some(Program {
                name,
                state,
                detail: parts.collect::<Vec<_>>().join(" "),
            })
        })
        .collect()
}

/// The SSH identification line sshd sends first, if it answers in time.
pub fn ssh_banner(port: u16) -> Option<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while buf.len() < 255 {
        match stream.read(&mut byte) {
            Ok(1) if byte[0] == b'\n' => break,
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    let line = String::from_utf8_lossy(&buf).trim().to_string();
    line.starts_with("SSH-").then_some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUPERVISORCTL: &str = "\
dnsmasq                          RUNNING   pid 31, uptime 0:01:02
libvirtd                         RUNNING   pid 30, uptime 0:01:02
net-default                      EXITED    Nov 28 10:33 AM
sshd                             FATAL     Exited too quickly (process log may have details)
virtlogd                         RUNNING   pid 29, uptime 0:01:02
";

    fn report() -> Report {
        Report {
            instance: "t".into(),
            ok: true,
            problems: vec![],
            container: ContainerPart {
                name: "boxman-libvirt-t".into(),
                exists: true,
                state: "running".into(),
                health: Some("healthy".into()),
                image: Some("boxvirt/nested-host:debian".into()),
                started_at: None,
            },
            programs: parse_supervisorctl(SUPERVISORCTL),
            sshd: Sshd {
                port: 2299,
                answering: false,
                banner: None,
            },
            ports: vec![
                Port {
                    name: "ssh".into(),
                    port: 2299,
                    published: true,
                    address: Some("127.0.0.1".into()),
                },
                Port {
                    name: "libvirt-tcp".into(),
                    port: 16509,
                    published: false,
                    address: None,
                },
            ],
            socket: Socket {
                path: "/d/libvirt-run/libvirt-sock".into(),
                uri: "qemu+unix:///system?socket=/d/libvirt-run/libvirt-sock".into(),
                present: true,
                answering: true,
                libvirt_version: Some("11.3.0".into()),
                error: None,
            },
            ssh_key: SshKey {
                path: "/d/ssh/id_ed25519".into(),
                present: true,
                mode: Some("0644".into()),
                ok: false,
            },
            ssh_config: SshConfig {
                path: "/d/ssh/boxman.conf".into(),
                present: true,
                link: None,
            },
            hardening: report::hardening(&Observed::default()),
        }
    }

    #[test]
    fn supervisorctl_output_is_parsed() {
        let p = parse_supervisorctl(SUPERVISORCTL);
        assert_eq!(p.len(), 5);
        assert_eq!(
            p[0],
            Program {
                name: "dnsmasq".into(),
                state: "RUNNING".into(),
                detail: "pid 31, uptime 0:01:02".into()
            }
        );
        assert_eq!(p[3].state, "FATAL");
    }

    #[test]
    fn problems_name_each_broken_part_and_accept_the_one_shot() {
        let p = problems(&report());
        assert_eq!(
            p,
            [
                "program sshd is FATAL",
                "sshd does not answer on 127.0.0.1:2299",
                "ssh key /d/ssh/id_ed25519 has mode 0644 (ssh wants 0600)",
            ]
        );
    }

    #[test]
    fn table_shows_reserved_ports_and_socket_version() {
        let rows = rows(&report());
        let find = |c: &str| rows.iter().find(|r| r.check == c).unwrap().clone();
        assert_eq!(find("port ssh").detail, "127.0.0.1:2299 -> 22/tcp");
        assert_eq!(find("port libvirt-tcp").state, "reserved");
        assert_eq!(
            find("libvirt socket").detail,
            "/d/libvirt-run/libvirt-sock (libvirt 11.3.0)"
        );
        assert_eq!(find("container").state, "running (healthy)");
        let json = serde_json::to_value(report()).unwrap();
        for key in [
            "instance",
            "ok",
            "problems",
            "container",
            "programs",
            "sshd",
            "ports",
            "socket",
            "ssh_key",
            "ssh_config",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
    }
}
