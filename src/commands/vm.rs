//! `boxvirt vm ...`: create from templates and manage the lifecycle.

use std::time::{Duration, Instant};

use serde::Serialize;

use tabled::Tabled;

use crate::cli::{VmCommand, VmCreateArgs};
use crate::confirm::confirm;
use crate::context::Ctx;
use crate::error::{Exit, Failure, Result};
use crate::libvirt::{DomainState, Libvirt};
use crate::names;
use crate::template::parse_sets;
use crate::vm::create::{self, Request};
use crate::vm::leftovers;
use crate::vm::metadata::VmMetadata;
use crate::vm::nic_addresses::{self, NicAddress};
use crate::vm::ssh_config as vm_ssh;
use crate::vm::{reach, ready};

#[derive(Tabled)]
struct Row {
    #[tabled(rename = "NAME")]
    name: String,
    #[tabled(rename = "STATE")]
    state: &'static str,
    #[tabled(rename = "IP")]
    ip: String,
    #[tabled(rename = "VCPUS")]
    vcpus: u32,
    #[tabled(rename = "MEMORY (MiB)")]
    memory: u64,
    #[tabled(rename = "AUTOSTART")]
    autostart: &'static str,
}

pub fn run(ctx: &Ctx, cmd: VmCommand) -> Result<Exit> {
    match cmd {
        VmCommand::Create(args) => create_vm(ctx, args),
        VmCommand::List { env } => list(ctx, env.as_deref()),
        VmCommand::Start { name } => {
            let conn = open_for(ctx, &name)?;
            // Like `vm stop` and `up`: the wanted state is no error.
            if conn.start_domain(&name)? {
                ctx.out.note(format!("started vm '{name}'"));
            } else {
                ctx.out
                    .note(format!("vm '{name}' is already running; nothing to do"));
            }
            Ok(Exit::Ok)
        }
        VmCommand::Stop {
            name,
            force,
            timeout,
        } => stop(ctx, &name, force, timeout),
        VmCommand::Destroy { name } => {
            let conn = open_for(ctx, &name)?;
            if conn.destroy_domain(&name)? {
                ctx.out.note(format!("powered off vm '{name}'"));
            } else {
                ctx.out
                    .note(format!("vm '{name}' is not running; nothing to do"));
            }
            Ok(Exit::Ok)
        }
        VmCommand::Delete { name } => delete(ctx, &name),
        VmCommand::Info { name } => {
            let conn = open_for(ctx, &name)?;
            let details = conn.domain_details(&name)?;
            let parsed = details.boxvirt_metadata.as_deref().map(VmMetadata::parse);
            let running = details.summary.state.is_active();
            let addresses = nic_addresses::list(&conn, &name, parsed.as_ref(), running)?;
            if ctx.out.is_json() {
                ctx.out.json(&InfoJson {
                    details: &details,
                    addresses: &addresses,
                })?;
            } else {
                let s = &details.summary;
                let meta = details.boxvirt_metadata.as_deref().map(VmMetadata::parse);
                let lines = [
                    ("Name", s.name.clone()),
                    ("UUID", details.uuid.clone()),
                    (
                        "Id",
                        details
                            .id
                            .map(|i| i.to_string())
                            .unwrap_or_else(|| "-".into()),
                    ),
                    ("State", s.state.as_str().to_string()),
                    ("Type", details.domain_type.clone()),
                    ("vCPUs", s.vcpus.to_string()),
                    ("Memory", format!("{} MiB", s.memory_mib)),
                    ("CPU time", format!("{:.1} s", details.cpu_time_s)),
                    ("Addresses", addresses_line(&addresses)),
                    ("Autostart", if s.autostart { "yes" } else { "no" }.into()),
                    ("Persistent", if s.persistent { "yes" } else { "no" }.into()),
                    (
                        "Template",
                        meta.as_ref()
                            .map(|m| m.template.clone())
                            .unwrap_or_else(|| "- (not made by boxvirt)".into()),
                    ),
                    (
                        "Volumes",
                        meta.map(|m| {
                            m.volumes
                                .iter()
                                .map(|v| format!("{}/{}", v.pool, v.name))
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default(),
                    ),
                ];
                for (k, v) in lines {
                    crate::outln!("{k:<11} {v}");
                }
            }
            Ok(Exit::Ok)
        }
        VmCommand::Xml { name } => {
            crate::out!("{}", open_for(ctx, &name)?.domain_xml(&name, false)?);
            Ok(Exit::Ok)
        }
        VmCommand::Ip { name } => ip(ctx, &name),
        VmCommand::Wait {
            name,
            timeout,
            allow_cloud_init_errors,
        } => {
            let conn = open_for(ctx, &name)?;
            let opts = ready::Options {
                timeout: Duration::from_secs(timeout),
                allow_cloud_init_errors,
            };
            let ready = ready::wait(&conn, &ctx.settings, &name, &opts, &ctx.out)?;
            ctx.out.note(format!(
                "vm '{name}' is ready at {} ({:.1} s)",
                ready.ip, ready.seconds
            ));
            if ctx.out.is_json() {
                ctx.out.json(&ready)?;
            }
            Ok(Exit::Ok)
        }
        VmCommand::Ssh { name, command } => ssh(ctx, &name, &command),
        VmCommand::SshConfig { name } => ssh_config(ctx, name.as_deref()),
        VmCommand::Console { name } => {
            let conn = open_for(ctx, &name)?;
            crate::vm::console::attach(&conn, &name)?;
            Ok(Exit::Ok)
        }
    }
}

#[derive(Serialize)]
struct IpJson<'a> {
    name: &'a str,
    /// The primary NIC's address (where SSH goes).
    ip: Option<&'a str>,
    source: Option<&'a str>,
    /// Every NIC's, the primary first.
    addresses: &'a [NicAddress],
}

/// `vm info -o json`: the domain's details and every NIC's address.
#[derive(Serialize)]
struct InfoJson<'a> {
    #[serde(flatten)]
    details: &'a crate::libvirt::DomainDetails,
    addresses: &'a [NicAddress],
}

