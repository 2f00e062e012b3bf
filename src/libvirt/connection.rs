//! Opening a libvirt connection with a bounded wait and a one-line error
//! that names the URI and the next step.

use std::sync::mpsc;
use std::sync::Once;
use std::time::Duration;

use virt::connect::Connect;

use super::errors;
use crate::error::{Failure, Result};
use crate::uri::Uri;

static QUIET: Once = Once::new();
static EVENT_LOOP: Once = Once::new();

/// Remote transports (ssh, libssh, tls) need libvirt's event loop running to
/// service their socket (keepalives, large replies such as domain
/// capabilities); without it, calls can stall. One background thread for the
/// life of the process.
fn start_event_loop() {
    EVENT_LOOP.call_once(|| {
        if virt::event::event_register_default_impl().is_ok() {
            std::thread::spawn(|| loop {
                if virt::event::event_run_default_impl().is_err() {
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
        }
    });
}

/// A connection plus the URI it was opened with (for messages) and what
/// that URI says about where the hypervisor runs.
pub struct Libvirt {
    pub(super) conn: Connect,
    uri: String,
    local: bool,
    test_driver: bool,
}

/// How long a daemon may take to answer the connection handshake. A socket
/// can exist and accept while nothing serves it (LESSONS: stale bind mounts).
fn connect_timeout() -> Duration {
    crate::settings::connect_timeout_secs()
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(20))
}

impl Libvirt {
    /// Opens `uri` (text, e.g. an environment file's host) read-write.
    /// `next_step` is appended to connection errors, e.g. "run 'boxvirt up'
    /// or 'boxvirt doctor'". The text goes to libvirt as it is.
    pub fn open(uri: &str, next_step: &str) -> Result<Libvirt> {
        match Uri::parse(uri) {
            Ok(parsed) => Libvirt::open_as(uri, &parsed, next_step),
            Err(why) => Err(Failure::connect(format!(
                "cannot reach libvirt at {uri} (not a libvirt URI: {why}); {next_step}"
            ))),
        }
    }

    /// Opens a URI value (the settings' one) read-write.
    pub fn open_uri(uri: &Uri, next_step: &str) -> Result<Libvirt> {
        Libvirt::open_as(&uri.to_string(), uri, next_step)
    }

    /// `text` is what libvirt gets and messages show; `parsed` is its meaning.
    fn open_as(text: &str, parsed: &Uri, next_step: &str) -> Result<Libvirt> {
        let uri = text;
        // libvirt prints every error to stderr unless told otherwise.
        QUIET.call_once(virt::error::clear_error_callback);
        let fail = |reason: String| {
            Failure::connect(format!(
                "cannot reach libvirt at {uri} ({reason}); {next_step}"
            ))
        };

        if let Some(socket) = parsed.param_path("socket") {
            let shown = socket.display();
            let len = socket.as_os_str().len();
            if len > crate::settings::SUN_PATH_MAX {
                // No daemon can fix this: say so instead of the generic hint.
                return Err(Failure::connect(format!(
                    "cannot reach libvirt at {uri}: the socket path is {len} bytes, longer than the {} bytes a unix socket address holds; connect through a shorter path (e.g. a symlink to its directory)",
                    crate::settings::SUN_PATH_MAX
                )));
            }
            match std::fs::metadata(&socket) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(fail(format!("no socket at {shown}")))
                }
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    return Err(fail(format!("permission denied on {shown}")))
                }
                _ => {}
            }
        }

        if !parsed.is_local() && !parsed.is_test_driver() {
            start_event_loop();
        }
        let (tx, rx) = mpsc::channel();
        let owned = uri.to_string();
        // A hardened instance's socket wants SASL: its URIs carry a
        // registered credential (see `sasl`); every other URI opens plainly.
        let credential = super::sasl::credential_for(uri);
        std::thread::spawn(move || {
            let _ = tx.send(match credential {
                Some(c) => super::sasl::open_with(&owned, c),
                None => Connect::open(Some(&owned)),
            });
        });
        let wait = connect_timeout();
        match rx.recv_timeout(wait) {
            Ok(Ok(conn)) => Ok(Libvirt {
                conn,
                uri: uri.to_string(),
                local: parsed.is_local(),
                test_driver: parsed.is_test_driver(),
            }),
            Ok(Err(e)) if parsed.is_alias() => Err(fail(format!(
                "{}; '{uri}' is not a URI, so libvirt looks it up in libvirt.conf's uri_aliases: define it there or pass a whole URI such as qemu+ssh://user@host/system",
                summarize(e.message())
            ))),
            Ok(Err(e)) => Err(fail(summarize(e.message()))),
            Err(_) => Err(fail(format!("no answer within {} s", wait.as_secs()))),
        }
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// False once the daemon went away (restart, crash, closed socket): a
    /// dead connection never recovers, the caller must open a new one.
    pub fn is_alive(&self) -> bool {
        self.conn.is_alive().unwrap_or(false)
    }

    /// (library version, daemon/hypervisor version) as "major.minor.micro".
    pub fn versions(&self) -> Result<(String, String)> {
        let lib = self
            .conn
            .lib_version()
            .map_err(|e| errors::failure(e, "reading the libvirt version"))?;
        let hyp = self
            .conn
            .hyp_version()
            .map_err(|e| errors::failure(e, "reading the hypervisor version"))?;
        Ok((version_string(lib), version_string(hyp)))
    }

    /// Whether the hypervisor runs on this machine's kernel (a local socket,
    /// including the nested host's bind-mounted one), so local /dev/kvm and
    /// /proc checks describe it.
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// The test driver: its file URIs give each connection a world of its own.
    pub fn is_test_driver(&self) -> bool {
        self.test_driver
    }
}

