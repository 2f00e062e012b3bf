//! The environment file (`boxvirt.yaml`): its schema, read with serde and
//! serde_norway (the maintained fork of serde_yaml). Unknown keys and wrong
//! types are errors naming the file, line and column; so is every later
//! check through [`Source::error_at`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::locate::{self, Seg};
use crate::error::{Failure, Result};

/// The default file name, looked up in the working directory.
pub const DEFAULT_FILE: &str = "boxvirt.yaml";

/// The whole file. Keys in maps (hosts, networks) are kept sorted, so
/// everything derived from them is in a stable order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvFile {
    pub name: String,
    #[serde(default, deserialize_with = "super::unique_map::deserialize")]
    pub hosts: BTreeMap<String, HostSpec>,
    #[serde(default, deserialize_with = "super::unique_map::deserialize")]
    pub networks: BTreeMap<String, NetworkSpec>,
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub vms: Vec<VmGroup>,
}

/// A libvirt host: a nested instance (its socket) or any libvirt URI.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// A nested-host instance name (`boxvirt up --instance NAME`).
    pub instance: Option<String>,
    /// The instance's data dir, relative to the file's directory
    /// [default: the current data dir, as for every other command].
    pub data_dir: Option<PathBuf>,
    /// Any libvirt URI.
    pub uri: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Network template (`boxvirt template list`).
    pub template: String,
    /// The network's IPv4 subnet, e.g. 10.10.0.0/24.
    pub cidr: Option<String>,
}

/// Values every VM group gets unless it sets its own.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub template: Option<String>,
    pub memory: Option<u64>,
    pub vcpus: Option<u32>,
    pub disk_size: Option<u64>,
    pub image: Option<String>,
    pub networks: Option<Vec<String>>,
    pub user_data: Option<PathBuf>,
    pub ssh_keys: Option<Vec<PathBuf>>,
}

/// One entry of `vms:`: one VM, or `count` of them named NAME-1..NAME-N.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmGroup {
    pub name: String,
    pub count: Option<u32>,
    /// A key of `hosts:`; unset = placed by free memory.
    pub host: Option<String>,
    pub template: Option<String>,
    /// MiB.
    pub memory: Option<u64>,
    pub vcpus: Option<u32>,
    /// GiB.
    pub disk_size: Option<u64>,
    pub image: Option<String>,
    pub networks: Option<Vec<String>>,
    /// cloud-init user-data, relative to the file's directory.
    pub user_data: Option<PathBuf>,
    pub ssh_keys: Option<Vec<PathBuf>>,
}

/// The file as read: its name as the user gave it (for messages), its text
/// and the digest of its bytes (recorded in each domain it makes).
#[derive(Debug, Clone)]
pub struct Source {
    pub shown: String,
    pub dir: PathBuf,
    pub text: String,
    pub digest: String,
}

impl Source {
    /// Reads `path`: missing is exit 3, unreadable or not UTF-8 exit 2.
    pub fn read(path: &Path) -> Result<Source> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Failure::not_found(format!(
                    "{shown}: no such file; write one (see README \"Environments\") or pass -f FILE"
                ))
            } else {
                Failure::usage(format!("{shown}: cannot read: {e}"))
            }
        })?;
        let text = String::from_utf8(bytes)
            .map_err(|e| Failure::usage(format!("{shown}: not UTF-8 text: {e}")))?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Source::from_text(shown, dir, text))
    }

    pub fn from_text(shown: String, dir: PathBuf, text: String) -> Source {
        let digest = hex::encode(Sha256::digest(text.as_bytes()));
        Source {
            shown,
            dir,
            text,
            digest,
        }
    }

    /// The typed file; any YAML or schema error as `FILE:LINE:COL: ...`.
    pub fn parse(&self) -> Result<EnvFile> {
        serde_norway::from_str(&self.text).map_err(|e| self.yaml_error(&e))
    }

    fn yaml_error(&self, e: &serde_norway::Error) -> Failure {
        let at = e.location().map(|l| (l.line(), l.column()));
        let message = tidy(&e.to_string(), at);
        match e.location() {
            Some(l) => Failure::usage(format!(
                "{}:{}:{}: {message}",
                self.shown,
                l.line(),
                l.column()
            )),
            None => Failure::usage(format!("{}: {message}", self.shown)),
        }
    }

    /// A usage error at the node at `path` (`FILE:LINE:COL: message`), or
    /// at the file when the path is not in it (a default, say).
    pub fn error_at(&self, path: &[Seg], message: impl AsRef<str>) -> Failure {
        Failure::usage(self.message_at(path, message))
    }

    pub fn message_at(&self, path: &[Seg], message: impl AsRef<str>) -> String {
        match locate::locate(&self.text, path) {
            Some((line, col)) => format!("{}:{line}:{col}: {}", self.shown, message.as_ref()),
            None => format!("{}: {}", self.shown, message.as_ref()),
        }
    }

    /// A path in the file relative to its directory (absolute ones as is).
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }
}

