//! "Ready means ready": wait for the address, then SSH with the pinned host
//! key (through the jump host), then cloud-init's boot-finished marker. A
//! spinner names the stage; a timeout names the stage that did not finish.

use std::time::{Duration, Instant};

use super::metadata::VmMetadata;
use super::reach;
use crate::error::{Failure, Result};
use crate::libvirt::Libvirt;
use crate::output::Output;
use crate::progress::Spinner;
use crate::settings::Settings;
use crate::sshjump;

pub const BOOT_FINISHED: &str = "/var/lib/cloud/instance/boot-finished";

#[derive(Debug, Clone)]
pub struct Ready {
    pub ip: String,
    pub seconds: f64,
}

/// Waits until `name` is ready or `timeout` passes.
pub fn wait(
    conn: &Libvirt,
    settings: &Settings,
    name: &str,
    timeout: Duration,
    out: &Output,
) -> Result<Ready> {
    let started = Instant::now();
    let deadline = started + timeout;
    let meta = conn
        .domain_metadata(name)?
        .map(|m| VmMetadata::parse(&m))
        .ok_or_else(|| Failure::failed(format!("vm '{name}' was not created by boxvirt, so there is no pinned host key to wait for")))?;
    // Checked before waiting for an address, so a VM without a seed fails
    // at once instead of after the IP stage.
    if meta.host_key.is_none() {
        return Err(Failure::failed(format!(
            "vm '{name}' has no pinned host key (it was created without a cloud-init seed), so boxvirt cannot tell when it is ready"
        )));
    }
    let stage = Spinner::new(out);
    let timed_out = |stage_name: &str, last: &str| {
        Failure::timeout(format!(
            "vm '{name}' not ready within {} s: stage '{stage_name}' did not finish{}",
            timeout.as_secs(),
            if last.is_empty() {
                String::new()
            } else {
                format!(" (last: {last})")
            }
        ))
    };

    // Stage 1: an address the guest really holds (a reservation alone is
    // known before boot; the SSH stage proves the guest took it).
    // This stage can poll libvirt for minutes; a daemon restart meanwhile
    // (supervisord restarts libvirtd in the nested host) reopens the
    // connection instead of ending the wait.
    stage.stage(format!("{name}: waiting for an IP address"));
    let mut reopened: Option<Libvirt> = None;
    let mut last = String::new();
    let ip = loop {
        let link = reopened.as_ref().unwrap_or(conn);
        match poll_address(link, name, &meta) {
            Ok(Some(ip)) => break ip,
            Ok(None) => last.clear(),
            Err(e) if !link.is_alive() => {
                last = format!("libvirt connection lost, reconnecting: {}", e.message);
                // Still down: the dead link fails again next round and
                // this retries until the deadline.
                reopened = Libvirt::open(conn.uri(), "").ok();
            }
            Err(e) => {
                stage.finish();
                return Err(e);
            }
        }
        if Instant::now() >= deadline {
            stage.finish();
            return Err(timed_out("ip", &last));
        }
        std::thread::sleep(Duration::from_millis(500));
    };

    // Stage 2: SSH with the pinned key.
    stage.stage(format!("{name}: waiting for ssh on {ip}"));
    let jump = reach::jump_host(settings)?;
    let target = reach::guest_endpoint(settings, name, &meta, &ip)?;
    let session = loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match sshjump::connect(
            jump.as_ref(),
            &target,
            remaining
                .min(Duration::from_secs(10))
                .max(Duration::from_secs(1)),
        ) {
            Ok(s) => break s,
            Err(e) => last = e.message,
        }
        if Instant::now() >= deadline {
            stage.finish();
            return Err(timed_out("ssh", &last));
        }
        std::thread::sleep(Duration::from_millis(1000));
    };

    // Stage 3: cloud-init finished its boot.
    stage.stage(format!("{name}: waiting for cloud-init ({BOOT_FINISHED})"));
    loop {
        match sshjump::run(&session, &format!("test -f {BOOT_FINISHED}")) {
            Ok((0, _)) => break,
            Ok((code, _)) => last = format!("test -f exited {code}"),
            Err(e) => last = e.message,
        }
        if Instant::now() >= deadline {
            stage.finish();
            return Err(timed_out("cloud-init", &last));
        }
        std::thread::sleep(Duration::from_millis(1000));
    }
    stage.finish();
    Ok(Ready {
        ip,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// One look for the address; an error when the VM is not running.
fn poll_address(conn: &Libvirt, name: &str, meta: &VmMetadata) -> Result<Option<String>> {
    if !conn.domain_summary(name)?.state.is_active() {
        return Err(Failure::failed(format!(
            "vm '{name}' is not running; start it with 'boxvirt vm start {name}'"
        )));
    }
    Ok(reach::discover(conn, name, Some(meta), true)?.map(|a| a.ip))
}
