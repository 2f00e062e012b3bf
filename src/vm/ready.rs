//! "Ready means ready": wait for the address, then SSH with the pinned host
//! key (through the jump host), then cloud-init's own result file, which
//! says whether it succeeded. A spinner names the stage; a timeout names the
//! stage that did not finish.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::cloud_init_result::{self, CloudInitResult, RESULT_JSON};
use super::metadata::VmMetadata;
use super::reach;
use crate::error::{Failure, Result};
use crate::libvirt::Libvirt;
use crate::output::Output;
use crate::progress::Spinner;
use crate::settings::Settings;
use crate::sshjump;

/// Exit code of [`read_result`] for "not written yet" (one `cat` never
/// uses), told apart from a file that cannot be read.
const NOT_YET: i32 = 111;

/// The guest command that prints the result file.
fn read_result() -> String {
    format!("[ -e {RESULT_JSON} ] || exit {NOT_YET}; cat {RESULT_JSON}")
}

#[derive(Debug, Clone)]
pub struct Options {
    pub timeout: Duration,
    /// Errors cloud-init reported become warnings instead of failing the wait.
    pub allow_cloud_init_errors: bool,
}

/// What `vm wait -o json` prints (and `vm create --wait -o json` under "ready").
#[derive(Debug, Clone, Serialize)]
pub struct Ready {
    pub name: String,
    pub ip: String,
    pub seconds: f64,
    pub cloud_init: CloudInitResult,
}

/// Waits until `name` is ready or the timeout passes.
pub fn wait(
    conn: &Libvirt,
    settings: &Settings,
    name: &str,
    opts: &Options,
    out: &Output,
) -> Result<Ready> {
    let timeout = opts.timeout;
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

    // Stage 3: cloud-init finished, and says how it went.
    stage.stage(format!("{name}: waiting for cloud-init ({RESULT_JSON})"));
    let result = loop {
        match sshjump::run(&session, &read_result()) {
            // Caught between a writer's truncate and its write (cloud-init
            // renames a finished file into place; a simpler writer may not).
            Ok((0, text)) if text.trim().is_empty() => {
                last = format!("{RESULT_JSON} is still empty")
            }
            Ok((0, text)) => {
                break cloud_init_result::parse(&text)
                    .map_err(|e| Failure::failed(format!("vm '{name}': {RESULT_JSON} {e}")))?
            }
            Ok((NOT_YET, _)) => last = format!("{RESULT_JSON} not written yet"),
            Ok((code, _)) => last = format!("cannot read {RESULT_JSON} (exit {code})"),
            Err(e) => last = e.message,
        }
        if Instant::now() >= deadline {
            stage.finish();
            return Err(timed_out("cloud-init", &last));
        }
        std::thread::sleep(Duration::from_millis(1000));
    };
    stage.finish();
    judge(name, &result, opts.allow_cloud_init_errors, out)?;
    Ok(Ready {
        name: name.to_string(),
        ip,
        seconds: started.elapsed().as_secs_f64(),
        cloud_init: result,
    })
}

/// Warnings are shown; an error fails the wait unless it is allowed.
fn judge(name: &str, result: &CloudInitResult, allow_errors: bool, out: &Output) -> Result<()> {
    for w in &result.recoverable_errors {
        out.warn(format!(
            "vm '{name}': cloud-init {}: {}",
            w.level, w.message
        ));
    }
    match result.first_error() {
        None => Ok(()),
        Some(line) if allow_errors => {
            out.warn(format!(
                "vm '{name}': {line}; going on (--allow-cloud-init-errors)"
            ));
            Ok(())
        }
        Some(line) => Err(Failure::failed(format!(
            "vm '{name}': {line}; see 'boxvirt vm ssh {name} -- cloud-init status --long', or pass --allow-cloud-init-errors"
        ))),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::OutputFormat;

    fn quiet() -> Output {
        Output {
            format: OutputFormat::Table,
            quiet: true,
            verbose: 0,
            columns: None,
        }
    }

    fn result(errors: &[&str]) -> CloudInitResult {
        CloudInitResult {
            datasource: Some("DataSourceNoCloud".into()),
            errors: errors.iter().map(|e| e.to_string()).collect(),
            recoverable_errors: Vec::new(),
        }
    }

    #[test]
    fn an_error_fails_the_wait_with_exit_1_unless_allowed() {
        let r = result(&["('locale', RuntimeError('no locale-gen'))"]);
        let err = judge("x", &r, false, &quiet()).unwrap_err();
        assert_eq!(err.exit, crate::error::Exit::Failed);
        assert!(
            err.message.starts_with(
                "vm 'x': cloud-init reported an error in module locale: RuntimeError: no locale-gen;"
            ),
            "{}",
            err.message
        );
        assert!(err.message.contains("--allow-cloud-init-errors"));
        judge("x", &r, true, &quiet()).unwrap();
        judge("x", &result(&[]), false, &quiet()).unwrap();
    }
}
