//! First creates that race on a fresh daemon: two clients both look up the
//! pool or network "default", both see nothing, both define it; or both see
//! it stopped and both start it. libvirt lets exactly one win each step; the
//! loser must take the winner's result instead of failing.

use std::time::{Duration, Instant};

use virt::error::Error as VirtError;

use super::errors::failure;
use crate::error::Result;

/// Runs `define`; if it fails because another client defined the same name
/// meanwhile, returns theirs from `lookup`. The flag says whether we defined it.
pub(super) fn define_or_adopt<T>(
    what: &str,
    define: impl FnOnce() -> std::result::Result<T, VirtError>,
    lookup: impl FnOnce() -> Result<Option<T>>,
) -> Result<(T, bool)> {
    match define() {
        Ok(obj) => Ok((obj, true)),
        Err(e) => match lookup()? {
            Some(theirs) => Ok((theirs, false)),
            None => Err(failure(e, what)),
        },
    }
}

/// Runs `start`; if it fails but the object is active (another client
/// started it meanwhile), that is success. A client that defined the object
/// a moment ago may still be preparing it (building a pool's directory), so
/// an object we did not define gets a short grace period to come up.
/// The flag says whether we started it.
pub(super) fn start_or_adopt(
    what: &str,
    defined_by_us: bool,
    start: impl FnOnce() -> std::result::Result<(), VirtError>,
    is_active: impl Fn() -> Result<bool>,
) -> Result<bool> {
    let err = match start() {
        Ok(()) => return Ok(true),
        Err(e) => e,
    };
    let grace = if defined_by_us { Duration::ZERO } else { GRACE };
    let deadline = Instant::now() + grace;
    loop {
        if is_active()? {
            return Ok(false);
        }
        if Instant::now() >= deadline {
            return Err(failure(err, what));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How long a racer waits for another client's define-build-start to finish.
const GRACE: Duration = Duration::from_secs(3);
