//! Is the instance's SSH port free on 127.0.0.1, and if not, who holds it?
//! The holder comes from /proc/net/tcp{,6} (listening socket -> inode) and
//! /proc/*/fd (inode -> process), so the message can name it.

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};

/// A listening TCP socket from /proc/net/tcp{,6}.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub address: String,
    pub port: u16,
    pub inode: u64,
}

/// Who holds a port, as far as we can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: Option<u32>,
    pub command: Option<String>,
    pub address: Option<String>,
}

impl Holder {
    pub fn describe(&self) -> String {
        let at = self
            .address
            .as_deref()
            .map(|a| format!(" listening on {a}"))
            .unwrap_or_default();
        match (&self.command, self.pid) {
            (Some(cmd), Some(pid)) => format!("process '{cmd}' (pid {pid}){at}"),
            _ => format!("another process{at}"),
        }
    }

    pub fn is_docker_proxy(&self) -> bool {
        self.command.as_deref() == Some("docker-proxy")
    }
}

/// Whether 127.0.0.1:`port` can be bound now (what docker will need).
pub fn is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// The first free port after `port` (up to 200 further), else any free one.
pub fn find_free(port: u16) -> Option<u16> {
    (port.saturating_add(1)..=port.saturating_add(200))
        .find(|p| *p != 0 && is_free(*p))
        .or_else(|| {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .ok()?
                .local_addr()
                .ok()
                .map(|a| a.port())
        })
}

/// The host port Docker could not publish because another container or
/// process took it between our check and the start ("Bind for
/// 127.0.0.1:2222 failed: port is already allocated"): two `up
/// --auto-ports` at once pick the same free port.
pub fn lost_in_race(docker_message: &str) -> Option<u16> {
    if !docker_message.contains("port is already allocated")
        && !docker_message.contains("address already in use")
    {
        return None;
    }
    let bind = docker_message.split("Bind for ").nth(1).or_else(|| {
        docker_message
            .split("listen tcp4 ")
            .nth(1)
            .or_else(|| docker_message.split("listen tcp ").nth(1))
    })?;
    let addr = bind.split([' ', ',']).next()?.trim_end_matches(':');
    addr.rsplit_once(':')?.1.parse().ok()
}

/// The process listening on `port`, found through /proc.
pub fn holder(port: u16) -> Holder {
    let mut listeners = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        if let Ok(text) = fs::read_to_string(file) {
            listeners.extend(parse_listeners(&text, v6));
        }
    }
    let Some(l) = listeners.into_iter().find(|l| l.port == port) else {
        return Holder {
            pid: None,
            command: None,
            address: None,
        };
    };
    let address = Some(format!("{}:{}", l.address, l.port));
    match owner_of_inode(l.inode) {
        Some((pid, command)) => Holder {
            pid: Some(pid),
            command: Some(command),
            address,
        },
        None => Holder {
            pid: None,
            command: None,
            address,
        },
    }
}

/// LISTEN (state 0A) entries of a /proc/net/tcp or tcp6 table.
pub fn parse_listeners(text: &str, v6: bool) -> Vec<Listener> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                return None;
            }
            let (addr_hex, port_hex) = f[1].split_once(':')?;
            let port = u16::from_str_radix(port_hex, 16).ok()?;
            let inode = f[9].parse().ok()?;
            let address = if v6 {
                decode_v6(addr_hex)?
            } else {
                decode_v4(addr_hex)?
            };
            Some(Listener {
                address,
                port,
                inode,
            })
        })
        .collect()
}

/// The kernel prints the address as a native-endian (little) u32.
fn decode_v4(hex: &str) -> Option<String> {
    let n = u32::from_str_radix(hex, 16).ok()?;
    Some(Ipv4Addr::from(n.swap_bytes()).to_string())
}

fn decode_v6(hex: &str) -> Option<String> {
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for i in 0..4 {
        let word = u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16).ok()?;
        bytes[i * 4..i * 4 + 4].copy_from_slice(&word.swap_bytes().to_be_bytes());
    }
    Some(format!("[{}]", Ipv6Addr::from(bytes)))
}

/// The first process with an fd on `socket:[inode]` (needs root for other
/// users' processes; then we say "another process").
fn owner_of_inode(inode: u64) -> Option<(u32, String)> {
    let want = format!("socket:[{inode}]");
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if fs::read_link(fd.path())
                .map(|t| t.to_string_lossy() == want)
                .unwrap_or(false)
            {
                let comm = fs::read_to_string(entry.path().join("comm"))
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                return Some((pid, comm));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_port_lost_to_a_concurrent_start_is_read_from_dockers_message() {
        let m = "cannot start container boxman-libvirt-a: driver failed programming external connectivity on endpoint boxman-libvirt-a (0f3c): Bind for 127.0.0.1:2222 failed: port is already allocated";
        assert_eq!(super::lost_in_race(m), Some(2222));
        let m = "Error starting userland proxy: listen tcp4 127.0.0.1:16514: bind: address already in use";
        assert_eq!(super::lost_in_race(m), Some(16514));
        assert_eq!(super::lost_in_race("no such image"), None);
        assert_eq!(
            super::lost_in_race("Bind for 127.0.0.1:2222 failed: permission denied"),
            None
        );
    }

    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:08AE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 41234 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1000 1 0000000000000000 100 0 0 10 0
   2: 0100007F:08AE 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 20 4 30 10 -1
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn parses_listening_sockets_only() {
        assert_eq!(
            parse_listeners(TCP, false),
            [
                Listener {
                    address: "127.0.0.1".into(),
                    port: 2222,
                    inode: 41234
                },
                Listener {
                    address: "0.0.0.0".into(),
                    port: 22,
                    inode: 1000
                },
            ]
        );
        assert_eq!(
            parse_listeners(TCP6, true),
            [Listener {
                address: "[::1]".into(),
                port: 8080,
                inode: 777
            }]
        );
    }

    #[test]
    fn finds_our_own_listener_and_names_this_process() {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(!is_free(port));
        let h = holder(port);
        assert_eq!(h.pid, Some(std::process::id()), "{h:?}");
        assert!(
            h.describe()
                .contains(&format!("pid {}", std::process::id())),
            "{}",
            h.describe()
        );
        let free = find_free(port).unwrap();
        assert_ne!(free, port);
        assert!(is_free(free));
    }
}
