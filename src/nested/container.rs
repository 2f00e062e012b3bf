//! The instance's container: the create body (the image's runtime contract),
//! and create / start / stop / remove / inspect / exec / logs.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, DeviceMapping, HostConfig, Mount, MountType, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::docker::{api_failure, is_not_found, Engine};
use super::hardening::{self, report::ContainerFacts, Profile};
use super::tls::{TlsSpec, CONTAINER_PORT as TLS_PORT, LABEL_TLS};
use super::{LABEL_CONFIG, LABEL_DATA_DIR, LABEL_INSTANCE};
use crate::error::{Failure, Result};
use crate::settings::Settings;

/// Capabilities instead of --privileged, which fails on machines whose
/// bounding set lacks CAP_SYS_RESOURCE (PLATFORM-FACTS). libvirtd needs
/// SYS_ADMIN (namespaces, mounts), NET_ADMIN/NET_RAW (bridges, iptables,
/// dnsmasq), SYS_PTRACE (/proc of QEMU), MKNOD (device nodes), SYS_NICE.
pub const CAPABILITIES: &[&str] = &[
    "SYS_ADMIN",
    "NET_ADMIN",
    "NET_RAW",
    "SYS_PTRACE",
    "MKNOD",
    "SYS_NICE",
];

/// Passed through only when present: without /dev/kvm the host still comes
/// up (QEMU falls back to TCG).
pub const DEVICES: &[&str] = &["/dev/kvm", "/dev/net/tun", "/dev/vhost-net"];

/// Host dir (under the data dir) -> container path.
/// `libvirt-cache` keeps QEMU's probed capabilities over `down`/`up`: a new
/// container would otherwise probe every emulator again (seconds) before
/// libvirtd answers. libvirt re-probes by itself when QEMU, libvirt, the
/// kernel or /dev/kvm changed, so a cache from an older image is harmless.
pub const BINDS: &[(&str, &str)] = &[
    ("libvirt-run", "/run/libvirt"),
    ("images", "/var/lib/libvirt/images"),
    ("ssh", "/data/ssh"),
    ("libvirt-etc", "/etc/libvirt"),
    ("libvirt-qemu", "/var/lib/libvirt/qemu"),
    ("libvirt-cache", "/var/cache/libvirt"),
];

/// Everything that decides how the container is created. Its hash is stored
/// as a label so `up` can tell "already up as asked" from "recreate".
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Spec {
    pub name: String,
    pub instance: String,
    pub image: String,
    pub image_id: String,
    pub data_dir: PathBuf,
    pub ssh_port: u16,
    pub env: Vec<String>,
    pub privileged: bool,
    pub devices: Vec<String>,
    /// libvirt over TLS (`up --tls`); left out when off, so the
    /// fingerprints of instances without TLS stay as they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// Left out of the fingerprint when default: default containers keep
    /// the fingerprint they had before profiles existed.
    #[serde(skip_serializing_if = "Profile::is_default")]
    pub profile: Profile,
}

impl Spec {
    pub fn new(settings: &Settings, image: &str, image_id: &str, privileged: bool) -> Spec {
        let tls = TlsSpec::of(settings);
        let mut env = vec![
            format!("HOST_UID={}", settings.host_uid),
            format!("HOST_GID={}", settings.host_gid),
            format!("BOXMAN_INSTANCE_NAME={}", settings.instance),
            format!("BOXMAN_SSH_PORT={}", settings.ssh_port),
            // `up` defines network `default` itself, with its slots.
            "BOXVIRT_NET_DEFAULT=client".to_string(),
        ];
        if tls.is_some() {
            env.push("BOXVIRT_TLS=1".into());
        }
        Spec {
            name: settings.container_name(),
            instance: settings.instance.clone(),
            image: image.to_string(),
            image_id: image_id.to_string(),
            data_dir: settings.data_dir.clone(),
            ssh_port: settings.ssh_port,
            env,
            privileged,
            devices: DEVICES
                .iter()
                .filter(|d| Path::new(d).exists())
                .map(|d| d.to_string())
                .collect(),
            tls,
            profile: Profile::default(),
        }
    }

