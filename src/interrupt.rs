//! Ctrl-C (or SIGTERM/SIGHUP) in the middle of an operation that must not be
//! left half-done. While a [`Deferred`] guard lives, the first signal only
//! sets a flag; the operation checks it between steps ([`check`]) and rolls
//! back what it made. A second signal acts as usual (the handler resets
//! itself), so an impatient user can still stop at once.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use crate::error::{Failure, Result};

const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];
/// The signal caught while deferred, 0 when none.
static CAUGHT: AtomicI32 = AtomicI32::new(0);
/// Live guards. Only the outermost installs and restores the handlers, so
/// the creates `env apply` runs on worker threads (each with its own
/// guard) share the one guard of the whole apply and its caught signal.
static DEPTH: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    CAUGHT.store(sig, Ordering::SeqCst);
    let msg = b"\nboxvirt: interrupted; undoing what this run made (press Ctrl-C again to stop at once)\n";
    // SAFETY: write(2) is async-signal-safe; the buffer is a static string.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
    }
}

/// Signals are deferred from `new()` until the guard is dropped.
pub struct Deferred {
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

impl Deferred {
    pub fn new() -> Self {
        let mut previous = Vec::new();
        if DEPTH.fetch_add(1, Ordering::SeqCst) > 0 {
            return Deferred { previous };
        }
        CAUGHT.store(0, Ordering::SeqCst);
        for sig in SIGNALS {
            // SIGHUP ignored when we started stays ignored: `nohup boxvirt
            // env apply` must not be undone by a closing terminal. SIGINT
            // and SIGTERM always roll back (a background job inherits an
            // ignored SIGINT, yet `kill -INT` should still undo cleanly).
            if sig == libc::SIGHUP && disposition(sig) == libc::SIG_IGN {
                continue;
            }
            // SAFETY: a zeroed sigaction is a valid starting value; the
            // handler only touches an atomic and calls write(2).
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                // RESETHAND: the second signal gets the default action.
                // RESTART: blocking calls in libvirt resume after the flag is set.
                action.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &action, &mut old) == 0 {
                    previous.push((sig, old));
                }
            }
        }
        Deferred { previous }
    }
}

impl Default for Deferred {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        DEPTH.fetch_sub(1, Ordering::SeqCst);
        for (sig, old) in &self.previous {
            // SAFETY: restores the disposition saved in new().
            unsafe {
                libc::sigaction(*sig, old, std::ptr::null_mut());
            }
        }
    }
}

/// The current handler of `sig` (SIG_DFL, SIG_IGN or a function).
fn disposition(sig: libc::c_int) -> libc::sighandler_t {
    // SAFETY: a null new action only reads the current one.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut old);
        old.sa_sigaction
    }
}

/// An error naming the signal if one arrived since the guard was made.
pub fn check(after_step: &str) -> Result<()> {
    match CAUGHT.load(Ordering::SeqCst) {
        0 => Ok(()),
        sig => Err(Failure::failed(format!(
            "interrupted by {} after step '{after_step}'",
            signal_name(sig)
        ))),
    }
}

fn signal_name(sig: libc::c_int) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT (Ctrl-C)",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sets SIGHUP's handler to `to`.
    fn set_sighup(to: libc::sighandler_t) {
        // SAFETY: SIG_DFL and SIG_IGN are valid dispositions.
        unsafe {
            libc::signal(libc::SIGHUP, to);
        }
    }

    /// One test: the dispositions are the process's, shared by all threads.
    #[test]
    fn a_deferred_signal_is_reported_by_check_and_an_ignored_one_stays_ignored() {
        let original = disposition(libc::SIGHUP);
        set_sighup(libc::SIG_DFL);
        {
            let _guard = Deferred::new();
            assert_ne!(
                disposition(libc::SIGHUP),
                libc::SIG_DFL,
                "the guard installs its handler"
            );
            assert!(check("volume").is_ok());
            // SAFETY: raising a signal whose handler is installed above.
            unsafe {
                libc::raise(libc::SIGHUP);
            }
            let err = check("seed").unwrap_err();
            assert!(
                err.message.contains("SIGHUP after step 'seed'"),
                "{}",
                err.message
            );
        }
        assert_eq!(disposition(libc::SIGHUP), libc::SIG_DFL, "restored");

        // As under nohup: ignored before, ignored throughout, ignored after.
        set_sighup(libc::SIG_IGN);
        {
            let _guard = Deferred::new();
            assert_eq!(disposition(libc::SIGHUP), libc::SIG_IGN);
            // SAFETY: SIGHUP is ignored.
            unsafe {
                libc::raise(libc::SIGHUP);
            }
            assert!(check("seed").is_ok());
        }
        assert_eq!(disposition(libc::SIGHUP), libc::SIG_IGN);
        set_sighup(original);
    }
}