/// `10.0.0.5 (mgmt), 10.1.0.5 (data)`: each NIC's address and network.
fn addresses_line(all: &[NicAddress]) -> String {
    all.iter()
        .map(|a| {
            format!(
                "{} ({})",
                a.ip.as_deref().unwrap_or("-"),
                a.network.as_deref().unwrap_or("-")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn metadata_of(conn: &Libvirt, name: &str) -> Result<Option<VmMetadata>> {
    Ok(conn.domain_metadata(name)?.map(|m| VmMetadata::parse(&m)))
}

fn ip(ctx: &Ctx, name: &str) -> Result<Exit> {
    let conn = open_for(ctx, name)?;
    let running = conn.domain_summary(name)?.state.is_active();
    let meta = metadata_of(&conn, name)?;
    let addr = reach::discover(&conn, name, meta.as_ref(), running)?;
    let all = nic_addresses::list(&conn, name, meta.as_ref(), running)?;
    if ctx.out.is_json() {
        ctx.out.json(&IpJson {
            name,
            ip: addr.as_ref().map(|a| a.ip.as_str()),
            source: addr.as_ref().map(|a| a.source),
            addresses: &all,
        })?;
        return Ok(Exit::Ok);
    }
    match addr {
        Some(a) => {
            // One line per address, the primary's first (one NIC: one line).
            crate::outln!("{}", a.ip);
            ctx.out.detail(format!("source: {}", a.source));
            for more in all.iter().skip(1) {
                if let Some(ip) = more.ip.as_deref().filter(|ip| *ip != a.ip) {
                    crate::outln!("{ip}");
                }
            }
            Ok(Exit::Ok)
        }
        None => {
            Err(Failure::not_found(format!(
            "vm '{name}' has no known IP address yet (no reservation, lease, agent or ARP entry){}",
            if running { "; try 'boxvirt vm wait' " } else { "; it is not running" }
        )))
        }
    }
}

/// What `vm ssh` and `vm ssh-config` (and `env ssh-config`) need for one VM.
pub(crate) fn entry(ctx: &Ctx, conn: &Libvirt, name: &str) -> Result<String> {
    entry_as(&ctx.settings, conn, name)
}

/// [`entry`] for the host `settings` describe (its key, known_hosts and
/// jump host): `env ssh-config -f` has one per host of the file.
pub(crate) fn entry_as(
    settings: &crate::settings::Settings,
    conn: &Libvirt,
    name: &str,
) -> Result<String> {
    let meta = metadata_of(conn, name)?.ok_or_else(|| {
        Failure::failed(format!(
            "vm '{name}' was not created by boxvirt; no login user or host key is known"
        ))
    })?;
    let running = conn.domain_summary(name)?.state.is_active();
    let addr = reach::discover(conn, name, Some(&meta), running)?.ok_or_else(|| {
        Failure::not_found(format!(
            "vm '{name}' has no known IP address; run 'boxvirt vm wait {name}'"
        ))
    })?;
    let host_key = meta.host_key.as_deref().ok_or_else(|| {
        Failure::failed(format!(
            "vm '{name}' has no pinned host key (no cloud-init seed)"
        ))
    })?;
    let known = vm_ssh::pin(settings, &addr.ip, host_key)?;
    vm_ssh::host_entry(
        name,
        &addr.ip,
        meta.user.as_deref().unwrap_or("boxvirt"),
        &settings.ssh_key_path(),
        &known,
        vm_ssh::proxy_command(settings).as_deref(),
    )
}

fn ssh(ctx: &Ctx, name: &str, command: &[String]) -> Result<Exit> {
    use std::os::unix::process::CommandExt;
    let conn = open_for(ctx, name)?;
    let text = entry(ctx, &conn, name)?;
    let file = ctx.settings.ssh_dir().join(format!("vm-{name}.conf"));
    std::fs::write(&file, text)
        .map_err(|e| Failure::failed(format!("cannot write {}: {e}", file.display())))?;
    let mut cmd = std::process::Command::new("ssh");
    if ctx.out.verbose > 1 {
        cmd.arg("-vvv");
    }
    cmd.arg("-F").arg(&file).arg(name);
    if !command.is_empty() {
        cmd.arg("--").args(command);
    }
    drop(conn);
    let err = cmd.exec();
    Err(Failure::failed(format!("cannot run ssh: {err}")))
}

fn ssh_config(ctx: &Ctx, name: Option<&str>) -> Result<Exit> {
    let conn = ctx.libvirt()?;
    let names: Vec<String> = match name {
        Some(n) => {
            names::validate("vm", n)?;
            vec![n.to_string()]
        }
        None => conn.list_domains()?.into_iter().map(|d| d.name).collect(),
    };
    let mut printed = 0;
    for n in &names {
        match entry(ctx, &conn, n) {
            Ok(text) => {
                crate::out!("{text}");
                printed += 1;
            }
            // One VM: its error. All VMs: skip those boxvirt cannot describe.
            Err(e) if name.is_some() => return Err(e),
            Err(e) => ctx.out.detail(format!("skipping vm '{n}': {}", e.message)),
        }
    }
    if printed == 0 && name.is_none() {
        ctx.out
            .note("no VM with a known address and pinned host key");
    }
    Ok(Exit::Ok)
}

/// Validates the name before connecting, so bad input never costs a connection.
fn open_for(ctx: &Ctx, name: &str) -> Result<Libvirt> {
    names::validate("vm", name)?;
    ctx.libvirt()
}

/// The instance's key; `vm create` makes it only once every check passed.
fn instance_key(ctx: &Ctx) -> create::InstanceKey {
    let s = &ctx.settings;
    create::InstanceKey {
        path: s.ssh_key_path(),
        comment: format!("boxvirt@{}", s.instance),
        uid: s.host_uid,
        gid: s.host_gid,
    }
}

fn create_vm(ctx: &Ctx, args: VmCreateArgs) -> Result<Exit> {
    if let Some(name) = &args.name {
        names::validate("vm", name)?;
    }
    let (instance_key, keys) = if args.no_seed {
        (None, Vec::new())
    } else {
        // --ssh-key files are read now, so a bad one fails first.
        let mut keys = Vec::new();
        for file in &args.ssh_keys {
            keys.extend(crate::cloudinit::read_authorized_keys_file(file)?);
        }
        (Some(instance_key(ctx)), keys)
    };
    let user_data = args
        .user_data
        .as_deref()
        .map(crate::cloudinit::read_user_data_file)
        .transpose()?;
    let req = Request {
        template: args.template,
        name: args.name,
        memory_mib: args.memory,
        vcpus: args.vcpus,
        disk_gib: args.disk_size,
        networks: args.networks,
        accel: args.accel,
        sets: parse_sets(&args.set)?,
        start: args.start || args.wait,
        image: args.image,
        blank_disk: args.blank_disk,
        full_clone: args.full_clone,
        no_seed: args.no_seed,
        no_reserve: args.no_reserve,
        instance_key,
        authorized_keys: keys,
        user_data,
        fail_after: ctx.settings.inject_failure.clone(),
        process_env: ctx.settings.process.clone(),
        ..Default::default()
    };
    let conn = ctx.libvirt()?;
    crate::nested::hardening::fit::check_new_vm(
        &ctx.settings,
        &conn,
        &ctx.catalog,
        &req.template,
        req.memory_mib,
        req.name.as_deref(),
    )?;
    let created = create::create(&conn, &ctx.catalog, &ctx.out, &req)?;
    let mut line = format!(
        "created vm '{}' from template {} ({}",
        created.name, created.template, created.domain_type
    );
    if let Some(net) = &created.network {
        line.push_str(&format!(", network {net}"));
    }
    if let Some(ip) = &created.ip {
        line.push_str(&format!(", ip {ip}"));
    }
    if let Some(mac) = &created.mac {
        line.push_str(&format!(", mac {mac}"));
    }
    // Further NICs: `, also on data (10.1.0.5)`.
    for nic in created.nics.iter().skip(1) {
        line.push_str(&format!(
            ", also on {} ({})",
            nic.network,
            nic.ip.as_deref().unwrap_or(&nic.mac)
        ));
    }
    line.push(')');
    if created.started {
        line.push_str(" and started it");
    }
    // With --wait the JSON comes after readiness, so keep stdout for it.
    if ctx.out.is_json() {
        ctx.out.note(&line);
    } else {
        crate::outln!("{line}");
    }
    let mut waited = None;
    if args.wait {
        let opts = ready::Options {
            timeout: Duration::from_secs(args.timeout),
            allow_cloud_init_errors: args.allow_cloud_init_errors,
        };
        let ready = ready::wait(&conn, &ctx.settings, &created.name, &opts, &ctx.out)?;
        ctx.out.note(format!(
            "vm '{}' is ready at {} ({:.1} s); 'boxvirt vm ssh {}'",
            created.name, ready.ip, ready.seconds, created.name
        ));
        if args.eject_seed {
            if let Some(vol) = create::eject_seed(&conn, &created.name)? {
                ctx.out
                    .note(format!("ejected and deleted the cloud-init seed {vol}"));
            }
        }
        waited = Some(ready);
    }
    if ctx.out.is_json() {
        ctx.out.json(&CreatedJson {
            created: &created,
            ready: waited.as_ref(),
        })?;
    }
    Ok(Exit::Ok)
}

/// `vm create -o json`: what was made, and with --wait how it came up.
#[derive(Serialize)]
struct CreatedJson<'a> {
    #[serde(flatten)]
    created: &'a create::Created,
    #[serde(skip_serializing_if = "Option::is_none")]
    ready: Option<&'a ready::Ready>,
}

/// One row of `vm list -o json` (stable schema: README).
#[derive(Serialize)]
struct ListJson<'a> {
    #[serde(flatten)]
    summary: &'a crate::libvirt::DomainSummary,
    ip: Option<String>,
}

fn list(ctx: &Ctx, env: Option<&str>) -> Result<Exit> {
    if let Some(e) = env {
        names::validate("environment", e)?;
    }
    let conn = ctx.libvirt()?;
    let mut doms = conn.list_domains()?;
    if let Some(e) = env {
        // `--env`: only the VMs whose metadata carries that environment's mark.
        let member = |name: &str| {
            metadata_of(&conn, name)
                .ok()
                .flatten()
                .and_then(|m| m.env)
                .is_some_and(|m| m.env == e)
        };
        doms.retain(|d| member(&d.name));
    }
    // Addresses only for running VMs, from libvirt's DHCP leases: one call
    // each, none for VMs that are off.
    let ips: Vec<Option<String>> = doms
        .iter()
        .map(|d| {
            if !d.state.is_active() {
                return None;
            }
            conn.domain_addresses(&d.name, "lease")
                .ok()
                .and_then(|a| a.into_iter().map(|(_, ip)| ip).next())
        })
        .collect();
    if ctx.out.is_json() {
        let rows: Vec<ListJson> = doms
            .iter()
            .zip(&ips)
            .map(|(d, ip)| ListJson {
                summary: d,
                ip: ip.clone(),
            })
            .collect();
        ctx.out.json(&rows)?;
    } else {
        let rows: Vec<Row> = doms
            .iter()
            .zip(&ips)
            .map(|(d, ip)| Row {
                name: d.name.clone(),
                state: d.state.as_str(),
                ip: ip.clone().unwrap_or_else(|| "-".into()),
                vcpus: d.vcpus,
                memory: d.memory_mib,
                autostart: if d.autostart { "yes" } else { "no" },
            })
            .collect();
        ctx.out.list("VMs", &rows, &doms)?;
    }
    Ok(Exit::Ok)
}

fn stop(ctx: &Ctx, name: &str, force: bool, timeout_s: u64) -> Result<Exit> {
    let conn = open_for(ctx, name)?;
    if !conn.domain_summary(name)?.state.is_active() {
        ctx.out
            .note(format!("vm '{name}' is not running; nothing to do"));
        return Ok(Exit::Ok);
    }
    if force {
        conn.destroy_domain(name)?;
        ctx.out.note(format!("powered off vm '{name}' (--force)"));
        return Ok(Exit::Ok);
    }
    conn.shutdown_domain(name)?;
    let deadline = Instant::now() + Duration::from_secs(timeout_s);
    loop {
        if conn.domain_summary(name)?.state == DomainState::Shutoff {
            ctx.out.note(format!("vm '{name}' shut down"));
            return Ok(Exit::Ok);
        }
        if Instant::now() >= deadline {
            return Err(Failure::timeout(format!(
                "vm '{name}' did not shut down within {timeout_s} s (the guest ignored the ACPI request); use 'boxvirt vm stop --force {name}' to power it off"
            )));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn delete(ctx: &Ctx, name: &str) -> Result<Exit> {
    let conn = open_for(ctx, name)?;
    // Read (and fail when nothing of the VM exists) before asking.
    if !conn.domain_exists(name)?
        && leftovers::find(&conn, Some(name))?.is_empty()
        && !ssh_config_path(&ctx.settings, name).exists()
    {
        return Err(nothing_of(&conn, name));
    }
    confirm(ctx.settings.yes, &format!("delete vm '{name}'"))?;
    let line = remove(&conn, &ctx.settings, &ctx.out, name)?;
    ctx.out.note(line);
    Ok(Exit::Ok)
}

fn nothing_of(conn: &Libvirt, name: &str) -> Failure {
    Failure::not_found(format!(
        "vm '{name}' not found at {} (no domain, volume or reservation of it); see 'boxvirt vm list'",
        conn.uri()
    ))
}

/// Removes the ssh config `vm ssh` wrote for `name`, if any; true when
/// there was one.
pub(crate) fn forget_ssh_config(settings: &crate::settings::Settings, name: &str) -> bool {
    std::fs::remove_file(ssh_config_path(settings, name)).is_ok()
}

fn ssh_config_path(settings: &crate::settings::Settings, name: &str) -> std::path::PathBuf {
    settings.ssh_dir().join(format!("vm-{name}.conf"))
}

/// Deletes VM `name` and what boxvirt made for it (volumes, reservation,
/// ssh config), also when a killed create never defined the domain (the
/// leftovers are found by name); `vm delete` and `env destroy` share it.
/// Returns the line that says what went.
pub(crate) fn remove(
    conn: &Libvirt,
    settings: &crate::settings::Settings,
    out: &crate::output::Output,
    name: &str,
) -> Result<String> {
    let exists = conn.domain_exists(name)?;
    let (mut removed, foreign) = if exists {
        remove_domain(conn, out, name)?
    } else {
        (Vec::new(), false)
    };
    // What a killed create or delete left, found by boxvirt's names; not
    // for a domain boxvirt did not make (its disks are kept).
    if !foreign {
        removed.extend(leftovers::remove(
            conn,
            &leftovers::find(conn, Some(name))?,
        )?);
    }
    // The ssh config `vm ssh` wrote for it, if any.
    let ssh_gone = forget_ssh_config(settings, name);
    if !exists && removed.is_empty() && !ssh_gone {
        return Err(nothing_of(conn, name));
    }
    let mut line = if exists {
        format!("deleted vm '{name}'")
    } else {
        format!(
            "vm '{name}' had no domain (an interrupted create or delete); deleted its leftovers"
        )
    };
    if !removed.is_empty() {
        let joint = if exists { " and " } else { ": " };
        line.push_str(&format!("{joint}{}", removed.join(", ")));
    }
    if foreign {
        line.push_str(" (not made by boxvirt: its disks were kept)");
    }
    Ok(line)
}

/// The domain and what its metadata records; returns what went and
/// whether the domain was not boxvirt's (no metadata).
fn remove_domain(
    conn: &Libvirt,
    out: &crate::output::Output,
    name: &str,
) -> Result<(Vec<String>, bool)> {
    let meta = conn.domain_metadata(name)?.map(|m| VmMetadata::parse(&m));
    // The domain (and its metadata, the record of what boxvirt made) goes
    // last: if anything fails or is interrupted on the way, running
    // `vm delete` again finishes the job instead of orphaning volumes.
    conn.destroy_domain(name)?;
    let mut removed = Vec::new();
    if let Some(meta) = &meta {
        for v in &meta.volumes {
            if conn.delete_volume(&v.pool, &v.name)? {
                removed.push(format!("{}/{}", v.pool, v.name));
            }
        }
    }
    let reservations = meta.as_ref().map_or(&[][..], |m| m.reservations.as_slice());
    for r in reservations.iter().filter(|r| !r.slot) {
        // A live reservation (a network without slots).
        // The network may be gone already; the reservation went with it.
        out.detail(format!(
            "network '{}' has no block of address slots: releasing {} with a live DHCP update",
            r.network, r.ip
        ));
        if conn.network_summary(&r.network)?.is_some()
            && conn.remove_dhcp_host(
                &r.network,
                &r.mac,
                r.host.as_deref().unwrap_or(name),
                &r.ip,
            )?
        {
            removed.push(format!("DHCP reservation {} on {}", r.ip, r.network));
        }
    }
    conn.undefine_domain(name)?;
    // A slot is free once no domain holds its MAC: the undefine freed it.
    for r in reservations.iter().filter(|r| r.slot) {
        removed.push(format!(
            "address slot {} on {} (free again)",
            r.ip, r.network
        ));
    }
    Ok((removed, meta.is_none()))
}
