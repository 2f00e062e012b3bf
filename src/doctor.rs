//! `boxvirt doctor`: a checklist from the kernel up to libvirt's networks and
//! pools. Each row is pass/warn/fail with a one-line fix; only a fail makes
//! the exit code non-zero.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::context::Ctx;
use crate::hostcheck::{self, DeviceAccess, VirtKind};
use crate::libvirt::Libvirt;
use crate::vm::accel;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable identifier (JSON consumers and README troubleshooting use it).
    pub id: &'static str,
    pub status: Status,
    pub detail: String,
    /// What to do; empty when passing.
    pub fix: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub uri: String,
    pub ok: bool,
    pub checks: Vec<Check>,
}

fn row(
    id: &'static str,
    status: Status,
    detail: impl Into<String>,
    fix: impl Into<String>,
) -> Check {
    Check {
        id,
        status,
        detail: detail.into(),
        fix: fix.into(),
    }
}

/// Checks of this machine's kernel and devices.
pub fn host_checks() -> Vec<Check> {
    let mut rows = Vec::new();
    let kvm = hostcheck::probe_kvm(Path::new("/dev/kvm"));
    let kvm_fix = "load kvm_intel/kvm_amd (or pass /dev/kvm into the container); VMs fall back to TCG meanwhile";
    rows.push(if kvm.exists {
        row("kvm-device", Status::Pass, "/dev/kvm exists", "")
    } else {
        row(
            "kvm-device",
            Status::Warn,
            "/dev/kvm does not exist",
            kvm_fix,
        )
    });
    if kvm.exists {
        rows.push(if kvm.read_write {
            row("kvm-access", Status::Pass, "/dev/kvm opens read-write", "")
        } else {
            row(
                "kvm-access",
                Status::Warn,
                kvm.problem.clone().unwrap_or_default(),
                "add your user to the kvm group or run as root",
            )
        });
    }
    if kvm.read_write {
        rows.push(match (kvm.api_version, kvm.can_create_vm) {
            (Some(v), true) if v == hostcheck::KVM_API_VERSION => row(
                "kvm-api",
                Status::Pass,
                format!("KVM API version {v}; KVM_CREATE_VM works"),
                "",
            ),
            _ => row(
                "kvm-api",
                Status::Warn,
                kvm.problem
                    .clone()
                    .unwrap_or_else(|| "unexpected KVM API".into()),
                kvm_fix,
            ),
        });
    }
    let cpu = hostcheck::cpu_virt();
    rows.push(match cpu.kind {
        VirtKind::Hardware => row("cpu-virtualization", Status::Pass, format!("hardware virtualization ({})", cpu.detail), ""),
        VirtKind::Pvm => row(
            "cpu-virtualization",
            Status::Warn,
            "PVM (kvm_pvm): /dev/kvm works but stock guest kernels do not boot as kvm guests",
            "nothing to do: boxvirt uses qemu (TCG) here; --accel kvm only for PVM-enabled guests",
        ),
        VirtKind::None => row(
            "cpu-virtualization",
            Status::Warn,
            "no vmx/svm CPU flag and no PVM",
            "enable VT-x/AMD-V (or nested virtualization on the outer hypervisor); VMs use TCG meanwhile",
        ),
    });
    rows.push(match &cpu.nested {
        Some((module, v)) if v == "Y" || v == "1" => row("nested-virt", Status::Pass, format!("{module} nested={v}"), ""),
        Some((module, v)) => row(
            "nested-virt",
            Status::Warn,
            format!("{module} nested={v}"),
            format!("echo 'options {module} nested=1' > /etc/modprobe.d/kvm-nested.conf and reload {module}"),
        ),
        None => row("nested-virt", Status::Pass, "kvm_intel/kvm_amd not loaded: nested parameter not applicable", ""),
    });
    for (id, path, fix) in [
        (
            "net-tun",
            "/dev/net/tun",
            "modprobe tun (guest NICs need it where libvirtd runs)",
        ),
        (
            "vhost-net",
            "/dev/vhost-net",
            "modprobe vhost_net (faster guest networking; optional)",
        ),
    ] {
        rows.push(match hostcheck::device_access(Path::new(path)) {
            DeviceAccess::ReadWrite => {
                row(id, Status::Pass, format!("{path} opens read-write"), "")
            }
            DeviceAccess::NoAccess => row(
                id,
                Status::Warn,
                format!("{path} exists but cannot be opened read-write"),
                "run as root or fix its permissions",
            ),
            DeviceAccess::Missing => row(id, Status::Warn, format!("{path} is missing"), fix),
        });
    }
    rows
}