/// serde_norway's text without the parts we say ourselves: the leading
/// `vms[0].memory: ` path and ` at line L column C` where that is the
/// position we print anyway; backticks become quotes and our type names
/// say what they are.
fn tidy(raw: &str, at: Option<(usize, usize)>) -> String {
    let mut s = raw.to_string();
    if let Some((line, col)) = at {
        s = s.replace(&format!(" at line {line} column {col}"), "");
    }
    if let Some((head, tail)) = s.split_once(": ") {
        let is_path = !head.is_empty()
            && head
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.[]".contains(c));
        if is_path {
            s = tail.to_string();
        }
    }
    for (ours, shown) in [
        (
            "struct EnvFile",
            "a mapping (name:, hosts:, networks:, defaults:, vms:)",
        ),
        (
            "struct VmGroup",
            "a mapping (one vm group: name:, count:, ...)",
        ),
        ("struct HostSpec", "a mapping (instance: or uri:)"),
        ("struct NetworkSpec", "a mapping (template:, cidr:)"),
        ("struct Defaults", "a mapping (template:, memory:, ...)"),
    ] {
        s = s.replace(ours, shown);
    }
    s.replace('`', "'")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str) -> Source {
        Source::from_text("lab.yaml".into(), PathBuf::from("/labs"), text.into())
    }

    fn err(text: &str) -> String {
        let f = src(text).parse().unwrap_err();
        assert_eq!(f.exit, crate::error::Exit::Usage);
        f.message
    }

    pub const ISSUE_EXAMPLE: &str = include_str!("../../tests/fixtures/env/lab.yaml");

    #[test]
    fn the_issue_example_parses() {
        let f = src(ISSUE_EXAMPLE).parse().unwrap();
        assert_eq!(f.name, "lab");
        assert_eq!(f.hosts["left"].instance.as_deref(), Some("default"));
        assert_eq!(
            f.hosts["right"].uri.as_deref(),
            Some("qemu+ssh://ops@hv2/system")
        );
        assert_eq!(f.networks["data"].cidr.as_deref(), Some("10.10.0.0/24"));
        assert_eq!(f.defaults.memory, Some(1024));
        assert_eq!(f.vms.len(), 2);
        assert_eq!(f.vms[1].count, Some(3));
        assert_eq!(f.vms[1].user_data, Some(PathBuf::from("node.yaml")));
    }

    #[test]
    fn unknown_keys_name_file_line_and_column() {
        assert_eq!(
            err("name: lab\nvms:\n  - name: a\n    memroy: 5\n"),
            "lab.yaml:4:5: unknown field 'memroy', expected one of 'name', 'count', 'host', 'template', 'memory', 'vcpus', 'disk_size', 'image', 'networks', 'user_data', 'ssh_keys'"
        );
        assert!(err("name: lab\nfoo: 1\n").starts_with("lab.yaml:2:1: unknown field 'foo'"));
        assert!(err("name: lab\nhosts:\n  a: {instance: x, url: y}\n")
            .starts_with("lab.yaml:3:20: unknown field 'url'"));
    }

    #[test]
    fn wrong_types_name_file_line_and_column() {
        assert_eq!(
            err("name: lab\nvms:\n  - name: a\n    memory: lots\n"),
            "lab.yaml:4:13: invalid type: string \"lots\", expected u64"
        );
        assert_eq!(
            err("name: lab\nvms:\n  - {name: b, vcpus: -3}\n"),
            "lab.yaml:3:22: invalid type: integer '-3', expected u32"
        );
        assert!(err("name: lab\nvms: {a: 1}\n").starts_with("lab.yaml:2:6: invalid type: map"));
    }

    #[test]
    fn syntax_errors_and_missing_fields() {
        assert_eq!(
            err("name: lab\nvms:\n  - name: \"a\n"),
            "lab.yaml:4:1: found unexpected end of stream, while scanning a quoted scalar at line 3 column 11"
        );
        assert_eq!(
            err("name: lab\nvms:\n  - name: a\n   template: x\n"),
            "lab.yaml:4:4: did not find expected '-' indicator, while parsing a block collection at line 3 column 3"
        );
        assert_eq!(
            err("name: lab\nvms: [a]\n"),
            "lab.yaml:2:7: invalid type: string \"a\", expected a mapping (one vm group: name:, count:, ...)"
        );
        assert_eq!(err("vms: []\n"), "lab.yaml:1:1: missing field 'name'");
        assert!(err("name: a\nname: b\n").contains("duplicate field 'name'"));
    }

    #[test]
    fn a_host_or_network_declared_twice_is_an_error() {
        assert_eq!(
            err("name: lab\nnetworks:\n  n: {template: default}\n  n: {template: isolated}\n"),
            "lab.yaml:4:3: 'n' is declared twice; keep one"
        );
        assert!(
            err("name: lab\nhosts:\n  a: {uri: x}\n  b: {uri: y}\n  a: {uri: z}\n")
                .starts_with("lab.yaml:5:3: 'a' is declared twice")
        );
        let empty = src("name: lab\nhosts:\nnetworks:\n").parse().unwrap();
        assert!(empty.hosts.is_empty() && empty.networks.is_empty());
    }

    #[test]
    fn errors_after_parsing_point_at_the_node() {
        let s = src(ISSUE_EXAMPLE);
        let f = s.error_at(&crate::yaml_path!["vms", 1, "host"], "no host 'right'");
        assert!(f.message.starts_with("lab.yaml:"), "{}", f.message);
        assert!(f.message.ends_with(": no host 'right'"));
        assert_eq!(
            s.error_at(&crate::yaml_path!["nope"], "x").message,
            "lab.yaml: x"
        );
    }

    #[test]
    fn digest_is_the_sha256_of_the_bytes() {
        assert_eq!(
            src("").digest,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_ne!(src("name: a\n").digest, src("name: b\n").digest);
    }

    #[test]
    fn missing_and_unreadable_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Source::read(&dir.path().join("boxvirt.yaml")).unwrap_err();
        assert_eq!(missing.exit, crate::error::Exit::NotFound);
        assert!(missing.message.contains("boxvirt.yaml: no such file"));
        let not_a_file = Source::read(dir.path()).unwrap_err();
        assert_eq!(not_a_file.exit, crate::error::Exit::Usage);
        let p = dir.path().join("bin.yaml");
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert!(Source::read(&p).unwrap_err().message.contains("not UTF-8"));
    }

    #[test]
    fn relative_paths_are_from_the_files_directory() {
        let s = src("name: a\n");
        assert_eq!(
            s.resolve(Path::new("node.yaml")),
            Path::new("/labs/node.yaml")
        );
        assert_eq!(s.resolve(Path::new("/x/y")), Path::new("/x/y"));
    }
}
