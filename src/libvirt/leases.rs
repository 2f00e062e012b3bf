//! DHCP leases of a network. The `virt` crate does not wrap
//! virNetworkGetDHCPLeases, so this is the one raw call, kept small.

use std::ffi::{CStr, CString};
use std::os::raw::c_char;

use serde::Serialize;
use virt::error::Error as VirtError;
use virt::sys;

use super::errors::failure;
use super::Libvirt;
use crate::error::{Failure, Result};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Lease {
    pub mac: String,
    pub ip: String,
    pub prefix: u32,
    pub hostname: Option<String>,
    /// Seconds since the epoch.
    pub expiry: i64,
}

fn text(ptr: *const c_char) -> Option<String> {
    if ptr.is_null() {
        None
    } else {
        // SAFETY: libvirt hands out NUL-terminated strings that live until the lease is freed.
        Some(
            unsafe { CStr::from_ptr(ptr) }
                .to_string_lossy()
                .into_owned(),
        )
    }
}

impl Libvirt {
    /// Current leases of `network`, optionally only those of one MAC.
    pub fn dhcp_leases(&self, network: &str, mac: Option<&str>) -> Result<Vec<Lease>> {
        let net = self.existing_network(network)?;
        let mac_c = mac
            .map(CString::new)
            .transpose()
            .map_err(|_| Failure::usage("a MAC address must not contain NUL"))?;
        let mut array: *mut sys::virNetworkDHCPLeasePtr = std::ptr::null_mut();
        // SAFETY: `net` outlives the call; `array` receives a libvirt-allocated
        // array of `n` leases, each freed below with virNetworkDHCPLeaseFree and
        // the array itself with free(), as the API documents.
        let n = unsafe {
            sys::virNetworkGetDHCPLeases(
                net.as_ptr(),
                mac_c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
                &mut array,
                0,
            )
        };
        if n < 0 {
            return Err(failure(
                VirtError::last_error(),
                &format!("reading DHCP leases of network '{network}'"),
            ));
        }
        let mut leases = Vec::with_capacity(n as usize);
        for i in 0..n as usize {
            // SAFETY: i < n entries, each a valid lease pointer.
            unsafe {
                let lease = *array.add(i);
                let l = &*lease;
                leases.push(Lease {
                    mac: text(l.mac).unwrap_or_default().to_ascii_lowercase(),
                    ip: text(l.ipaddr).unwrap_or_default(),
                    prefix: l.prefix,
                    hostname: text(l.hostname),
                    expiry: l.expirytime,
                });
                sys::virNetworkDHCPLeaseFree(lease);
            }
        }
        if !array.is_null() {
            // SAFETY: the array was allocated by libvirt with malloc.
            unsafe { libc::free(array as *mut libc::c_void) };
        }
        Ok(leases)
    }
}