/// libvirt's connection errors are long; keep the part a user can act on.
fn summarize(message: &str) -> String {
    let msg = errors::clean(message);
    if msg.contains("No such file or directory") {
        "no such socket".to_string()
    } else if msg.contains("Permission denied") {
        "permission denied".to_string()
    } else if msg.contains("authentication") || msg.contains("SASL") {
        format!("{msg}; a hardened instance wants its credential: DATA/auth/auth.conf (LIBVIRT_AUTH_FILE), see 'boxvirt uri'")
    } else if msg.contains("Connection refused") {
        "connection refused: nothing serves the socket".to_string()
    } else {
        msg
    }
}

fn version_string(v: u32) -> String {
    format!("{}.{}.{}", v / 1_000_000, (v / 1000) % 1000, v % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_is_no_uri_is_named_before_libvirt_sees_it() {
        let e = Libvirt::open("/run/libvirt sock", "check the file")
            .err()
            .unwrap();
        assert_eq!(e.exit, crate::error::Exit::Connect);
        assert!(
            e.message.starts_with("cannot reach libvirt at /run/libvirt sock (not a libvirt URI: it has no 'scheme://' and is not a uri_aliases name from libvirt.conf); check the file"),
            "{}",
            e.message
        );
    }

    #[test]
    fn the_test_driver_is_neither_local_nor_remote() {
        let t = Libvirt::open("test:///default", "").unwrap();
        assert!(t.is_test_driver());
        assert!(!t.is_local());
    }

    #[test]
    fn a_socket_path_too_long_for_unix_is_named_not_retried() {
        let uri = crate::uri::Uri::unix_socket(&std::path::Path::new("/").join("x".repeat(120)));
        let e = Libvirt::open(&uri.to_string(), "run 'boxvirt up'")
            .err()
            .unwrap();
        assert_eq!(e.exit, crate::error::Exit::Connect);
        assert!(e.message.contains("121 bytes"), "{}", e.message);
        assert!(!e.message.contains("boxvirt up"), "{}", e.message);
    }

    #[test]
    fn versions_read_as_dotted() {
        assert_eq!(version_string(11_003_000), "11.3.0");
    }
}