    /// The same spec with a hardening profile / resource limits.
    pub fn with_profile(mut self, profile: Profile) -> Spec {
        if profile.hardened {
            self.env.push(hardening::ENV_HARDENED.to_string());
        }
        self.profile = profile;
        self
    }

    pub fn host_dirs(&self) -> Vec<PathBuf> {
        BINDS
            .iter()
            .map(|(dir, _)| self.data_dir.join(dir))
            .collect()
    }

    /// (host path, container path) of each bind mount.
    pub fn binds(&self) -> Vec<(PathBuf, String)> {
        BINDS
            .iter()
            .map(|(dir, target)| (self.data_dir.join(dir), target.to_string()))
            .collect()
    }

    pub fn fingerprint(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(&json))
    }

    pub fn body(&self) -> ContainerCreateBody {
        let mut labels: HashMap<String, String> = [
            (LABEL_INSTANCE, self.instance.clone()),
            (LABEL_CONFIG, self.fingerprint()),
            (LABEL_DATA_DIR, self.data_dir.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if self.profile.hardened {
            labels.insert(hardening::LABEL_HARDENED.into(), "1".into());
        }
        let mut ports = HashMap::new();
        ports.insert(
            "22/tcp".to_string(),
            // 127.0.0.1 only: the instance is for this machine's user.
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(self.ssh_port.to_string()),
            }]),
        );
        let mut mounts = bind_mounts(self.binds());
        let mut exposed = vec!["22/tcp".to_string()];
        if let Some(tls) = &self.tls {
            // libvirt's TLS port, on 127.0.0.1 unless `--listen` says otherwise.
            ports.insert(
                TLS_PORT.to_string(),
                Some(vec![PortBinding {
                    host_ip: Some(tls.address.clone()),
                    host_port: Some(tls.port.to_string()),
                }]),
            );
            exposed.push(TLS_PORT.to_string());
            mounts.extend(tls.mounts());
            labels.insert(LABEL_TLS.to_string(), "1".to_string());
        }
        let mut host = HostConfig {
            mounts: Some(mounts),
            port_bindings: Some(ports),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            ..Default::default()
        };
        if self.privileged {
            host.privileged = Some(true);
        } else {
            host.cap_add = Some(CAPABILITIES.iter().map(|c| c.to_string()).collect());
            host.security_opt = Some(vec![
                "seccomp=unconfined".into(),
                "apparmor=unconfined".into(),
            ]);
            // `--security-opt systempaths=unconfined` is a docker CLI option
            // that becomes these two empty lists; libvirt writes to
            // /proc/sys/net when it starts a network.
            host.masked_paths = Some(vec![]);
            host.readonly_paths = Some(vec![]);
            host.devices = Some(
                self.devices
                    .iter()
                    .map(|d| DeviceMapping {
                        path_on_host: Some(d.clone()),
                        path_in_container: Some(d.clone()),
                        cgroup_permissions: Some("rwm".into()),
                    })
                    .collect(),
            );
        }
        if self.profile.hardened {
            // The SASL password, for the entrypoint to set (read-only).
            if let Some(mounts) = host.mounts.as_mut() {
                mounts.push(Mount {
                    source: Some(
                        hardening::credentials::dir(&self.data_dir)
                            .to_string_lossy()
                            .into_owned(),
                    ),
                    target: Some("/data/auth".into()),
                    typ: Some(MountType::BIND),
                    read_only: Some(true),
                    ..Default::default()
                });
            }
        }
        self.profile.apply(&mut host);
        ContainerCreateBody {
            image: Some(self.image.clone()),
            hostname: Some(format!("boxman-{}", self.instance)),
            env: Some(self.env.clone()),
            labels: Some(labels),
            exposed_ports: Some(exposed),
            host_config: Some(host),
            ..Default::default()
        }
    }
}