/// Checks of the nested host instance (only when no explicit URI is used).
pub fn instance_checks(ctx: &Ctx) -> Vec<Check> {
    let s = &ctx.settings;
    let mut rows = Vec::new();
    let socket = s.socket_path();
    rows.push(if socket.exists() {
        row(
            "instance-socket",
            Status::Pass,
            format!("{} exists", socket.display()),
            "",
        )
    } else {
        row(
            "instance-socket",
            Status::Fail,
            format!("{} is missing", socket.display()),
            format!("run 'boxvirt up' (instance '{}')", s.instance),
        )
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], s.ssh_port));
    let banner = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).and_then(|mut c| {
        c.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut buf = [0u8; 64];
        let n = c.read(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
    });
    rows.push(match banner {
        Ok(b) if b.starts_with("SSH-") => row(
            "instance-sshd",
            Status::Pass,
            format!("sshd answers on 127.0.0.1:{} ({b})", s.ssh_port),
            "",
        ),
        Ok(b) => row(
            "instance-sshd",
            Status::Warn,
            format!("127.0.0.1:{} answers but not as sshd ({b:?})", s.ssh_port),
            "check BOXMAN_SSH_PORT and 'boxvirt status'",
        ),
        Err(e) => row(
            "instance-sshd",
            Status::Warn,
            format!("no sshd on 127.0.0.1:{} ({e})", s.ssh_port),
            "'boxvirt status' shows sshd's supervisor state; 'boxvirt logs' its errors",
        ),
    });
    rows
}

