//! The Docker engine connection: one tokio runtime plus a bollard client, so
//! the rest of `nested/` offers plain blocking calls and the commands stay
//! synchronous (like the libvirt side).

use std::future::Future;

use bollard::errors::Error as DockerError;
use bollard::{ClientVersion, Docker, API_DEFAULT_VERSION};

use crate::error::{Failure, Result};

/// Where bollard connects: `DOCKER_HOST` when it is a unix:// URI, else the
/// default socket (bollard's own rule, repeated here for messages).
pub fn engine_address() -> String {
    match crate::settings::docker_host() {
        Some(h) if h.starts_with("unix://") => h,
        _ => "unix:///var/run/docker.sock".to_string(),
    }
}

pub struct Engine {
    rt: tokio::runtime::Runtime,
    pub(super) docker: Docker,
}

impl Engine {
    /// Connects and negotiates the API version (docker.io 20.10 speaks 1.41;
    /// newer bollard paths would be refused without negotiation).
    pub fn connect() -> Result<Engine> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Failure::failed(format!("cannot start the async runtime: {e}")))?;
        let address = engine_address();
        let docker = match ping_api_version(address.trim_start_matches("unix://")) {
            // Builds and image pulls stream for minutes; the default is 120 s.
            Some(version) => Docker::connect_with_unix(&address, 3600, &version),
            None => rt.block_on(async {
                Docker::connect_with_local_defaults()?
                    .with_timeout(std::time::Duration::from_secs(3600))
                    .negotiate_version()
                    .await
            }),
        };
        match docker {
            Ok(docker) => Ok(Engine { rt, docker }),
            Err(e) => Err(connect_failure(&address, &e)),
        }
    }

    /// Runs one future to completion on the engine's runtime.
    pub(super) fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

/// The API version to speak: the engine's (`Api-Version` of `GET /_ping`),
/// at most bollard's own. bollard's `negotiate_version` asks `/version`,
/// which docker 20.10 answers in 25-50 ms on a loaded machine (it collects
/// component versions); `/_ping` takes about 1 ms, and every command pays
/// this once (an already-up `up` takes about 50 ms in all). None: ask the
/// slow way.
fn ping_api_version(path: &str) -> Option<ClientVersion> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(path).ok()?;
    let limit = Some(std::time::Duration::from_secs(10));
    s.set_read_timeout(limit).ok()?;
    s.set_write_timeout(limit).ok()?;
    // HTTP/1.0: the engine closes the connection after the answer.
    s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .ok()?;
    let mut answer = Vec::new();
    s.take(64 * 1024).read_to_end(&mut answer).ok()?;
    let version = api_version_header(&String::from_utf8_lossy(&answer))?;
    let ours = API_DEFAULT_VERSION;
    Some(
        if (version.major_version, version.minor_version) > (ours.major_version, ours.minor_version)
        {
            *ours
        } else {
            version
        },
    )
}

/// `Api-Version: 1.41` of an HTTP answer's header (a 200 only).
fn api_version_header(answer: &str) -> Option<ClientVersion> {
    let mut lines = answer.split("\r\n");
    let status = lines.next()?;
    if status.split_whitespace().nth(1) != Some("200") {
        return None;
    }
    let value = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("api-version"))
        .map(|(_, v)| v.trim())?;
    let (major, minor) = value.split_once('.')?;
    Some(ClientVersion {
        major_version: major.parse().ok()?,
        minor_version: minor.parse().ok()?,
    })
}

/// One line that names the socket and the fix.
fn connect_failure(address: &str, e: &DockerError) -> Failure {
    let path = address.trim_start_matches("unix://");
    // bollard's message hides the OS error; a direct connect shows it.
    let probe = match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => String::new(),
        Err(io) => io.to_string(),
    };
    let text = format!("{e} {probe}");
    let reason =
        if matches!(e, DockerError::SocketNotFoundError(_)) || text.contains("No such file") {
            format!("no socket at {path}")
        } else if text.contains("Permission denied") || text.contains("permission denied") {
            format!("permission denied on {path}")
        } else if text.contains("Connection refused") {
            format!("nothing answers on {path}")
        } else {
            first_line(&e.to_string())
        };
    let fix = if reason.starts_with("permission denied") {
        "add your user to the 'docker' group and log in again, or run as root"
    } else {
        "start the engine (e.g. 'systemctl start docker', or 'dockerd &' as root) or fix DOCKER_HOST"
    };
    Failure::connect(format!(
        "cannot reach the Docker engine at {address} ({reason}); {fix}"
    ))
}

/// A failed API call as one line: `what: message`.
pub(super) fn api_failure(what: impl std::fmt::Display, e: DockerError) -> Failure {
    match &e {
        DockerError::DockerResponseServerError {
            status_code: 404,
            message,
        } => Failure::not_found(format!("{what}: {}", first_line(message))),
        DockerError::DockerResponseServerError {
            status_code: 409,
            message,
        } => Failure::conflict(format!("{what}: {}", first_line(message))),
        DockerError::DockerResponseServerError { message, .. } => {
            Failure::failed(format!("{what}: {}", first_line(message)))
        }
        _ => Failure::failed(format!("{what}: {}", first_line(&e.to_string()))),
    }
}

pub(super) fn is_not_found(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

pub(super) fn first_line(text: &str) -> String {
    text.trim().lines().next().unwrap_or("").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_version_is_read_from_a_ping_answer() {
        let v = api_version_header(
            "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nDocker-Experimental: false\r\n\r\nOK",
        )
        .unwrap();
        assert_eq!((v.major_version, v.minor_version), (1, 41));
        assert!(api_version_header("HTTP/1.1 500 Internal\r\nApi-Version: 1.41\r\n\r\n").is_none());
        assert!(api_version_header("HTTP/1.1 200 OK\r\n\r\nApi-Version: 1.41").is_none());
        assert!(api_version_header("garbage").is_none());
    }

    #[test]
    fn missing_socket_names_path_and_fix() {
        let f = connect_failure(
            "unix:///nonexistent",
            &DockerError::SocketNotFoundError("unix:///nonexistent".into()),
        );
        assert_eq!(f.exit, crate::error::Exit::Connect);
        assert!(
            f.message.contains("no socket at /nonexistent"),
            "{}",
            f.message
        );
        assert!(f.message.contains("start the engine"), "{}", f.message);
    }
}
