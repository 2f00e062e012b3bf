//! VM creation and the decisions it needs (accelerator, name, MAC), built on
//! `libvirt/` and `template/`. `commands/vm.rs` maps the CLI onto this.

pub mod accel;
pub mod address;
mod address_steps;
mod apply;
pub mod check;
pub mod cloud_init_result;
pub mod console;
pub mod create;
pub mod identity;
pub mod leftovers;
pub mod metadata;
pub mod nic_addresses;
pub mod nics;
pub mod plan;
pub mod reach;
pub mod ready;
pub mod rename;
pub mod request;
pub mod rollback;
pub mod seed;
pub mod slot_claim;
pub mod slots;
pub mod ssh_config;
pub mod start_gate;
pub mod steps;
