//! The only place that talks to libvirt (the `virt` crate, libvirt's C API).
//! Everything here works against any URI: the nested host's socket,
//! qemu+ssh, a real host, or the test driver.

mod connection;
mod console;
mod dhcp;
mod domains;
mod errors;
mod host;
mod leases;
mod networks;
mod node;
mod race;
mod sasl;
mod slot_claims;
mod storage;
mod volume_upload;

pub use connection::Libvirt;
pub use console::Console;
pub use domains::{DomainDetails, DomainState, DomainSummary, METADATA_URI};
pub use host::{DomainCaps, HostCaps};
pub use leases::Lease;
pub use networks::{NetworkChange, NetworkSummary};
pub use node::NodeMemory;
pub use sasl::register_credential;
pub use slot_claims::SettledDomains;
pub use storage::{PoolChange, PoolSummary, VolumeSummary};
pub use volume_upload::HEAD_LEN as UPLOAD_HEAD_LEN;
