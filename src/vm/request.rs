//! What `vm create` is asked for ([`Request`]) and what it answers
//! ([`Created`]); `env apply` fills the same request per VM.

use serde::Serialize;

use super::nics::NicOut;
use crate::cli::Accel;
use crate::cloudinit;
use crate::error::Result;

#[derive(Debug, Clone, Default)]
pub struct Request {
    pub template: String,
    pub name: Option<String>,
    /// The guest's hostname when it is not the VM's name (a VM made under
    /// a temporary name to replace another, `env apply --replace`).
    pub hostname: Option<String>,
    pub memory_mib: Option<u64>,
    pub vcpus: Option<u32>,
    pub disk_gib: Option<u64>,
    /// One NIC per network, the first the primary; empty: the template's.
    pub networks: Vec<String>,
    pub accel: Option<Accel>,
    pub sets: Vec<(String, String)>,
    pub start: bool,
    /// Base image (catalogue name, URL or pulled name); default: the template's.
    pub image: Option<String>,
    /// An empty disk instead of a clone of the base image.
    pub blank_disk: bool,
    /// Copy the base image instead of a qcow2 overlay.
    pub full_clone: bool,
    /// Leave out the cloud-init seed even when the template wants one.
    pub no_seed: bool,
    /// Make no DHCP reservation.
    pub no_reserve: bool,
    /// The instance's own key, made (when missing) only once every check
    /// passed, so bad input leaves no key behind. Its public half comes
    /// first in the login user's keys.
    pub instance_key: Option<InstanceKey>,
    /// More public keys for the login user (`--ssh-key` files).
    pub authorized_keys: Vec<String>,
    /// Contents of `--user-data FILE`.
    pub user_data: Option<String>,
    /// Test hook (CLI: `BOXVIRT_INJECT_FAILURE=[signal:|abort:]<step>`), a [`STEPS`](super::steps::STEPS) name.
    pub fail_after: Option<String>,
    /// The environment that makes this VM (`env apply`), kept in its metadata.
    pub env_mark: Option<crate::env::mark::EnvMark>,
    /// Told each step as it finishes (`env apply` shows it per VM).
    pub on_step: Option<OnStep>,
    /// The environment's values (image cache, downloads) from Settings.
    pub process_env: crate::settings::ProcessEnv,
    /// Shared by creates running together on one host (`env apply`): their
    /// preparations and their starts take turns (see start_gate.rs).
    pub gate: Option<std::sync::Arc<super::start_gate::StartGate>>,
}

/// A callback for finished steps (a [`STEPS`](super::steps::STEPS) name); shared with the
/// progress display of another thread.
#[derive(Clone)]
pub struct OnStep(pub std::sync::Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for OnStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnStep")
    }
}

/// Where the instance's SSH key lives and whom it belongs to.
#[derive(Debug, Clone)]
pub struct InstanceKey {
    pub path: std::path::PathBuf,
    pub comment: String,
    pub uid: u32,
    pub gid: u32,
}

impl InstanceKey {
    /// Makes the key when missing and returns its public line(s).
    pub(super) fn public_keys(&self) -> Result<Vec<String>> {
        crate::nested::ssh_keys::ensure_client_key(&self.path, &self.comment, self.uid, self.gid)?;
        cloudinit::read_authorized_keys_file(&self.path.with_extension("pub"))
    }
}

/// What was made (`vm create -o json`).
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    pub name: String,
    pub template: String,
    pub domain_type: String,
    /// The primary NIC's MAC, network and address.
    pub mac: Option<String>,
    pub network: Option<String>,
    pub ip: Option<String>,
    /// Every NIC, the primary first.
    pub nics: Vec<NicOut>,
    pub volumes: Vec<String>,
    pub base_image: Option<String>,
    pub user: Option<String>,
    pub started: bool,
}
