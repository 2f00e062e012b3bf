//! The nested libvirt host: the only place that talks to Docker (bollard).
//!
//! - `docker`: the engine connection (and its one-line errors)
//! - `build_context`, `image`: the embedded docker/ assets and the image build
//! - `image_builder`: `image build` recipes in a throwaway container
//! - `container`: the runtime contract (binds, caps, devices, port) and lifecycle
//! - `hardening`: `up --hardened` (the eight guidelines) and their report
//! - `ssh_keys`, `ssh_config`: client key, pinned host key, boxman.conf, link
//! - `lock`: one boxvirt at a time changes an instance (flock in the data dir)
//! - `ports`: is the SSH port free, and who holds it
//! - `socket_link`: the short link to a socket path too long for a unix address
//! - `status`: the `status` report
//! - `tls`, `tls_certs`: libvirt over TLS: the PKI in the data dir, its certificates
//! - `cleanup`: volumes, pruning, emptying a data dir through a container

pub mod build_context;
pub mod cleanup;
pub mod container;
pub mod docker;
pub mod hardening;
pub mod image;
pub mod image_builder;
pub mod lock;
pub mod ports;
pub mod socket_link;
pub mod ssh_config;
pub mod ssh_keys;
pub mod status;
pub mod tls;
pub mod tls_certs;

pub use container::{ContainerInfo, Spec, Stopped};
pub use docker::Engine;

/// Container label: the instance the container belongs to.
pub const LABEL_INSTANCE: &str = "io.boxvirt.instance";
/// Container label: hash of the create body (see `Spec::fingerprint`).
pub const LABEL_CONFIG: &str = "io.boxvirt.config";
/// Container label: the absolute data dir (for humans and `clean`).
pub const LABEL_DATA_DIR: &str = "io.boxvirt.data-dir";
/// Image label: sha256 of the docker/ assets it was built from.
pub const LABEL_ASSETS: &str = "io.boxvirt.assets";
/// Image label: debian | rocky9.
pub const LABEL_BASE: &str = "io.boxvirt.base";