/// Checks through libvirt: versions, accelerators, network, pool.
pub fn libvirt_checks(conn: &Libvirt) -> Vec<Check> {
    let mut rows = Vec::new();
    match conn.versions() {
        Ok((lib, daemon)) => rows.push(row(
            "libvirt",
            Status::Pass,
            format!("connected; library {lib}, hypervisor {daemon}"),
            "",
        )),
        Err(e) => rows.push(row(
            "libvirt",
            Status::Fail,
            e.message,
            "see 'boxvirt logs'",
        )),
    }
    let caps = match conn.host_caps() {
        Ok(c) => c,
        Err(e) => {
            rows.push(row(
                "capabilities",
                Status::Fail,
                e.message,
                "check that QEMU is installed where libvirtd runs",
            ));
            return rows;
        }
    };
    let mut emulator = None;
    let mut kvm_ok = false;
    if !caps.offers("kvm") && !caps.offers("qemu") && caps.offers("test") {
        rows.push(row(
            "domcaps",
            Status::Pass,
            "test driver: only 'test' guests",
            "",
        ));
    }
    for t in ["kvm", "qemu"]
        .into_iter()
        .filter(|t| caps.offers(t) || !caps.offers("test"))
    {
        let dc = conn.domain_caps(t);
        if t == "kvm" {
            kvm_ok = dc.supported;
        }
        if dc.supported && emulator.is_none() {
            emulator = dc.emulator.clone();
        }
        let id = if t == "kvm" {
            "domcaps-kvm"
        } else {
            "domcaps-qemu"
        };
        rows.push(if dc.supported {
            row(
                id,
                Status::Pass,
                format!(
                    "{t} guests supported ({}, machine {})",
                    dc.emulator.unwrap_or_default(),
                    dc.machine.unwrap_or_default()
                ),
                "",
            )
        } else if t == "kvm" {
            row(
                id,
                Status::Warn,
                format!(
                    "no kvm guests: {}",
                    dc.problem.unwrap_or_else(|| "not offered".into())
                ),
                "VMs use qemu (TCG)",
            )
        } else {
            row(
                id,
                Status::Fail,
                format!(
                    "no qemu guests: {}",
                    dc.problem.unwrap_or_else(|| "not offered".into())
                ),
                "install qemu-system-x86 where libvirtd runs",
            )
        });
    }
    rows.push(match &emulator {
        Some(path) => row("emulator", Status::Pass, format!("emulator {path}"), ""),
        None if caps.offers("test") => row("emulator", Status::Pass, "test driver: no emulator needed", ""),
        None => row("emulator", Status::Fail, "no QEMU emulator found by libvirt", "install qemu-system-x86 (Rocky: copy /usr/libexec/qemu-kvm to /usr/bin/qemu-system-x86_64)"),
    });
    rows.push(
        match accel::choose_with(conn, &caps, kvm_ok && caps.offers("kvm"), None) {
            Ok(choice) => match choice.warning {
                None => row(
                    "accelerator",
                    Status::Pass,
                    format!("new VMs use {}", choice.domain_type),
                    "",
                ),
                Some(w) => row(
                    "accelerator",
                    Status::Warn,
                    format!("new VMs use {}: {w}", choice.domain_type),
                    "override with vm create --accel",
                ),
            },
            Err(e) => row(
                "accelerator",
                Status::Fail,
                e.message,
                "install QEMU where libvirtd runs",
            ),
        },
    );
    rows.push(match conn.network_summary("default") {
        Ok(Some(n)) if n.active && n.autostart => row(
            "network-default",
            Status::Pass,
            "default network defined, active, autostart",
            "",
        ),
        Ok(Some(n)) if n.active => row(
            "network-default",
            Status::Warn,
            "default network active but not set to autostart",
            "boxvirt net ensure default",
        ),
        Ok(Some(_)) => row(
            "network-default",
            Status::Fail,
            "default network defined but not active",
            "boxvirt net ensure default",
        ),
        Ok(None) => row(
            "network-default",
            Status::Fail,
            "default network not defined",
            "boxvirt net ensure default",
        ),
        Err(e) => row(
            "network-default",
            Status::Fail,
            e.message,
            "boxvirt net ensure default",
        ),
    });
    rows.push(match conn.list_pools() {
        Ok(pools) => match pools.iter().find(|p| p.name == crate::vm::create::POOL) {
            Some(p) if p.active => row(
                "storage-pool",
                Status::Pass,
                format!("pool '{}' active", p.name),
                "",
            ),
            Some(p) => row(
                "storage-pool",
                Status::Warn,
                format!("pool '{}' is not active", p.name),
                "boxvirt vm create starts it, or virsh pool-start default",
            ),
            None => row(
                "storage-pool",
                Status::Warn,
                format!(
                    "no pool 'default' (pools: {})",
                    pools
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "created from xml-templates/pool/default.xml by the first vm create",
            ),
        },
        Err(e) => row(
            "storage-pool",
            Status::Fail,
            e.message,
            "check libvirt's storage driver",
        ),
    });
    rows
}

pub fn report(ctx: &Ctx) -> Report {
    let uri = ctx.settings.libvirt_uri();
    let mut checks = host_checks();
    if ctx.settings.uses_instance() {
        checks.extend(instance_checks(ctx));
    }
    match ctx.libvirt() {
        Ok(conn) => checks.extend(libvirt_checks(&conn)),
        Err(e) => checks.push(row(
            "libvirt",
            Status::Fail,
            e.message,
            "'boxvirt status' for the nested host; for 'Failed to find user record for uid' set HOST_UID/HOST_GID and 'boxvirt restart'",
        )),
    }
    let ok = checks.iter().all(|c| c.status != Status::Fail);
    Report { uri, ok, checks }
}
