//! The libvirt URI as a value: built from parts and percent-encoded once,
//! here. Every path that goes into a URI (socket, keyfile, known_hosts,
//! pkipath, ...) passes through [`Uri::path_param`], so a data dir with a
//! space, `&`, `#`, `%`, `?`, `+`, `=`, a quote or non-ASCII letters reaches
//! libvirt intact. A URI given as text (`--connect`, `LIBVIRT_DEFAULT_URI`,
//! an environment file's host) is read once with [`Uri::parse`]; nothing
//! else splits URI strings.

mod parse;

pub use parse::ParseError;

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
    /// The text a user gave (`--connect`, LIBVIRT_DEFAULT_URI, a hosts
    /// entry): libvirt gets it exactly as written, so its own quirks
    /// (`?no_verify`, `;` between parameters, a `#fragment`, an alias)
    /// keep their meaning. A URI boxvirt builds has none and is encoded.
    given: Option<String>,
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
            given: None,
        }
    }

    /// The whole scheme, e.g. `qemu+ssh`.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The hypervisor driver: `qemu` of `qemu+ssh`.
    pub fn driver(&self) -> &str {
        self.scheme.split('+').next().unwrap_or(&self.scheme)
    }

    /// The transport: `ssh` of `qemu+ssh`; None for a plain `qemu:///system`.
    pub fn transport(&self) -> Option<&str> {
        self.scheme.split_once('+').map(|(_, t)| t)
    }

    /// The user, decoded.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The host without IPv6 brackets; empty for a local URI.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The path as written, e.g. `/system`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The decoded value of the first parameter `key`.
    pub fn param(&self, key: &str) -> Option<&[u8]> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// The decoded value of parameter `key` as a path (its bytes as given).
    pub fn param_path(&self, key: &str) -> Option<PathBuf> {
        self.param(key)
            .map(|v| PathBuf::from(std::ffi::OsString::from_vec(v.to_vec())))
    }

    /// Whether libvirtd runs on this machine's kernel: `qemu:///...` or
    /// `qemu+unix:///...` with nothing between `//` and the path. The test
    /// driver is not local (it has no hypervisor).
    pub fn is_local(&self) -> bool {
        matches!(self.scheme.as_str(), "qemu" | "qemu+unix")
            && self.host.is_empty()
            && self.user.is_none()
            && self.port.is_none()
    }

    /// A libvirt.conf `uri_aliases` name (e.g. `hv1`): libvirt resolves
    /// it; boxvirt knows nothing of what it stands for.
    pub fn is_alias(&self) -> bool {
        self.scheme.is_empty()
    }

    /// The test driver (`test:///default`, `test:///path/to/file.xml`).
    pub fn is_test_driver(&self) -> bool {
        self.driver() == "test"
    }

    /// `qemu+unix:///system?socket=SOCKET`
    pub fn unix_socket(socket: &Path) -> Uri {
        Uri::new("qemu+unix", "", "/system").path_param("socket", socket)
    }

    pub fn with_user(mut self, user: &str) -> Uri {
        self.given = None;
        self.user = Some(user.to_string());
        self
    }

    pub fn with_port(mut self, port: u16) -> Uri {
        self.given = None;
        self.port = Some(port);
        self
    }

    /// A plain parameter (encoded like any other value).
    pub fn with_param(mut self, key: &str, value: &str) -> Uri {
        self.given = None;
        self.params
            .push((key.to_string(), value.as_bytes().to_vec()));
        self
    }

    /// A path parameter: its bytes as they are on disk (not only UTF-8).
    pub fn path_param(mut self, key: &str, path: &Path) -> Uri {
        self.given = None;
        self.params
            .push((key.to_string(), path.as_os_str().as_bytes().to_vec()));
        self
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(text) = &self.given {
            return f.write_str(text);
        }
        write!(f, "{}://", self.scheme)?;
        if let Some(u) = &self.user {
            write!(f, "{}@", encode(u.as_bytes()))?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const NASTY: &str = "/tmp/sp ace&x#y%z?a+b=c'd-äö/data";

    fn param_path(uri: &str, key: &str) -> Option<PathBuf> {
        Uri::parse(uri).unwrap().param_path(key)
    }

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
            .with_user("qemu_user")
            .with_port(2223)
            .path_param("keyfile", Path::new("/d&x/id"))
            .path_param("known_hosts", Path::new("/d&x/kh"))
            .with_param("sshauth", "privkey")
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

    #[test]
    fn only_qemu_with_an_empty_authority_is_local() {
        let local = |t: &str| Uri::parse(t).unwrap().is_local();
        assert!(local("qemu:///system"));
        assert!(local("qemu:///session"));
        assert!(local("qemu+unix:///system?socket=/x/libvirt-sock"));
        assert!(!local("qemu+ssh://u@127.0.0.1:2222/system"));
        assert!(!local("qemu://hv/system"));
        assert!(!local("qemu+tls://127.0.0.1/system"));
        assert!(!local("test:///default"));
        assert!(Uri::parse("test:///tmp/w.xml").unwrap().is_test_driver());
        assert!(!Uri::parse("qemu:///system").unwrap().is_test_driver());
    }
}
