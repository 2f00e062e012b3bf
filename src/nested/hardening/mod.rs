//! `up --hardened`: the README's eight hardening guidelines made real, and
//! the report of which of them an instance has (`status`, `doctor`).
//!
//! - `caps`: the minimal capability list (guideline 1)
//! - `credentials`: the SASL user's password and libvirt auth.conf (2)
//! - `rootfs`: read-only root with tmpfs mounts, narrower /proc (4, 5)
//! - `seccomp`: the embedded seccomp profile (5)
//! - `apparmor`: the embedded AppArmor profile, loaded where the kernel has AppArmor (5)
//! - `limits`: memory / CPUs / pids of the container, and what fits (6)
//! - `fit`: `vm create` / `doctor` against the container's memory (6)
//! - `report`: one row per guideline (1-8)
//! - `switch`: what changes when an instance switches profile

pub mod apparmor;
pub mod caps;
pub mod credentials;
pub mod fit;
pub mod limits;
pub mod report;
pub mod rootfs;
pub mod seccomp;
pub mod switch;

use bollard::models::HostConfig;
use serde::Serialize;

pub use limits::Limits;

/// Container label: "1" when the container runs the hardened profile.
pub const LABEL_HARDENED: &str = "io.boxvirt.hardened";
/// Container label the TLS side sets ("1") when libvirtd listens on TLS.
pub const LABEL_TLS: &str = "boxvirt.tls";
/// Container env the entrypoint reads (docker/hardened.sh).
pub const ENV_HARDENED: &str = "BOXVIRT_HARDENED=1";

/// How the container is hardened beyond the default profile. The default
/// value is the default profile, which stays exactly as it was.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Profile {
    pub hardened: bool,
    pub limits: Limits,
    /// sha256 of the SASL password (hardened): a new password (the file
    /// removed, `up` made another) means a new container, whose entrypoint
    /// sets it in libvirtd's sasldb.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// The AppArmor profile (hardened, on a kernel with AppArmor), loaded
    /// by `prepare_host_side`; None elsewhere, which keeps fingerprints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apparmor: Option<String>,
}

impl Profile {
    pub fn is_default(&self) -> bool {
        *self == Profile::default()
    }

    /// Everything of the hardened profile that lives in the host config;
    /// the binds and env are added by `container::Spec`.
    pub fn apply(&self, host: &mut HostConfig) {
        self.limits.apply(host);
        if !self.hardened {
            return;
        }
        host.cap_add = Some(caps::HARDENED.iter().map(|c| c.to_string()).collect());
        // "apparmor=..." only where the kernel has AppArmor: elsewhere it
        // would mean nothing (report row 5 says so).
        let mut opts = vec![seccomp::security_opt()];
        opts.extend(self.apparmor.as_deref().map(apparmor::security_opt));
        host.security_opt = Some(opts);
        rootfs::apply(host);
    }
}

/// The profile `up` asks for: --hardened (or BOXVIRT_HARDENED) and the
/// limit flags, checked before anything starts.
pub fn for_up(
    settings: &crate::settings::Settings,
    hardened_flag: bool,
    privileged: bool,
    memory: Option<&str>,
    cpus: Option<f64>,
    pids: Option<i64>,
) -> crate::error::Result<Profile> {
    let hardened = hardened_flag || settings.hardened;
    if hardened && privileged {
        return Err(crate::error::Failure::usage(
            "--hardened and --privileged contradict each other; drop --privileged",
        ));
    }
    Ok(Profile {
        hardened,
        limits: Limits::resolve(memory, cpus, pids, hardened)?,
        credential: None,
        apparmor: None,
    })
}

/// Host-side files of the profile, before the container is created: the
/// AppArmor profile loaded (kernels with AppArmor) and the SASL credential
/// under --hardened (its hash goes into the profile).
/// Credential files that exist are checked (owner, mode) in either profile.
pub fn prepare_host_side(
    settings: &crate::settings::Settings,
    profile: &mut Profile,
) -> crate::error::Result<()> {
    use sha2::{Digest, Sha256};
    if profile.hardened {
        profile.apparmor = apparmor::prepare(settings, settings.host_uid, settings.host_gid)?;
        let password =
            credentials::ensure(&settings.data_dir, settings.host_uid, settings.host_gid)?;
        profile.credential = Some(hex::encode(Sha256::digest(password.as_bytes())));
    } else {
        credentials::check(&settings.data_dir, settings.host_uid)?;
    }
    credentials::register(settings)
}
