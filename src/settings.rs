//! One resolved [`Settings`] value: flag > environment > `.env` in the working
//! directory > built-in default. Everything else reads paths, ports, names and
//! libvirt URIs from here, so the precedence rule lives in one place.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::cli::{GlobalArgs, OutputFormat, Via};
use crate::error::{Failure, Result};
use crate::names;
use crate::quote;
use crate::uri::Uri;

pub const DEFAULT_INSTANCE: &str = "default";
pub const DEFAULT_DATA_DIR: &str = "./data";
pub const DEFAULT_SSH_PORT: u16 = 2222;
pub const DEFAULT_TCP_PORT: u16 = 16509;
pub const DEFAULT_TLS_PORT: u16 = 16514;
/// The SSH user inside the nested host.
pub const NESTED_SSH_USER: &str = "qemu_user";

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `--connect` or `LIBVIRT_DEFAULT_URI`, parsed once; `None` means
    /// "the instance".
    pub explicit_uri: Option<Uri>,
    pub via: Via,
    pub instance: String,
    /// Always absolute (LESSONS: relative paths ended up in ssh configs).
    pub data_dir: PathBuf,
    pub template_dir: Option<PathBuf>,
    pub output: OutputFormat,
    pub verbose: u8,
    pub quiet: bool,
    pub yes: bool,
    pub ssh_port: u16,
    pub libvirt_tcp_port: u16,
    pub libvirt_tls_port: u16,
    pub host_uid: u32,
    pub host_gid: u32,
    /// libvirt over TLS (`up --tls`, `BOXVIRT_TLS=1`); read it through
    /// `nested::tls::wanted`.
    pub tls: bool,
    /// Extra names in the server certificate (`up --tls-san`).
    pub tls_sans: Vec<String>,
    /// Where the TLS port is published (`up --listen`); None: 127.0.0.1.
    pub listen: Option<IpAddr>,
    /// Where short links to deep sockets live (see [`Settings::socket_link`]):
    /// `$XDG_RUNTIME_DIR/boxvirt`, else `/run/user/UID/boxvirt`, else
    /// `/tmp/boxvirt-UID`.
    pub link_dir: PathBuf,
    /// Test hook `BOXVIRT_INJECT_FAILURE` (`vm create`, `env apply`): a
    /// step after which a failure is injected (see vm/steps.rs).
    pub inject_failure: Option<String>,
    /// `BOXVIRT_HARDENED` (1/true/yes): `up` as with --hardened.
    pub hardened: bool,
    /// What other modules need from the process environment.
    pub process: ProcessEnv,
}

/// Values of the process environment (never `.env`) that other modules
/// need, read here so no other module reads the environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessEnv {
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// `$USER`.
    pub user: Option<String>,
    /// `$COLUMNS`: the table width when stdout is not a terminal.
    pub columns: Option<usize>,
    /// The image cache: `$BOXVIRT_CACHE_DIR`, else `$XDG_CACHE_HOME/boxvirt`,
    /// else `$HOME/.cache/boxvirt` (see image/cache.rs).
    pub cache_dir: Option<PathBuf>,
    /// `$BOXVIRT_HTTP_TIMEOUT` (seconds) and `$BOXVIRT_DOWNLOAD_RETRIES`
    /// (see image/download.rs).
    pub http_timeout: Option<u64>,
    pub download_retries: Option<u64>,
    /// `$PATH` (where apparmor_parser is looked for).
    pub path: Option<std::ffi::OsString>,
}

impl ProcessEnv {
    fn resolve(env: &HashMap<String, String>) -> ProcessEnv {
        let path = |k: &str| env.get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let number = |k: &str| env.get(k).and_then(|v| v.trim().parse().ok());
        let cache_dir = path("BOXVIRT_CACHE_DIR")
            .or_else(|| path("XDG_CACHE_HOME").map(|d| d.join("boxvirt")))
            .or_else(|| path("HOME").map(|h| h.join(".cache").join("boxvirt")));
        ProcessEnv {
            home: env.get("HOME").map(PathBuf::from),
            user: env.get("USER").cloned(),
            columns: env.get("COLUMNS").and_then(|c| c.trim().parse().ok()),
            cache_dir,
            http_timeout: number("BOXVIRT_HTTP_TIMEOUT"),
            download_retries: number("BOXVIRT_DOWNLOAD_RETRIES"),
            path: env.get("PATH").map(Into::into),
        }
    }
}

