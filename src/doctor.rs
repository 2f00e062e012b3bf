//! `boxvirt doctor`: a checklist from the kernel up to libvirt's networks and
//! pools. Each row is pass/warn/fail with a one-line fix; only a fail makes
//! the exit code non-zero.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::cgroup;
use crate::context::Ctx;
use crate::hostcheck::{self, DeviceAccess, VirtKind};
use crate::libvirt::Libvirt;
use crate::nested::Engine;
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

/// The original's "Failed to find user record for uid" and "cgroup errors
/// when creating VMs": looked up inside the instance's container; for
/// another URI, the ids do not apply and cgroups are checked on this
/// machine (local URI) or not at all (remote).
pub fn runtime_checks(ctx: &Ctx, inspected: Option<&Inspected>) -> Vec<Check> {
    let s = &ctx.settings;
    let Some(inspected) = inspected.filter(|_| s.uses_instance()) else {
        let uri = s.uri();
        let ids = row(
            "host-ids",
            Status::Pass,
            "not applicable: the URI is not this instance's nested host",
            "",
        );
        let cg = if uri.is_local() {
            cgroup_row(&local_cgroup_facts())
        } else {
            row(
                "cgroup-controllers",
                Status::Pass,
                format!("not applicable: libvirtd runs elsewhere ({uri}); 'virt-host-validate qemu' there checks it"),
                "",
            )
        };
        return vec![ids, cg];
    };
    let name = s.container_name();
    let both = |status: Status, detail: String, fix: String| {
        vec![
            row("host-ids", status, detail.clone(), fix.clone()),
            row("cgroup-controllers", status, detail, fix),
        ]
    };
    let engine = match inspected {
        Ok((e, Some(c))) if c.running => e,
        Ok(_) => {
            return both(
                Status::Fail,
                format!("container {name} is not running; cannot look inside"),
                format!("boxvirt up (instance '{}')", s.instance),
            )
        }
        Err(e) => {
            return both(
                Status::Warn,
                format!("cannot look inside {name}: {}", e.message),
                "start Docker (bash docker/host-setup.sh) or check DOCKER_HOST".into(),
            )
        }
    };
    vec![
        host_ids_row(engine, &name, s.host_uid, s.host_gid),
        match engine.exec(&name, &["sh", "-c", cgroup::PROBE]) {
            Ok((_, out)) => cgroup_row(&cgroup::Facts::parse(&out)),
            Err(e) => row(
                "cgroup-controllers",
                Status::Warn,
                e.message,
                "boxvirt status",
            ),
        },
    ]
}

/// `getent passwd UID` and `getent group GID` inside the container.
fn host_ids_row(engine: &Engine, name: &str, uid: u32, gid: u32) -> Check {
    let lookup = |db: &str, id: u32| -> Result<Option<String>, String> {
        match engine.exec(name, &["getent", db, &id.to_string()]) {
            Ok((0, out)) => Ok(Some(out.split(':').next().unwrap_or("").trim().to_string())),
            Ok((_, _)) => Ok(None),
            Err(e) => Err(e.message),
        }
    };
    match (lookup("passwd", uid), lookup("group", gid)) {
        (Ok(Some(user)), Ok(Some(group))) => row(
            "host-ids",
            Status::Pass,
            format!("uid {uid} ({user}) and gid {gid} ({group}) exist in {name}"),
            "",
        ),
        (Err(e), _) | (_, Err(e)) => row("host-ids", Status::Warn, e, "boxvirt status"),
        (user, group) => {
            let mut missing = Vec::new();
            if !matches!(user, Ok(Some(_))) {
                missing.push(format!("uid {uid} has no user record"));
            }
            if !matches!(group, Ok(Some(_))) {
                missing.push(format!("gid {gid} has no group"));
            }
            row(
                "host-ids",
                Status::Fail,
                format!(
                    "{} in {name} (libvirt then says 'Failed to find user record for uid')",
                    missing.join(" and ")
                ),
                "boxvirt restart (the entrypoint creates them from --host-uid/--host-gid, default: your ids)",
            )
        }
    }
}

