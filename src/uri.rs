//! The libvirt URI as a value: built from parts and percent-encoded once,
//! here. Every path that goes into a URI (socket, keyfile, known_hosts,
//! pkipath, ...) passes through [`Uri::path_param`], so a data dir with a
//! space, `&`, `#`, `%`, `?`, `+`, `=`, a quote or non-ASCII letters reaches
//! libvirt intact. Reading a parameter back out of a URI string (one given
//! with `--connect`) decodes it with [`param_path`].

use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// scheme://[user@]host[:port]/path?key=value&...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    scheme: String,
    user: Option<String>,
    host: String,
    port: Option<u16>,
    path: String,
    /// Raw (unencoded) values; encoded on display.
    params: Vec<(String, Vec<u8>)>,
}

impl Uri {
    /// `scheme://host/path` with no user, port or parameters.
    pub fn new(scheme: &str, host: &str, path: &str) -> Uri {
        Uri {
            scheme: scheme.to_string(),
            user: None,
            host: host.to_string(),
            port: None,
            path: path.to_string(),
            params: Vec::new(),
        }
    }

    /// `qemu+unix:///system?socket=SOCKET`
    pub fn unix_socket(socket: &Path) -> Uri {
        Uri::new("qemu+unix", "", "/system").path_param("socket", socket)
    }

    pub fn user(mut self, user: &str) -> Uri {
        self.user = Some(user.to_string());
        self
    }

    pub fn port(mut self, port: u16) -> Uri {
        self.port = Some(port);
        self
    }

    /// A plain parameter (encoded like any other value).
    pub fn param(mut self, key: &str, value: &str) -> Uri {
        self.params
            .push((key.to_string(), value.as_bytes().to_vec()));
        self
    }

    /// A path parameter: its bytes as they are on disk (not only UTF-8).
    pub fn path_param(mut self, key: &str, path: &Path) -> Uri {
        self.params
            .push((key.to_string(), path.as_os_str().as_bytes().to_vec()));
        self
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        if let Some(u) = &self.user {
            write!(f, "{}@", encode(u.as_bytes()))?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        f.write_str(&self.path)?;
        for (i, (k, v)) in self.params.iter().enumerate() {
            let sep = if i == 0 { '?' } else { '&' };
            write!(f, "{sep}{}={}", encode(k.as_bytes()), encode(v))?;
        }
        Ok(())
    }
}

/// RFC 3986 percent-encoding of everything but unreserved characters and
/// `/` (kept so paths stay readable). libvirt decodes `%XX` in parameter
/// names and values; `+` is encoded too so no parser can take it for a space.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `%XX` sequences back to bytes; anything else is kept as it is.
pub fn decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The decoded value of query parameter `key` in any URI string, as a path
/// (libvirt splits parameters on `&` and `;`).
pub fn param_path(uri: &str, key: &str) -> Option<PathBuf> {
    let query = uri.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    query.split(['&', ';']).find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (decode(k) == key.as_bytes())
            .then(|| PathBuf::from(std::ffi::OsString::from_vec(decode(v))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NASTY: &str = "/tmp/sp ace&x#y%z?a+b=c'd-äö/data";

    #[test]
    fn paths_are_encoded_once_and_read_back_intact() {
        let uri = Uri::unix_socket(Path::new(NASTY)).to_string();
        assert_eq!(
            uri,
            "qemu+unix:///system?socket=/tmp/sp%20ace%26x%23y%25z%3Fa%2Bb%3Dc%27d-%C3%A4%C3%B6/data"
        );
        assert_eq!(param_path(&uri, "socket").unwrap(), Path::new(NASTY));
        // Not only UTF-8: the bytes on disk go through.
        let raw = PathBuf::from(std::ffi::OsString::from_vec(b"/x/\xff y".to_vec()));
        let uri = Uri::unix_socket(&raw).to_string();
        assert_eq!(param_path(&uri, "socket").unwrap(), raw);
    }

    #[test]
    fn ssh_uri_with_user_port_and_several_params() {
        let uri = Uri::new("qemu+libssh2", "127.0.0.1", "/system")
            .user("qemu_user")
            .port(2223)
            .path_param("keyfile", Path::new("/d&x/id"))
            .path_param("known_hosts", Path::new("/d&x/kh"))
            .param("sshauth", "privkey")
            .to_string();
        assert_eq!(
            uri,
            "qemu+libssh2://qemu_user@127.0.0.1:2223/system?keyfile=/d%26x/id&known_hosts=/d%26x/kh&sshauth=privkey"
        );
        assert_eq!(
            param_path(&uri, "known_hosts").unwrap(),
            Path::new("/d&x/kh")
        );
        assert_eq!(param_path(&uri, "sshauth").unwrap(), Path::new("privkey"));
        assert_eq!(param_path(&uri, "pkipath"), None);
        assert_eq!(param_path("qemu:///system", "socket"), None);
    }

    #[test]
    fn decode_keeps_stray_percent_signs() {
        assert_eq!(decode("a%2"), b"a%2");
        assert_eq!(decode("a%zz%41"), b"a%zzA");
        assert_eq!(decode("%"), b"%");
    }
}
