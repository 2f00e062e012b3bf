//! The libvirt URI as a value: built from parts and percent-encoded once,
//! here. Every path that goes into a URI (socket, keyfile, known_hosts,
//! pkipath, ...) passes through [`Uri::path_param`], so a data dir with a
//! space, `&`, `#`, `%`, `?`, `+`, `=`, a quote or non-ASCII letters reaches
//! libvirt intact. A URI given as text (`--connect`, `LIBVIRT_DEFAULT_URI`,
//! an environment file's host) is read once with [`Uri::parse`]; nothing
//! else splits URI strings.

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
    /// `#...` as given (libvirt ignores it; kept so the text keeps its meaning).
    fragment: Option<String>,
}

/// Why a text is not a libvirt URI (shown after the value and its source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(why: impl Into<String>) -> ParseError {
    ParseError(why.into())
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
            fragment: None,
        }
    }

    /// Reads `scheme://[user@]host[:port][/path][?key=value&...][#...]` the
    /// way libvirt does: the user and parameters are percent-decoded (values
    /// to raw bytes), parameters are split on `&` and `;` (a name without
    /// `=` has the empty value, `=value` without a name is dropped), an IPv6
    /// host is written in brackets. The path is kept as written.
    pub fn parse(text: &str) -> std::result::Result<Uri, ParseError> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad("it has no 'scheme://'"))?;
        check_scheme(scheme)?;
        let (rest, fragment) = match rest.split_once('#') {
            Some((r, f)) => (r, Some(f.to_string())),
            None => (rest, None),
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(utf8(decode(u), "the user")?), h),
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport)?;
        Ok(Uri {
            scheme: scheme.to_string(),
            user,
            host: host.to_string(),
            port,
            path: path.to_string(),
            params: parse_query(query)?,
            fragment,
        })
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

    /// The test driver (`test:///default`, `test:///path/to/file.xml`).
    pub fn is_test_driver(&self) -> bool {
        self.driver() == "test"
    }

    /// `qemu+unix:///system?socket=SOCKET`
    pub fn unix_socket(socket: &Path) -> Uri {
        Uri::new("qemu+unix", "", "/system").path_param("socket", socket)
    }

    pub fn with_user(mut self, user: &str) -> Uri {
        self.user = Some(user.to_string());
        self
    }

    pub fn with_port(mut self, port: u16) -> Uri {
        self.port = Some(port);
        self
    }

    /// A plain parameter (encoded like any other value).
    pub fn with_param(mut self, key: &str, value: &str) -> Uri {
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
        if let Some(frag) = &self.fragment {
            write!(f, "#{frag}")?;
        }
        Ok(())
    }
}

/// RFC 3986: a letter, then letters, digits, `+`, `-`, `.`.
fn check_scheme(scheme: &str) -> std::result::Result<(), ParseError> {
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
        Ok(())
    } else {
        Err(bad(format!(
            "'{scheme}' is not a scheme (e.g. qemu, qemu+ssh, test)"
        )))
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(hostport: &str) -> std::result::Result<(&str, Option<u16>), ParseError> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| bad(format!("'[' without ']' in '{hostport}'")))?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None => return Err(bad(format!("'{after}' after ']' in '{hostport}'"))),
            },
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|&n| n > 0 && p.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| bad(format!("bad port '{p}' (1-65535)")))?,
        ),
    };
    Ok((host, port))
}

/// libvirt's reading of the query (virURIParseParams).
fn parse_query(query: &str) -> std::result::Result<Vec<(String, Vec<u8>)>, ParseError> {
    let mut params = Vec::new();
    for piece in query.split(['&', ';']).filter(|p| !p.is_empty()) {
        let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
        if k.is_empty() {
            continue;
        }
        params.push((utf8(decode(k), "a parameter name")?, decode(v)));
    }
    Ok(params)
}

