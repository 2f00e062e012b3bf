//! boxvirt: disposable libvirt/KVM infrastructure on a developer's machine.

pub mod cli;
pub mod error;
pub mod libvirt;
pub mod names;
pub mod settings;
pub mod template;
pub mod xml;
