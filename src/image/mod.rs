//! Cloud images: a catalogue of distributions' images, downloads verified
//! against their published checksums and cached by digest, and base volumes
//! made from them in a libvirt pool through a stream. `commands/image.rs`
//! maps the CLI onto this; `vm create` calls [`ensure_base_volume`].

pub mod base;
pub mod build;
pub mod cache;
pub mod catalog;
pub mod checksum;
pub mod detect;
pub mod download;
pub mod import;
pub mod kernel;
pub mod pull;
pub mod qcow2;

pub use base::{ensure_base_volume, BaseVolume, BASE_POOL};
pub use pull::{preflight, pull, PullOptions, Pulled};