/// The longest path a unix socket address holds (sun_path is 108 bytes,
/// NUL included).
pub const SUN_PATH_MAX: usize = 107;

/// Where settings come from besides flags: the process environment and the
/// `.env` file. Kept as plain maps so tests can resolve without touching the
/// real environment.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub env: HashMap<String, String>,
    pub dotenv: HashMap<String, String>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    /// `/run/user/UID` when it exists (checked by `from_process`).
    pub run_user_dir: Option<PathBuf>,
}

impl Sources {
    /// The real process: environment, `./.env`, current directory and ids.
    pub fn from_process() -> Result<Sources> {
        let cwd = std::env::current_dir()
            .map_err(|e| Failure::failed(format!("cannot read the current directory: {e}")))?;
        let dotenv = match std::fs::read_to_string(cwd.join(".env")) {
            Ok(text) => parse_dotenv(&text),
            Err(_) => HashMap::new(),
        };
        // SAFETY: getuid/getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let run_user = PathBuf::from(format!("/run/user/{uid}"));
        Ok(Sources {
            env: std::env::vars().collect(),
            dotenv,
            cwd,
            uid,
            gid,
            run_user_dir: run_user.is_dir().then_some(run_user),
        })
    }

    /// Under `sudo`, the user who ran it (so the socket and keys end up
    /// theirs, usable without sudo afterwards); else our own id.
    fn invoking_id(&self, sudo_var: &str, own: u32) -> u32 {
        if self.uid != 0 {
            return own;
        }
        self.env
            .get(sudo_var)
            .and_then(|v| v.parse().ok())
            .unwrap_or(own)
    }

    /// The user's runtime directory for boxvirt's socket links.
    fn link_dir(&self) -> PathBuf {
        match self
            .env
            .get("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| self.run_user_dir.clone())
        {
            Some(dir) => dir.join("boxvirt"),
            None => PathBuf::from(format!("/tmp/boxvirt-{}", self.uid)),
        }
    }

    /// Environment first, then `.env`; empty values count as unset.
    fn get(&self, key: &str) -> Option<&str> {
        self.env
            .get(key)
            .or_else(|| self.dotenv.get(key))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// `KEY=VALUE` lines as docker compose reads them: `#` comments, optional
/// `export `, optional single or double quotes around the value.
pub fn parse_dotenv(text: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let mut value = value.trim();
        if value.len() >= 2
            && ((value.starts_with('"') && value.ends_with('"'))
                || (value.starts_with('\'') && value.ends_with('\'')))
        {
            value = &value[1..value.len() - 1];
        } else if let Some(i) = value.find(" #") {
            value = value[..i].trim_end();
        }
        map.insert(key.trim().to_string(), value.to_string());
    }
    map
}

/// `--connect` > `LIBVIRT_DEFAULT_URI`, read once. `-c ""` counts as not
/// given, as an empty variable does (libvirt would read it as "its own
/// default URI", silently).
fn explicit_uri(flags: &GlobalArgs, src: &Sources) -> Result<Option<Uri>> {
    let (given, origin) = match flags.connect.as_deref().filter(|u| !u.is_empty()) {
        Some(uri) => (uri, "--connect "),
        None => match src.get("LIBVIRT_DEFAULT_URI") {
            Some(uri) => (uri, "LIBVIRT_DEFAULT_URI="),
            None => return Ok(None),
        },
    };
    Uri::parse(given).map(Some).map_err(|why| {
        Failure::usage(format!(
            "{origin}{given:?} is not a libvirt URI ({why}); use e.g. qemu:///system or qemu+ssh://user@host/system"
        ))
    })
}

fn parse_port(key: &str, value: &str) -> Result<u16> {
    match value.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(Failure::usage(format!(
            "{key}={value:?} is not a TCP port; use a number from 1 to 65535"
        ))),
    }
}

fn parse_bool(key: &str, value: Option<&str>) -> Result<bool> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("0") | Some("false") | Some("no") | Some("off") => Ok(false),
        Some("1") | Some("true") | Some("yes") | Some("on") => Ok(true),
        Some(v) => Err(Failure::usage(format!(
            "{key}={v:?} is not a yes/no value; use 1 or 0"
        ))),
    }
}

