//! Reading a URI given as text the way libvirt does (virURIParse and
//! virURIParseParams): `scheme://[user@]host[:port][/path][?query][#frag]`.

use std::fmt;

use super::{decode, Uri};

type Parsed<T> = std::result::Result<T, ParseError>;

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
    /// Reads `scheme://[user@]host[:port][/path][?key=value&...][#...]` the
    /// way libvirt does: the user and parameters are percent-decoded (values
    /// to raw bytes), parameters are split on `&` and `;` (a name without
    /// `=` has the empty value, `=value` without a name is dropped), an IPv6
    /// host is written in brackets. The path is kept as written.
    pub fn parse(text: &str) -> Parsed<Uri> {
        let Some((scheme, rest)) = text.split_once("://") else {
            return alias(text);
        };
        check_scheme(scheme)?;
        let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
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
            given: Some(text.to_string()),
        })
    }
}

/// A name from libvirt.conf's `uri_aliases` (libvirt allows letters,
/// digits, `_`, `-` and `.`), passed to libvirt as it is.
fn alias(text: &str) -> Parsed<Uri> {
    let is_name = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if !is_name {
        return Err(bad(
            "it has no 'scheme://' and is not a uri_aliases name from libvirt.conf",
        ));
    }
    let mut uri = Uri::new("", "", "");
    uri.given = Some(text.to_string());
    Ok(uri)
}

/// RFC 3986: a letter, then letters, digits, `+`, `-`, `.`.
fn check_scheme(scheme: &str) -> Parsed<()> {
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
fn split_host_port(hostport: &str) -> Parsed<(&str, Option<u16>)> {
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
fn parse_query(query: &str) -> Parsed<Vec<(String, Vec<u8>)>> {
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

fn utf8(bytes: Vec<u8>, what: &str) -> Parsed<String> {
    String::from_utf8(bytes).map_err(|_| bad(format!("{what} is not UTF-8 once decoded")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uri::tests::NASTY;
    use std::path::Path;

    fn round_trip(text: &str) -> Uri {
        let uri = Uri::parse(text).unwrap();
        assert_eq!(Uri::parse(&uri.to_string()).unwrap(), uri, "{text}");
        uri
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
        // ... and libvirt gets the text as written.
        assert_eq!(u.to_string(), "qemu:///system?no_verify&&=x&a=");
        // A URI boxvirt builds from one read is encoded.
        assert_eq!(
            u.with_param("b", "x y").to_string(),
            "qemu:///system?no_verify=&a=&b=x%20y"
        );
    }

    #[test]
    fn malformed_uris_are_refused_with_the_reason() {
        let why = |t: &str| Uri::parse(t).unwrap_err().to_string();
        assert!(why("qemu/x").contains("scheme://"));
        assert!(why("").contains("uri_aliases"));
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

    #[test]
    fn a_libvirt_conf_alias_is_passed_on_as_it_is() {
        let u = Uri::parse("hv1.lab").unwrap();
        assert!(u.is_alias() && !u.is_local() && !u.is_test_driver());
        assert_eq!((u.transport(), u.to_string()), (None, "hv1.lab".into()));
    }
}
