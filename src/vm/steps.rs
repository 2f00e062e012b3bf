//! The named steps of a create and the hook between them: Ctrl-C and the
//! failure-injection test hook (`BOXVIRT_INJECT_FAILURE`) act here.

use super::request::Request;
use crate::error::{Failure, Result};
use crate::interrupt;

/// The steps after which a failure can be injected (`Request::fail_after`).
pub const STEPS: &[&str] = &[
    "volume",
    "seed",
    "reservation",
    "define",
    "start",
    "metadata",
];

/// Between two steps: a deferred Ctrl-C (or the test hook) ends the run,
/// and the caller rolls back what it made. The hook `<step>` fails right
/// after that step; `signal:<step>` sends this process a real SIGINT there;
/// `abort:<step>` kills it with SIGKILL there (no rollback at all).
pub(crate) fn after_step(req: &Request, step: &str) -> Result<()> {
    if let Some(on_step) = &req.on_step {
        (on_step.0)(step);
    }
    match req.fail_after.as_deref() {
        Some(s) if s == step => {
            return Err(Failure::failed(format!(
                "injected failure after step '{step}'"
            )))
        }
        Some(s) if s.strip_prefix("abort:") == Some(step) => {
            // SAFETY: SIGKILL to ourselves: no rollback runs, as after a kill -9.
            unsafe {
                libc::raise(libc::SIGKILL);
            }
        }
        Some(s) if s.strip_prefix("signal:") == Some(step) => {
            // SAFETY: raising SIGINT; the deferring handler is installed.
            unsafe {
                libc::raise(libc::SIGINT);
            }
        }
        _ => {}
    }
    interrupt::check(step)
}