/// Bind mounts as structured mounts, not `src:dst` strings: a data dir
/// with a `:` (or any other character) in its path stays one path.
pub fn bind_mounts(binds: Vec<(PathBuf, String)>) -> Vec<Mount> {
    binds
        .into_iter()
        .map(|(source, target)| Mount {
            source: Some(source.to_string_lossy().into_owned()),
            target: Some(target),
            typ: Some(MountType::BIND),
            ..Default::default()
        })
        .collect()
}

/// What `inspect` tells about the instance's container.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    /// created | running | paused | restarting | removing | exited | dead
    pub state: String,
    pub running: bool,
    pub health: Option<String>,
    pub image_id: String,
    pub image: String,
    pub started_at: Option<String>,
    pub exit_code: Option<i64>,
    #[serde(skip)]
    pub labels: HashMap<String, String>,
    /// Host port published for 22/tcp (and on which address).
    pub ssh_port: Option<u16>,
    pub ssh_host_ip: Option<String>,
    /// The host port 22/tcp was created with: published again when a
    /// stopped container starts (`ssh_port` is only set while it runs).
    pub configured_ssh_port: Option<u16>,
    /// Host port (and address) published for libvirt's TLS port (`up --tls`).
    pub tls_port: Option<u16>,
    pub tls_host_ip: Option<String>,
    /// Privileges, profiles and limits, as created (status, doctor).
    #[serde(skip)]
    pub hardening: ContainerFacts,
}

/// What [`Engine::stop`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    Now,
    Already,
    NoContainer,
}

impl ContainerInfo {
    pub fn fingerprint(&self) -> Option<&str> {
        self.labels.get(LABEL_CONFIG).map(String::as_str)
    }

    /// Made with `up --tls` (libvirt over TLS on `tls_port`).
    pub fn tls(&self) -> bool {
        self.labels.get(LABEL_TLS).map(String::as_str) == Some("1")
    }
}

