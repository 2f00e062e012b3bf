//! SSH sessions to guests with ssh2, directly or through a jump host (the
//! nested host's sshd) over a direct-tcpip channel. Host keys are always
//! checked: the jump host against its known_hosts line, the guest against the
//! key boxvirt put into its cloud-init seed.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use ssh2::Session;

use crate::error::{Failure, Result};

/// How a host proves who it is.
#[derive(Debug, Clone)]
pub enum HostKey {
    /// An OpenSSH public key line (`ssh-ed25519 AAAA... comment`).
    Pinned(String),
    /// A known_hosts file and the host pattern to look up (`[127.0.0.1]:2222`).
    KnownHosts { file: PathBuf, pattern: String },
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub key: PathBuf,
    pub host_key: HostKey,
}

impl Endpoint {
    fn label(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }
}

/// The wire-format key blob of an OpenSSH public key line.
fn key_blob(line: &str) -> Result<Vec<u8>> {
    let key = ssh_key::PublicKey::from_openssh(line.trim())
        .map_err(|e| Failure::failed(format!("cannot parse the pinned host key {line:?}: {e}")))?;
    key.to_bytes()
        .map_err(|e| Failure::failed(format!("cannot encode a host key: {e}")))
}

fn expected_blob(spec: &HostKey) -> Result<Vec<u8>> {
    match spec {
        HostKey::Pinned(line) => key_blob(line),
        HostKey::KnownHosts { file, pattern } => {
            let text = std::fs::read_to_string(file).map_err(|e| {
                Failure::failed(format!(
                    "cannot read {}: {e}; run 'boxvirt up' to write it",
                    file.display()
                ))
            })?;
            let line = text
                .lines()
                .find(|l| {
                    l.split_whitespace()
                        .next()
                        .is_some_and(|hosts| hosts.split(',').any(|h| h == pattern))
                })
                .ok_or_else(|| {
                    Failure::failed(format!(
                        "{} has no key for {pattern}; run 'boxvirt up' to write it",
                        file.display()
                    ))
                })?;
            let key: String = line
                .split_whitespace()
                .skip(1)
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            key_blob(&key)
        }
    }
}

fn handshake(mut session: Session, endpoint: &Endpoint, timeout: Duration) -> Result<Session> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        Failure::failed(format!("ssh to {}: {what}: {e}", endpoint.label()))
    };
    session.set_timeout(timeout.as_millis().min(u128::from(u32::MAX)) as u32);
    session
        .handshake()
        .map_err(|e| fail("handshake failed", &e))?;
    let (blob, _) = session
        .host_key()
        .ok_or_else(|| Failure::failed(format!("ssh to {}: no host key", endpoint.label())))?;
    if blob != expected_blob(&endpoint.host_key)?.as_slice() {
        return Err(Failure::failed(format!(
            "ssh to {}: the host key does not match the pinned one (refusing to connect)",
            endpoint.label()
        )));
    }
    session
        .userauth_pubkey_file(&endpoint.user, None, &endpoint.key, None)
        .map_err(|e| fail(&format!("key {} refused", endpoint.key.display()), &e))?;
    Ok(session)
}

fn tcp(endpoint: &Endpoint, timeout: Duration) -> Result<TcpStream> {
    let addr = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Failure::failed(format!("cannot resolve {}", endpoint.host)))?;
    TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| Failure::failed(format!("ssh to {}: cannot connect: {e}", endpoint.label())))
}

/// An authenticated session to `target`, through `jump` when given.
pub fn connect(jump: Option<&Endpoint>, target: &Endpoint, timeout: Duration) -> Result<Session> {
    let session =
        Session::new().map_err(|e| Failure::failed(format!("cannot start an ssh session: {e}")))?;
    match jump {
        None => {
            let mut s = session;
            s.set_tcp_stream(tcp(target, timeout)?);
            handshake(s, target, timeout)
        }
        Some(jump) => {
            let mut outer = Session::new()
                .map_err(|e| Failure::failed(format!("cannot start an ssh session: {e}")))?;
            outer.set_tcp_stream(tcp(jump, timeout)?);
            let outer = handshake(outer, jump, timeout)?;
            let channel = outer
                .channel_direct_tcpip(&target.host, target.port, None)
                .map_err(|e| {
                    Failure::failed(format!(
                        "ssh via {}: cannot open a channel to {}:{}: {e}",
                        jump.label(),
                        target.host,
                        target.port
                    ))
                })?;
            // libssh2 needs a real socket for the inner session: bridge a
            // socket pair to the channel in a small pump thread.
            let (near, far) = UnixStream::pair()
                .map_err(|e| Failure::failed(format!("cannot make a socket pair: {e}")))?;
            std::thread::spawn(move || pump(outer, channel, far));
            let mut inner = session;
            inner.set_tcp_stream(near);
            handshake(inner, target, timeout)
        }
    }
}

/// Copies bytes both ways between the channel and the socket until either
/// side closes.
fn pump(outer: Session, mut channel: ssh2::Channel, mut sock: UnixStream) {
    outer.set_blocking(false);
    let _ = sock.set_nonblocking(true);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let mut idle = true;
        match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                idle = false;
                if write_all_channel(&mut channel, &buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
        match channel.read(&mut buf) {
            Ok(0) if channel.eof() => break,
            Ok(0) => {}
            Ok(n) => {
                idle = false;
                if write_all_sock(&mut sock, &buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
        if idle {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let _ = channel.close();
}

fn write_all_channel(channel: &mut ssh2::Channel, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        match channel.write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn write_all_sock(sock: &mut UnixStream, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        match sock.write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Runs `command`; returns its exit status and stdout.
pub fn run(session: &Session, command: &str) -> Result<(i32, String)> {
    let fail =
        |e: &dyn std::fmt::Display| Failure::failed(format!("ssh: running {command:?}: {e}"));
    let mut ch = session.channel_session().map_err(|e| fail(&e))?;
    ch.exec(command).map_err(|e| fail(&e))?;
    let mut out = String::new();
    ch.read_to_string(&mut out).map_err(|e| fail(&e))?;
    ch.wait_close().map_err(|e| fail(&e))?;
    Ok((ch.exit_status().map_err(|e| fail(&e))?, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test";

    #[test]
    fn known_hosts_lookup_by_pattern() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("known_hosts");
        std::fs::write(&f, format!("[127.0.0.1]:2200 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAA\n[127.0.0.1]:2222 {KEY}\n")).unwrap();
        let want = key_blob(KEY).unwrap();
        let got = expected_blob(&HostKey::KnownHosts {
            file: f.clone(),
            pattern: "[127.0.0.1]:2222".into(),
        })
        .unwrap();
        assert_eq!(got, want);
        let err = expected_blob(&HostKey::KnownHosts {
            file: f,
            pattern: "[127.0.0.1]:9".into(),
        })
        .unwrap_err();
        assert!(err.message.contains("no key for [127.0.0.1]:9"));
    }

    #[test]
    fn pinned_key_must_parse() {
        assert!(expected_blob(&HostKey::Pinned("not a key".into())).is_err());
        assert_eq!(
            expected_blob(&HostKey::Pinned(KEY.into())).unwrap().len(),
            51
        );
    }
}