fn parse_id(key: &str, value: &str) -> Result<u32> {
    value.parse::<u32>().map_err(|_| {
        Failure::usage(format!(
            "{key}={value:?} is not a numeric id; use e.g. $(id -u)"
        ))
    })
}

impl Settings {
    pub fn resolve(flags: &GlobalArgs, src: &Sources) -> Result<Settings> {
        let instance = flags
            .instance
            .clone()
            .or_else(|| src.get("BOXMAN_INSTANCE_NAME").map(str::to_string))
            .unwrap_or_else(|| DEFAULT_INSTANCE.to_string());
        names::validate("instance", &instance)?;

        let data_dir = flags
            .data_dir
            .clone()
            .or_else(|| src.get("BOXMAN_DATA_DIR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let data_dir = absolute(&src.cwd, &data_dir);

        let port = |flag: Option<u16>, key: &str, default: u16| -> Result<u16> {
            match (flag, src.get(key)) {
                (Some(p), _) => Ok(p),
                (None, Some(v)) => parse_port(key, v),
                (None, None) => Ok(default),
            }
        };
        let id = |flag: Option<u32>, key: &str, default: u32| -> Result<u32> {
            match (flag, src.get(key)) {
                (Some(v), _) => Ok(v),
                (None, Some(v)) => parse_id(key, v),
                (None, None) => Ok(default),
            }
        };

        Ok(Settings {
            explicit_uri: explicit_uri(flags, src)?,
            via: flags.via.unwrap_or_default(),
            instance,
            data_dir,
            template_dir: flags
                .template_dir
                .clone()
                .or_else(|| src.get("BOXVIRT_TEMPLATE_DIR").map(PathBuf::from))
                .map(|p| absolute(&src.cwd, &p)),
            output: flags.output.unwrap_or_default(),
            verbose: flags.verbose,
            quiet: flags.quiet,
            yes: flags.yes,
            ssh_port: port(flags.ssh_port, "BOXMAN_SSH_PORT", DEFAULT_SSH_PORT)?,
            libvirt_tcp_port: port(
                flags.libvirt_tcp_port,
                "BOXMAN_LIBVIRT_TCP_PORT",
                DEFAULT_TCP_PORT,
            )?,
            libvirt_tls_port: port(
                flags.libvirt_tls_port,
                "BOXMAN_LIBVIRT_TLS_PORT",
                DEFAULT_TLS_PORT,
            )?,
            host_uid: id(
                flags.host_uid,
                "HOST_UID",
                src.invoking_id("SUDO_UID", src.uid),
            )?,
            host_gid: id(
                flags.host_gid,
                "HOST_GID",
                src.invoking_id("SUDO_GID", src.gid),
            )?,
            tls: parse_bool("BOXVIRT_TLS", src.get("BOXVIRT_TLS"))?,
            tls_sans: Vec::new(),
            listen: None,
            link_dir: src.link_dir(),
            // The process environment only: a test hook never comes from `.env`.
            inject_failure: src
                .env
                .get("BOXVIRT_INJECT_FAILURE")
                .filter(|v| !v.is_empty())
                .cloned(),
            hardened: parse_bool("BOXVIRT_HARDENED", src.get("BOXVIRT_HARDENED"))?,
            process: ProcessEnv::resolve(&src.env),
        })
    }

    /// The libvirt URI every libvirt command uses, as a value.
    pub fn uri(&self) -> Uri {
        match (&self.explicit_uri, self.via) {
            (Some(uri), _) => uri.clone(),
            (None, Via::Socket) => Uri::unix_socket(&self.socket_connect_path()),
            (None, Via::Ssh) => self.ssh_uri_value(),
        }
    }

    /// [`Settings::uri`] as text (messages, credentials, JSON).
    pub fn libvirt_uri(&self) -> String {
        self.uri().to_string()
    }

    /// True when the URI is the nested host's (so `boxvirt up` is the fix).
    pub fn uses_instance(&self) -> bool {
        self.explicit_uri.is_none()
    }

    /// True when libvirt commands go through the instance's socket.
    pub fn uses_instance_socket(&self) -> bool {
        self.uses_instance() && self.via == Via::Socket
    }

    /// The socket in the data dir (bind-mounted from the container).
    pub fn socket_path(&self) -> PathBuf {
        self.data_dir.join("libvirt-run").join("libvirt-sock")
    }

    /// When the socket's path is longer than a unix socket address holds:
    /// the short link to its directory that clients connect through,
    /// `<link dir>/<hash of the data dir>` (made by `nested::socket_link`).
    pub fn socket_link(&self) -> Option<PathBuf> {
        use sha2::{Digest, Sha256};
        if self.socket_path().as_os_str().len() <= SUN_PATH_MAX {
            return None;
        }
        let hash = Sha256::digest(self.data_dir.as_os_str().as_encoded_bytes());
        Some(self.link_dir.join(&hex::encode(hash)[..16]))
    }

    /// The path clients connect to: the socket, or its short link.
    pub fn socket_connect_path(&self) -> PathBuf {
        match self.socket_link() {
            Some(link) => link.join("libvirt-sock"),
            None => self.socket_path(),
        }
    }

    pub fn socket_uri(&self) -> String {
        Uri::unix_socket(&self.socket_connect_path()).to_string()
    }

    /// The instance's sshd with its key and pinned host key. libvirt's libssh2
    /// transport checks the known_hosts file (the plain ssh transport ignores
    /// it; the libssh one stalls for seconds on large replies).
    pub fn ssh_uri(&self) -> String {
        self.ssh_uri_value().to_string()
    }

    fn ssh_uri_value(&self) -> Uri {
        Uri::new("qemu+libssh2", "127.0.0.1", "/system")
            .with_user(NESTED_SSH_USER)
            .with_port(self.ssh_port)
            .path_param("keyfile", &self.ssh_key_path())
            .path_param("known_hosts", &self.known_hosts_path())
            .with_param("sshauth", "privkey")
    }

    /// The instance's PKI for libvirt over TLS; also the clients' `pkipath`
    /// (cacert.pem, clientcert.pem, clientkey.pem).
    pub fn pki_dir(&self) -> PathBuf {
        self.data_dir.join("pki")
    }

    /// libvirt over TLS on the published port, with the instance's client
    /// certificate (`up --tls`).
    pub fn tls_uri(&self) -> String {
        Uri::new("qemu+tls", "127.0.0.1", "/system")
            .with_port(self.libvirt_tls_port)
            .path_param("pkipath", &self.pki_dir())
            .to_string()
    }

    pub fn ssh_dir(&self) -> PathBuf {
        self.data_dir.join("ssh")
    }
    pub fn ssh_key_path(&self) -> PathBuf {
        self.ssh_dir().join("id_ed25519")
    }
    pub fn known_hosts_path(&self) -> PathBuf {
        self.ssh_dir().join("known_hosts")
    }
    pub fn ssh_config_path(&self) -> PathBuf {
        self.ssh_dir().join("boxman.conf")
    }
    /// `Host` alias in the ssh config, as in the original.
    pub fn ssh_host_alias(&self) -> String {
        format!("boxman-{}", self.instance)
    }
    /// The shell command that logs into the nested host (as `make ssh` did).
    pub fn ssh_command(&self) -> String {
        format!(
            "ssh -F {} {}",
            quote::shell_path(&self.ssh_config_path()),
            quote::shell(&self.ssh_host_alias())
        )
    }
    pub fn container_name(&self) -> String {
        format!("boxman-libvirt-{}", self.instance)
    }
}

fn absolute(cwd: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    };
    // Drop `.` components so paths in configs read cleanly.
    joined
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

/// `$DOCKER_HOST`, for the one Docker connection (nested/docker.rs), which
/// is made without a Settings at hand. Like the rest, read only here.
pub fn docker_host() -> Option<String> {
    std::env::var("DOCKER_HOST").ok()
}

/// `$BOXVIRT_CONNECT_TIMEOUT` (seconds): how long a libvirt handshake may
/// take (libvirt/connection.rs; connections are opened without Settings).
pub fn connect_timeout_secs() -> Option<u64> {
    std::env::var("BOXVIRT_CONNECT_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(env: &[(&str, &str)], dotenv: &str) -> Sources {
        Sources {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dotenv: parse_dotenv(dotenv),
            cwd: PathBuf::from("/home/u/proj"),
            uid: 1000,
            gid: 1001,
            run_user_dir: None,
        }
    }

    #[test]
    fn the_failure_hook_comes_from_the_environment_only() {
        let get = |env: &[(&str, &str)], dotenv: &str| {
            Settings::resolve(&GlobalArgs::default(), &sources(env, dotenv))
                .unwrap()
                .inject_failure
        };
        assert_eq!(
            get(&[("BOXVIRT_INJECT_FAILURE", "swap@a")], "").as_deref(),
            Some("swap@a")
        );
        assert_eq!(get(&[("BOXVIRT_INJECT_FAILURE", "")], ""), None);
        assert_eq!(get(&[], "BOXVIRT_INJECT_FAILURE=define\n"), None);
    }

    #[test]
    fn process_values_come_from_the_environment_only() {
        let get = |env: &[(&str, &str)], dotenv: &str| {
            Settings::resolve(&GlobalArgs::default(), &sources(env, dotenv))
                .unwrap()
                .process
        };
        let p = get(
            &[("HOME", "/home/u"), ("USER", "u"), ("COLUMNS", " 90 ")],
            "BOXVIRT_HTTP_TIMEOUT=5\n",
        );
        assert_eq!(p.home, Some(PathBuf::from("/home/u")));
        assert_eq!(p.user.as_deref(), Some("u"));
        assert_eq!(p.columns, Some(90));
        assert_eq!(p.http_timeout, None);
        assert_eq!(p.cache_dir, Some(PathBuf::from("/home/u/.cache/boxvirt")));
        let p = get(
            &[
                ("HOME", "/h"),
                ("XDG_CACHE_HOME", "/x"),
                ("COLUMNS", "wide"),
            ],
            "",
        );
        assert_eq!(p.cache_dir, Some(PathBuf::from("/x/boxvirt")));
        assert_eq!(p.columns, None);
        let p = get(&[("XDG_CACHE_HOME", "/x"), ("BOXVIRT_CACHE_DIR", "/c")], "");
        assert_eq!(p.cache_dir, Some(PathBuf::from("/c")));
        let p = get(
            &[
                ("BOXVIRT_DOWNLOAD_RETRIES", "7"),
                ("BOXVIRT_HTTP_TIMEOUT", "9"),
            ],
            "",
        );
        assert_eq!((p.download_retries, p.http_timeout), (Some(7), Some(9)));
        assert_eq!(get(&[], "").cache_dir, None);
    }

    #[test]
    fn paths_in_uris_are_percent_encoded() {
        let flags = GlobalArgs {
            data_dir: Some("./sp ace&x#%?+='ä".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&flags, &sources(&[], "")).unwrap();
        let enc = "/home/u/proj/sp%20ace%26x%23%25%3F%2B%3D%27%C3%A4";
        assert_eq!(
            s.socket_uri(),
            format!("qemu+unix:///system?socket={enc}/libvirt-run/libvirt-sock")
        );
        assert_eq!(
            s.ssh_uri(),
            format!("qemu+libssh2://qemu_user@127.0.0.1:2222/system?keyfile={enc}/ssh/id_ed25519&known_hosts={enc}/ssh/known_hosts&sshauth=privkey")
        );
        assert_eq!(s.uri().param_path("socket").unwrap(), s.socket_path());
        assert_eq!(
            s.tls_uri(),
            format!("qemu+tls://127.0.0.1:16514/system?pkipath={enc}/pki")
        );
        assert_eq!(
            Uri::parse(&s.tls_uri())
                .unwrap()
                .param_path("pkipath")
                .unwrap(),
            s.pki_dir()
        );
        assert_eq!(
            s.ssh_command(),
            "ssh -F '/home/u/proj/sp ace&x#%?+='\\''ä/ssh/boxman.conf' boxman-default"
        );
    }

    #[test]
    fn deep_sockets_go_through_a_short_link_in_the_runtime_dir() {
        let short = Settings::resolve(&GlobalArgs::default(), &sources(&[], "")).unwrap();
        assert_eq!(short.socket_link(), None);
        assert_eq!(short.socket_connect_path(), short.socket_path());
        let deep = GlobalArgs {
            data_dir: Some(PathBuf::from("d".repeat(100))),
            ..Default::default()
        };
        let s = Settings::resolve(&deep, &sources(&[], "")).unwrap();
        let link = s.socket_link().unwrap();
        assert!(link.starts_with("/tmp/boxvirt-1000/"), "{link:?}");
        assert_eq!(s.socket_connect_path(), link.join("libvirt-sock"));
        assert!(s.socket_uri().contains("socket=/tmp/boxvirt-1000/"));
        let s = Settings::resolve(
            &deep,
            &sources(&[("XDG_RUNTIME_DIR", "/run/user/1000")], ""),
        )
        .unwrap();
        assert!(s
            .socket_link()
            .unwrap()
            .starts_with("/run/user/1000/boxvirt/"));
        // Each data dir its own link.
        let other = GlobalArgs {
            data_dir: Some(PathBuf::from("e".repeat(100))),
            ..Default::default()
        };
        let o = Settings::resolve(&other, &sources(&[], "")).unwrap();
        assert_ne!(
            o.socket_link(),
            Settings::resolve(&deep, &sources(&[], ""))
                .unwrap()
                .socket_link()
        );
    }

    #[test]
    fn defaults_match_the_original_tool() {
        let s = Settings::resolve(&GlobalArgs::default(), &sources(&[], "")).unwrap();
        assert_eq!(s.instance, "default");
        assert_eq!(s.data_dir, PathBuf::from("/home/u/proj/data"));
        assert_eq!(
            (s.ssh_port, s.libvirt_tcp_port, s.libvirt_tls_port),
            (2222, 16509, 16514)
        );
        assert_eq!((s.host_uid, s.host_gid), (1000, 1001));
        assert_eq!(s.container_name(), "boxman-libvirt-default");
        assert_eq!(
            s.libvirt_uri(),
            "qemu+unix:///system?socket=/home/u/proj/data/libvirt-run/libvirt-sock"
        );
    }

    #[test]
    fn under_sudo_the_invoking_user_is_mapped() {
        let mut src = sources(&[("SUDO_UID", "1004"), ("SUDO_GID", "1005")], "");
        src.uid = 0;
        src.gid = 0;
        let s = Settings::resolve(&GlobalArgs::default(), &src).unwrap();
        assert_eq!((s.host_uid, s.host_gid), (1004, 1005));
        // HOST_UID still wins; a non-root user's SUDO_* is ignored.
        let mut src = sources(&[("SUDO_UID", "1004"), ("HOST_UID", "7")], "");
        src.uid = 0;
        assert_eq!(
            Settings::resolve(&GlobalArgs::default(), &src)
                .unwrap()
                .host_uid,
            7
        );
        let src = sources(&[("SUDO_UID", "1004")], "");
        assert_eq!(
            Settings::resolve(&GlobalArgs::default(), &src)
                .unwrap()
                .host_uid,
            1000
        );
    }

    #[test]
    fn hardened_comes_from_env_or_dotenv_and_rejects_nonsense() {
        let flags = GlobalArgs::default();
        let off = Settings::resolve(&flags, &sources(&[], "")).unwrap();
        assert!(!off.hardened);
        let env = Settings::resolve(&flags, &sources(&[("BOXVIRT_HARDENED", "1")], "")).unwrap();
        assert!(env.hardened);
        let dotenv = Settings::resolve(&flags, &sources(&[], "BOXVIRT_HARDENED=yes\n")).unwrap();
        assert!(dotenv.hardened);
        let err =
            Settings::resolve(&flags, &sources(&[("BOXVIRT_HARDENED", "maybe")], "")).unwrap_err();
        assert!(err.message.contains("BOXVIRT_HARDENED"), "{}", err.message);
    }

    #[test]
    fn flag_beats_env_beats_dotenv() {
        let src = sources(
            &[("BOXMAN_INSTANCE_NAME", "fromenv"), ("BOXMAN_SSH_PORT", "2300")],
            "BOXMAN_INSTANCE_NAME=fromdotenv\nBOXMAN_SSH_PORT=2400\nBOXMAN_DATA_DIR=\"./data-x\" \n# c\nexport HOST_UID=5",
        );
        let s = Settings::resolve(&GlobalArgs::default(), &src).unwrap();
        assert_eq!(s.instance, "fromenv");
        assert_eq!(s.ssh_port, 2300);
        assert_eq!(s.data_dir, PathBuf::from("/home/u/proj/data-x"));
        assert_eq!(s.host_uid, 5);
        let flags = GlobalArgs {
            instance: Some("flag".into()),
            ssh_port: Some(2500),
            ..Default::default()
        };
        let s = Settings::resolve(&flags, &src).unwrap();
        assert_eq!((s.instance.as_str(), s.ssh_port), ("flag", 2500));
    }

    #[test]
    fn tls_comes_from_boxvirt_tls() {
        let s = Settings::resolve(&GlobalArgs::default(), &sources(&[], "")).unwrap();
        assert!(!s.tls);
        let s = Settings::resolve(&GlobalArgs::default(), &sources(&[], "BOXVIRT_TLS=1")).unwrap();
        assert!(s.tls);
        let err = Settings::resolve(
            &GlobalArgs::default(),
            &sources(&[("BOXVIRT_TLS", "maybe")], ""),
        )
        .unwrap_err();
        assert!(err.message.contains("BOXVIRT_TLS"), "{}", err.message);
    }

    #[test]
    fn connect_flag_beats_libvirt_default_uri() {
        let src = sources(&[("LIBVIRT_DEFAULT_URI", "test:///default")], "");
        let s = Settings::resolve(&GlobalArgs::default(), &src).unwrap();
        assert_eq!(s.libvirt_uri(), "test:///default");
        let flags = GlobalArgs {
            connect: Some("qemu:///system".into()),
            ..Default::default()
        };
        assert_eq!(
            Settings::resolve(&flags, &src).unwrap().libvirt_uri(),
            "qemu:///system"
        );
    }

    #[test]
    fn a_malformed_uri_is_a_usage_error_naming_its_source() {
        let flags = GlobalArgs {
            connect: Some("qemu+ssh://h:22x/system".into()),
            ..Default::default()
        };
        let e = Settings::resolve(&flags, &sources(&[], "")).unwrap_err();
        assert_eq!(e.exit, crate::error::Exit::Usage);
        assert!(
            e.message.starts_with(
                "--connect \"qemu+ssh://h:22x/system\" is not a libvirt URI (bad port '22x'"
            ),
            "{}",
            e.message
        );
        let src = sources(&[], "LIBVIRT_DEFAULT_URI=/run/libvirt/libvirt-sock");
        let e = Settings::resolve(&GlobalArgs::default(), &src).unwrap_err();
        assert_eq!(e.exit, crate::error::Exit::Usage);
        assert!(
            e.message.starts_with(
                "LIBVIRT_DEFAULT_URI=\"/run/libvirt/libvirt-sock\" is not a libvirt URI (it has no 'scheme://'"
            ),
            "{}",
            e.message
        );
        // The flag wins, so a bad variable under it is never read.
        let flags = GlobalArgs {
            connect: Some("qemu:///system".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&flags, &src).unwrap();
        assert!(s.uri().is_local());
    }

    #[test]
    fn an_empty_uri_counts_as_not_given() {
        let empty = GlobalArgs {
            connect: Some(String::new()),
            ..Default::default()
        };
        let s = Settings::resolve(&empty, &sources(&[("LIBVIRT_DEFAULT_URI", "")], "")).unwrap();
        assert!(s.uses_instance());
        assert_eq!(s.libvirt_uri(), s.socket_uri());
        let src = sources(&[("LIBVIRT_DEFAULT_URI", "test:///default")], "");
        assert_eq!(
            Settings::resolve(&empty, &src).unwrap().libvirt_uri(),
            "test:///default"
        );
    }

    #[test]
    fn ssh_uri_uses_port_key_and_pinned_known_hosts() {
        let flags = GlobalArgs {
            via: Some(Via::Ssh),
            ssh_port: Some(2223),
            ..Default::default()
        };
        let s = Settings::resolve(&flags, &sources(&[], "")).unwrap();
        assert_eq!(
            s.libvirt_uri(),
            "qemu+libssh2://qemu_user@127.0.0.1:2223/system?keyfile=/home/u/proj/data/ssh/id_ed25519&known_hosts=/home/u/proj/data/ssh/known_hosts&sshauth=privkey"
        );
    }

    #[test]
    fn bad_values_are_usage_errors_naming_the_variable() {
        let err = Settings::resolve(
            &GlobalArgs::default(),
            &sources(&[("BOXMAN_SSH_PORT", "abc")], ""),
        )
        .unwrap_err();
        assert_eq!(err.exit, crate::error::Exit::Usage);
        assert!(err.message.contains("BOXMAN_SSH_PORT"), "{}", err.message);
        let err = Settings::resolve(
            &GlobalArgs::default(),
            &sources(&[("BOXMAN_INSTANCE_NAME", "a b")], ""),
        )
        .unwrap_err();
        assert!(err.message.contains("instance"), "{}", err.message);
    }
}