impl Engine {
    pub fn container(&self, name: &str) -> Result<Option<ContainerInfo>> {
        let c = match self.block_on(self.docker.inspect_container(name, None)) {
            Ok(c) => c,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(api_failure(format!("cannot inspect container {name}"), e)),
        };
        let state = c.state.unwrap_or_default();
        let config = c.config.unwrap_or_default();
        let hardening = c
            .host_config
            .as_ref()
            .map(ContainerFacts::from_host_config)
            .unwrap_or_default();
        let configured_ssh_port = c
            .host_config
            .and_then(|h| h.port_bindings)
            .and_then(|p| p.get("22/tcp").cloned().flatten())
            .and_then(|b| b.into_iter().next())
            .and_then(|b| b.host_port)
            .and_then(|p| p.parse().ok());
        let ports = c.network_settings.and_then(|n| n.ports).unwrap_or_default();
        let bound = |port: &str| {
            ports
                .get(port)
                .cloned()
                .flatten()
                .and_then(|b| b.into_iter().next())
        };
        let binding = bound("22/tcp");
        let tls_binding = bound(TLS_PORT);
        let tls_port = tls_binding
            .as_ref()
            .and_then(|b| b.host_port.as_deref())
            .and_then(|p| p.parse().ok());
        Ok(Some(ContainerInfo {
            id: c.id.unwrap_or_default(),
            name: name.to_string(),
            state: state
                .status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into()),
            running: state.running.unwrap_or(false),
            health: state.health.and_then(|h| h.status).map(|s| s.to_string()),
            image_id: c.image.unwrap_or_default(),
            image: config.image.unwrap_or_default(),
            started_at: state.started_at,
            exit_code: state.exit_code,
            labels: config.labels.unwrap_or_default(),
            ssh_port: binding
                .as_ref()
                .and_then(|b| b.host_port.as_deref())
                .and_then(|p| p.parse().ok()),
            ssh_host_ip: binding.and_then(|b| b.host_ip),
            configured_ssh_port,
            tls_port,
            tls_host_ip: tls_binding.and_then(|b| b.host_ip),
            hardening,
        }))
    }

    pub fn create_and_start(&self, spec: &Spec) -> Result<()> {
        let opts = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        self.block_on(self.docker.create_container(Some(opts), spec.body()))
            .map_err(|e| api_failure(format!("cannot create container {}", spec.name), e))?;
        // A container that never started is of no use: do not leave it behind.
        self.start(&spec.name).inspect_err(|_| {
            let opts = RemoveContainerOptionsBuilder::default().force(true).build();
            let _ = self.block_on(self.docker.remove_container(&spec.name, Some(opts)));
        })
    }

    pub fn start(&self, name: &str) -> Result<()> {
        self.block_on(self.docker.start_container(name, None))
            .map_err(|e| api_failure(format!("cannot start container {name}"), e))
    }

    /// Stops (libvirtd gets 30 s to shut down cleanly) and removes.
    pub fn stop_and_remove(&self, name: &str) -> Result<()> {
        if self.stop(name)? != Stopped::NoContainer {
            self.remove(name)?;
        }
        Ok(())
    }

    /// Stops the container, keeping it for the next start. libvirtd gets
    /// 30 s to shut down cleanly. The inspect first (a few ms) tells "already
    /// stopped" apart: the stop call answers both the same way.
    pub fn stop(&self, name: &str) -> Result<Stopped> {
        match self.container(name)? {
            None => return Ok(Stopped::NoContainer),
            Some(c) if !c.running => return Ok(Stopped::Already),
            Some(_) => {}
        }
        let opts = StopContainerOptionsBuilder::default().t(30).build();
        match self.block_on(self.docker.stop_container(name, Some(opts))) {
            Ok(()) => Ok(Stopped::Now),
            Err(e) if is_not_found(&e) => Ok(Stopped::NoContainer),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(Stopped::Already),
            Err(e) => Err(api_failure(format!("cannot stop container {name}"), e)),
        }
    }

    /// Removes a stopped (or any) container and its anonymous volumes; gone
    /// already is fine.
    pub fn remove(&self, name: &str) -> Result<()> {
        let opts = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.block_on(self.docker.remove_container(name, Some(opts))) {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api_failure(format!("cannot remove container {name}"), e)),
        }
    }

    /// Runs a command inside the container; returns its exit code and the
    /// combined stdout+stderr.
    pub fn exec(&self, name: &str, cmd: &[&str]) -> Result<(i64, String)> {
        let what = format!("cannot run '{}' in {name}", cmd.join(" "));
        self.block_on(async {
            let exec = self
                .docker
                .create_exec(
                    name,
                    CreateExecOptions {
                        cmd: Some(cmd.iter().map(|s| s.to_string()).collect::<Vec<String>>()),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| api_failure(&what, e))?;
            let mut text = String::new();
            if let StartExecResults::Attached { mut output, .. } = self
                .docker
                .start_exec(&exec.id, None)
                .await
                .map_err(|e| api_failure(&what, e))?
            {
                while let Some(chunk) = output.next().await {
                    match chunk {
                        Ok(log) => text.push_str(&String::from_utf8_lossy(&log.into_bytes())),
                        Err(e) => return Err(api_failure(&what, e)),
                    }
                }
            }
            let inspect = self
                .docker
                .inspect_exec(&exec.id)
                .await
                .map_err(|e| api_failure(&what, e))?;
            Ok((inspect.exit_code.unwrap_or(-1), text))
        })
    }

    /// The last `n` lines of the container's log.
    pub fn log_tail(&self, name: &str, n: u64) -> Result<Vec<String>> {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&n.to_string())
            .build();
        self.block_on(async {
            let mut lines = Vec::new();
            let mut stream = self.docker.logs(name, Some(opts));
            while let Some(item) = stream.next().await {
                let log =
                    item.map_err(|e| api_failure(format!("cannot read the logs of {name}"), e))?;
                lines.extend(
                    String::from_utf8_lossy(&log.into_bytes())
                        .lines()
                        .map(str::to_string),
                );
            }
            Ok(lines)
        })
    }

    /// Streams the log to stdout/stderr (as the container wrote it).
    pub fn print_logs(&self, name: &str, follow: bool, tail: Option<u64>) -> Result<()> {
        let tail = tail.map(|n| n.to_string()).unwrap_or_else(|| "all".into());
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .tail(&tail)
            .build();
        self.block_on(async {
            let mut stream = self.docker.logs(name, Some(opts));
            while let Some(item) = stream.next().await {
                let log =
                    item.map_err(|e| api_failure(format!("cannot read the logs of {name}"), e))?;
                let is_err = matches!(log, bollard::container::LogOutput::StdErr { .. });
                let bytes = log.into_bytes();
                // A closed pipe (e.g. `| head`) ends the stream quietly.
                let ok = if is_err {
                    std::io::stderr().write_all(&bytes).is_ok()
                } else {
                    std::io::stdout()
                        .write_all(&bytes)
                        .and_then(|_| std::io::stdout().flush())
                        .is_ok()
                };
                if !ok {
                    break;
                }
            }
            Ok(())
        })
    }

    /// Runs a throwaway container to completion (entrypoint overridden),
    /// returns its exit code and removes it.
    pub fn run_once(
        &self,
        image: &str,
        binds: Vec<(PathBuf, String)>,
        entrypoint: Vec<String>,
        name: &str,
    ) -> Result<i64> {
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            entrypoint: Some(entrypoint),
            cmd: Some(vec![]),
            host_config: Some(HostConfig {
                mounts: Some(bind_mounts(binds)),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default().name(name).build();
        self.block_on(self.docker.create_container(Some(opts), body))
            .map_err(|e| api_failure(format!("cannot create helper container {name}"), e))?;
        let result = self.start(name).and_then(|_| {
            self.block_on(async {
                let opts = WaitContainerOptionsBuilder::default().build();
                let mut wait = self.docker.wait_container(name, Some(opts));
                let mut code = 0;
                while let Some(item) = wait.next().await {
                    match item {
                        Ok(r) => code = r.status_code,
                        Err(bollard::errors::Error::DockerContainerWaitError {
                            code: c, ..
                        }) => code = c,
                        Err(e) => {
                            return Err(api_failure(
                                format!("waiting for helper container {name}"),
                                e,
                            ))
                        }
                    }
                }
                Ok(code)
            })
        });
        let opts = RemoveContainerOptionsBuilder::default().force(true).build();
        let _ = self.block_on(self.docker.remove_container(name, Some(opts)));
        result
    }

    /// Names of containers (any state) carrying `label` (k=v) filters.
    pub fn containers_with(&self, filters: &[(&str, String)]) -> Result<Vec<(String, String)>> {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in filters {
            map.entry(k.to_string()).or_default().push(v.clone());
        }
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&map)
            .build();
        let list = self
            .block_on(self.docker.list_containers(Some(opts)))
            .map_err(|e| api_failure("cannot list containers", e))?;
        Ok(list
            .into_iter()
            .map(|c| {
                let name = c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default();
                (
                    name.trim_start_matches('/').to_string(),
                    c.image_id.unwrap_or_default(),
                )
            })
            .collect())
    }
}