fn utf8(bytes: Vec<u8>, what: &str) -> std::result::Result<String, ParseError> {
    String::from_utf8(bytes).map_err(|_| bad(format!("{what} is not UTF-8 once decoded")))
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

    const NASTY: &str = "/tmp/sp ace&x#y%z?a+b=c'd-äö/data";

    fn param_path(uri: &str, key: &str) -> Option<PathBuf> {
        Uri::parse(uri).unwrap().param_path(key)
    }

    fn round_trip(text: &str) -> Uri {
        let uri = Uri::parse(text).unwrap();
        assert_eq!(Uri::parse(&uri.to_string()).unwrap(), uri, "{text}");
        uri
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
    fn parse_splits_scheme_authority_path_and_params() {
        let u = round_trip("qemu+ssh://ops@lab1:2200/system?keyfile=/k%20%26y&x=1");
        assert_eq!(
            (u.scheme(), u.driver(), u.transport()),
            ("qemu+ssh", "qemu", Some("ssh"))
        );
        assert_eq!(
            (u.user(), u.host(), u.port()),
            (Some("ops"), "lab1", Some(2200))
        );
        assert_eq!(u.path(), "/system");
        assert_eq!(u.param_path("keyfile").unwrap(), Path::new("/k &y"));
        assert_eq!(u.param("x"), Some(&b"1"[..]));
        assert_eq!(u.param("y"), None);
        let plain = round_trip("qemu:///system");
        assert_eq!((plain.driver(), plain.transport()), ("qemu", None));
        assert_eq!((plain.user(), plain.host(), plain.port()), (None, "", None));
        assert_eq!(plain.to_string(), "qemu:///system");
        assert_eq!(round_trip("test:///default").to_string(), "test:///default");
        let no_path = round_trip("qemu+ssh://hv2");
        assert_eq!((no_path.host(), no_path.path()), ("hv2", ""));
    }

    #[test]
    fn parse_reads_ipv6_hosts_and_decodes_the_user() {
        let u = round_trip("qemu+libssh2://a%40b@[fe80::1%25eth0]:2222/system");
        assert_eq!(u.user(), Some("a@b"));
        assert_eq!((u.host(), u.port()), ("fe80::1%25eth0", Some(2222)));
        assert_eq!(
            u.to_string(),
            "qemu+libssh2://a%40b@[fe80::1%25eth0]:2222/system"
        );
        let u = round_trip("qemu+tls://[::1]/system");
        assert_eq!((u.host(), u.port()), ("::1", None));
        assert_eq!(u.to_string(), "qemu+tls://[::1]/system");
    }

    #[test]
    fn parse_decodes_nasty_paths_and_keeps_their_meaning() {
        for path in [NASTY, "/a;b/c d", "/100%/x=y&z"] {
            let text = Uri::unix_socket(Path::new(path)).to_string();
            let u = round_trip(&text);
            assert_eq!(u.param_path("socket").unwrap(), Path::new(path));
            // Encoded once: our own text reads back to the same text.
            assert_eq!(u.to_string(), text);
        }
        // Written by hand, unencoded where libvirt allows it: same meaning.
        let u = round_trip("qemu+unix:///system?socket=/d/ä ö/s;mode=legacy#frag");
        assert_eq!(u.param_path("socket").unwrap(), Path::new("/d/ä ö/s"));
        assert_eq!(u.param("mode"), Some(&b"legacy"[..]));
        assert!(u.to_string().ends_with("#frag"), "{u}");
        // libvirt: a bare name has the empty value, "=v" is dropped, "&&" skipped.
        let u = round_trip("qemu:///system?no_verify&&=x&a=");
        assert_eq!(u.param("no_verify"), Some(&b""[..]));
        assert_eq!(u.param("a"), Some(&b""[..]));
        assert_eq!(u.to_string(), "qemu:///system?no_verify=&a=");
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

    #[test]
    fn malformed_uris_are_refused_with_the_reason() {
        let why = |t: &str| Uri::parse(t).unwrap_err().to_string();
        assert!(why("qemu").contains("scheme://"));
        assert!(why("/var/run/libvirt/libvirt-sock").contains("scheme://"));
        assert!(why("://host/system").contains("not a scheme"));
        assert!(why("1qemu:///system").contains("not a scheme"));
        assert!(why("qe mu:///system").contains("not a scheme"));
        assert!(why("qemu+ssh://h:22x/system").contains("bad port '22x'"));
        assert!(why("qemu+ssh://h:/system").contains("bad port ''"));
        assert!(why("qemu+ssh://h:0/system").contains("bad port '0'"));
        assert!(why("qemu+ssh://h:65536/system").contains("bad port '65536'"));
        assert!(why("qemu+ssh://h:+22/system").contains("bad port '+22'"));
        assert!(why("qemu+ssh://fe80::1/system").contains("bad port"));
        assert!(why("qemu+ssh://[::1/system").contains("without ']'"));
        assert!(why("qemu+ssh://[::1]x/system").contains("after ']'"));
        assert!(why("qemu+ssh://%FF@h/system").contains("user is not UTF-8"));
    }
}