/// This machine's qemu.conf and cgroups (for a local libvirtd).
fn local_cgroup_facts() -> cgroup::Facts {
    std::process::Command::new("sh")
        .args(["-c", cgroup::PROBE])
        .output()
        .map(|o| cgroup::Facts::parse(&String::from_utf8_lossy(&o.stdout)))
        .unwrap_or_default()
}

fn cgroup_row(facts: &cgroup::Facts) -> Check {
    let v = cgroup::verdict(facts);
    let status = match (v.ok, v.unknown) {
        (true, _) => Status::Pass,
        (false, true) => Status::Warn,
        (false, false) => Status::Fail,
    };
    row("cgroup-controllers", status, v.detail, v.fix)
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

const HARDENING_IDS: [&str; 8] = [
    "hardening-1",
    "hardening-2",
    "hardening-3",
    "hardening-4",
    "hardening-5",
    "hardening-6",
    "hardening-7",
    "hardening-8",
];

/// One row per hardening guideline, as `status` shows them. Not applied is
/// a warning only on a hardened instance (the default profile is a choice).
fn hardening_checks(ctx: &Ctx, inspected: &Inspected) -> Vec<Check> {
    use crate::nested::hardening::report::{self, Observed, NOT_APPLIED};
    let s = &ctx.settings;
    let info = inspected.as_ref().ok().and_then(|(_, c)| c.as_ref());
    let observed = Observed::gather(
        info.map(|c| (c.hardening.clone(), &c.labels)),
        &s.socket_path(),
        &s.data_dir,
        s.host_gid,
    );
    let h = report::hardening(&observed);
    h.guidelines
        .iter()
        .zip(HARDENING_IDS)
        .map(|(g, id)| {
            let warn = g.state == NOT_APPLIED && observed.hardened;
            row(
                id,
                if warn { Status::Warn } else { Status::Pass },
                format!(
                    "{} ({} profile): {}: {}",
                    g.name, h.profile, g.state, g.detail
                ),
                if warn {
                    g.detail.clone()
                } else {
                    String::new()
                },
            )
        })
        .collect()
}

/// The running VMs against the container's memory limit (guideline 6).
fn memory_fit_check(ctx: &Ctx, conn: &Libvirt) -> Option<Check> {
    use crate::nested::hardening::fit;
    fit::memory_limit(&ctx.settings)?;
    Some(match fit::overcommit(&ctx.settings, conn) {
        Some((need, limit)) => row(
            "container-memory",
            Status::Fail,
            format!("the running VMs and the daemons need about {need} MiB, more than the container's limit of {limit} MiB: the kernel will OOM-kill a QEMU"),
            "stop or shrink a VM, or 'boxvirt up --memory SIZE' with more",
        ),
        None => row(
            "container-memory",
            Status::Pass,
            "the running VMs fit the container's memory limit",
            "",
        ),
    })
}

/// The instance's container as Docker sees it: looked up once, for every
/// row that needs it.
type Inspected = crate::error::Result<(Engine, Option<crate::nested::ContainerInfo>)>;

fn inspect(ctx: &Ctx) -> Inspected {
    let engine = Engine::connect()?;
    let info = engine.container(&ctx.settings.container_name())?;
    Ok((engine, info))
}

pub fn report(ctx: &Ctx) -> Report {
    let uri = ctx.settings.libvirt_uri();
    let mut checks = host_checks();
    let inspected = ctx.settings.uses_instance().then(|| inspect(ctx));
    if ctx.settings.uses_instance() {
        checks.extend(instance_checks(ctx));
    }
    checks.extend(runtime_checks(ctx, inspected.as_ref()));
    if let Some(inspected) = &inspected {
        checks.extend(hardening_checks(ctx, inspected));
    }
    match ctx.libvirt() {
        Ok(conn) => {
            checks.extend(libvirt_checks(&conn));
            checks.extend(memory_fit_check(ctx, &conn));
        }
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