/// Creates the host side of every bind mount (docker would create missing
/// ones as root-owned directories).
pub fn create_host_dirs(spec: &Spec, uid: u32, gid: u32) -> Result<()> {
    for dir in spec.host_dirs() {
        std::fs::create_dir_all(&dir)
            .map_err(|e| Failure::failed(format!("cannot create {}: {e}", dir.display())))?;
        super::ssh_keys::hand_over(&dir, uid, gid);
    }
    Ok(())
}

/// Fails unless the data dir can be created and written.
pub fn check_data_dir(dir: &Path) -> Result<()> {
    let fail = |e: std::io::Error| {
        Failure::failed(format!(
            "data dir {} is not writable ({e}); pass --data-dir (or BOXMAN_DATA_DIR) with a writable path",
            dir.display()
        ))
    };
    if dir.exists() && !dir.is_dir() {
        return Err(Failure::usage(format!(
            "data dir {} is a file, not a directory; pass --data-dir (or BOXMAN_DATA_DIR) with a directory path",
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(".boxvirt-write-test");
    std::fs::write(&probe, b"").map_err(fail)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::GlobalArgs;
    use crate::settings::Sources;

    fn spec(privileged: bool) -> Spec {
        let src = Sources {
            cwd: "/home/u/p".into(),
            uid: 1000,
            gid: 1000,
            ..Default::default()
        };
        let flags = GlobalArgs {
            instance: Some("dev02".into()),
            ssh_port: Some(2223),
            ..Default::default()
        };
        let s = Settings::resolve(&flags, &src).unwrap();
        Spec::new(&s, "boxvirt/nested-host:debian", "sha256:1", privileged)
    }

    #[test]
    fn body_follows_the_runtime_contract() {
        let body = spec(false).body();
        let host = body.host_config.clone().unwrap();
        let mounts: Vec<String> = host
            .mounts
            .unwrap()
            .into_iter()
            .map(|m| {
                assert_eq!(m.typ, Some(MountType::BIND));
                format!("{}:{}", m.source.unwrap(), m.target.unwrap())
            })
            .collect();
        assert_eq!(
            mounts,
            [
                "/home/u/p/data/libvirt-run:/run/libvirt",
                "/home/u/p/data/images:/var/lib/libvirt/images",
                "/home/u/p/data/ssh:/data/ssh",
                "/home/u/p/data/libvirt-etc:/etc/libvirt",
                "/home/u/p/data/libvirt-qemu:/var/lib/libvirt/qemu",
                "/home/u/p/data/libvirt-cache:/var/cache/libvirt",
            ]
        );
        let ports = host.port_bindings.unwrap();
        let b = ports["22/tcp"].clone().unwrap();
        assert_eq!(
            (b[0].host_ip.as_deref(), b[0].host_port.as_deref()),
            (Some("127.0.0.1"), Some("2223"))
        );
        assert_eq!(
            ports.len(),
            1,
            "libvirt TCP/TLS ports must not be published"
        );
        assert_eq!(host.privileged, None);
        assert!(host.cap_add.unwrap().contains(&"SYS_ADMIN".to_string()));
        assert_eq!(host.masked_paths, Some(vec![]));
        let env = body.env.unwrap();
        for want in [
            "HOST_UID=1000",
            "HOST_GID=1000",
            "BOXMAN_INSTANCE_NAME=dev02",
            "BOXMAN_SSH_PORT=2223",
        ] {
            assert!(env.contains(&want.to_string()), "{env:?}");
        }
        assert_eq!(body.labels.unwrap()[LABEL_INSTANCE], "dev02");
        assert_eq!(
            host.restart_policy.unwrap().name,
            Some(RestartPolicyNameEnum::UNLESS_STOPPED)
        );
    }

    #[test]
    fn tls_publishes_its_port_mounts_the_pki_and_changes_the_fingerprint() {
        let plain = spec(false);
        let src = Sources {
            cwd: "/home/u/p".into(),
            uid: 1000,
            gid: 1000,
            ..Default::default()
        };
        let flags = GlobalArgs {
            instance: Some("dev02".into()),
            ssh_port: Some(2223),
            libvirt_tls_port: Some(16600),
            ..Default::default()
        };
        let mut s = Settings::resolve(&flags, &src).unwrap();
        s.tls = true;
        let tls = Spec::new(&s, "boxvirt/nested-host:debian", "sha256:1", false);
        assert_ne!(tls.fingerprint(), plain.fingerprint());
        // Without TLS the fingerprint has no trace of it (no recreate on upgrade).
        assert!(!serde_json::to_string(&plain).unwrap().contains("tls"));
        let body = tls.body();
        assert!(body.env.unwrap().contains(&"BOXVIRT_TLS=1".to_string()));
        assert_eq!(body.labels.unwrap()[LABEL_TLS], "1");
        let host = body.host_config.unwrap();
        let b = host.port_bindings.unwrap()["16514/tcp"].clone().unwrap();
        assert_eq!(
            (b[0].host_ip.as_deref(), b[0].host_port.as_deref()),
            (Some("127.0.0.1"), Some("16600"))
        );
        let mounts = host.mounts.unwrap();
        let pki = mounts
            .iter()
            .find(|m| m.target.as_deref() == Some("/etc/pki/libvirt"))
            .unwrap();
        assert_eq!(
            pki.source.as_deref(),
            Some("/home/u/p/data/pki/server/libvirt")
        );
        assert_eq!(pki.read_only, Some(true));
        s.listen = Some("0.0.0.0".parse().unwrap());
        let open = Spec::new(&s, "boxvirt/nested-host:debian", "sha256:1", false);
        assert_ne!(open.fingerprint(), tls.fingerprint());
    }

    #[test]
    fn privileged_switches_off_the_capability_list_and_changes_the_fingerprint() {
        let host = spec(true).body().host_config.unwrap();
        assert_eq!(host.privileged, Some(true));
        assert!(host.cap_add.is_none());
        assert_ne!(spec(true).fingerprint(), spec(false).fingerprint());
        assert_eq!(spec(false).fingerprint(), spec(false).fingerprint());
    }

    #[test]
    fn hardened_body_is_read_only_confined_limited_and_labelled() {
        let profile = Profile {
            hardened: true,
            limits: hardening::Limits::resolve(None, None, None, true).unwrap(),
            ..Default::default()
        };
        let spec = spec(false).with_profile(profile);
        let body = spec.body();
        let host = body.host_config.clone().unwrap();
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.cap_add, Some(vec!["NET_ADMIN".to_string()]));
        assert!(host.security_opt.unwrap()[0].starts_with("seccomp={"));
        assert!(host
            .masked_paths
            .unwrap()
            .contains(&"/proc/kcore".to_string()));
        assert!(host
            .readonly_paths
            .unwrap()
            .contains(&"/proc/sys/kernel".to_string()));
        assert_eq!(host.memory, Some(4096 * 1024 * 1024));
        assert_eq!(host.pids_limit, Some(4096));
        let mounts = host.mounts.unwrap();
        let auth = mounts
            .iter()
            .find(|m| m.target.as_deref() == Some("/data/auth"))
            .unwrap();
        assert_eq!(auth.read_only, Some(true));
        assert!(host.tmpfs.unwrap().contains_key("/run"));
        assert!(body
            .env
            .unwrap()
            .contains(&"BOXVIRT_HARDENED=1".to_string()));
        assert_eq!(body.labels.unwrap()[hardening::LABEL_HARDENED], "1");
        assert_ne!(spec.fingerprint(), spec_default_fingerprint());
    }

    #[test]
    fn a_new_sasl_password_means_a_new_container() {
        let with = |c: &str| {
            spec(false).with_profile(Profile {
                hardened: true,
                credential: Some(c.into()),
                ..Default::default()
            })
        };
        assert_ne!(with("a").fingerprint(), with("b").fingerprint());
        assert_eq!(with("a").fingerprint(), with("a").fingerprint());
    }

    fn spec_default_fingerprint() -> String {
        spec(false).fingerprint()
    }

    #[test]
    fn the_default_profile_keeps_its_fingerprint_format() {
        // No "profile" key: containers made before profiles stay "as asked".
        let json = serde_json::to_string(&spec(false)).unwrap();
        assert!(!json.contains("profile"), "{json}");
    }
}
