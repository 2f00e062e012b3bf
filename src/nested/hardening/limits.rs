//! Guideline 6: memory, CPUs and pids of the container (`up --memory SIZE
//! --cpus N --pids-limit N`), with defaults under --hardened, and whether a
//! new VM still fits the container's memory.

use bollard::models::HostConfig;
use serde::Serialize;

use crate::error::{Failure, Result};

const MIB: u64 = 1024 * 1024;
/// Defaults under --hardened (README, "Hardened host").
pub const DEFAULT_MEMORY: u64 = 4096 * MIB;
/// At most this machine's CPUs.
pub const DEFAULT_CPUS: f64 = 2.0;
pub const DEFAULT_PIDS: i64 = 4096;
/// libvirtd, virtlogd, sshd, dnsmasq and supervisord together: about 100 MiB
/// RSS measured (libvirtd 37, supervisord 30, virtlogd 18, sshd 7, dnsmasq
/// 5), with headroom for libvirtd at work.
pub const DAEMONS_MIB: u64 = 256;
/// What a QEMU process needs beyond its guest's RAM (device emulation, TCG's
/// code cache): the tiny guest's QEMU (256 MiB RAM, TCG) had 271 MiB RSS
/// right after boot with most of its RAM untouched; with headroom.
pub const QEMU_OVERHEAD_MIB: u64 = 192;
/// The smallest guest (the tiny template).
pub const SMALLEST_VM_MIB: u64 = 256;

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Limits {
    pub memory: Option<u64>,
    pub cpus: Option<f64>,
    pub pids: Option<i64>,
}

/// The least `--memory` that holds the daemons and one smallest VM.
pub fn min_memory_mib() -> u64 {
    DAEMONS_MIB + SMALLEST_VM_MIB + QEMU_OVERHEAD_MIB
}

impl Limits {
    /// From the flags (strings as typed), with the --hardened defaults for
    /// what was not given. Refuses a memory too small for one VM.
    pub fn resolve(
        memory: Option<&str>,
        cpus: Option<f64>,
        pids: Option<i64>,
        hardened: bool,
    ) -> Result<Limits> {
        let memory = memory.map(parse_size).transpose()?;
        if let Some(m) = memory {
            if m / MIB < min_memory_mib() {
                return Err(Failure::usage(format!(
                    "--memory {} is below what libvirtd and one VM need ({} MiB: {DAEMONS_MIB} for the daemons, {SMALLEST_VM_MIB} for the smallest guest, {QEMU_OVERHEAD_MIB} for its QEMU); pass --memory {}m or more",
                    m / MIB,
                    min_memory_mib(),
                    min_memory_mib()
                )));
            }
        }
        let host = host_cpus();
        if let Some(c) = cpus {
            if !(c >= 0.01 && c <= host) {
                return Err(Failure::usage(format!(
                    "--cpus {c} is out of range: this machine has {host} CPUs; use 0.01 to {host}, e.g. --cpus 1 or --cpus 0.5"
                )));
            }
        }
        if let Some(p) = pids {
            if p < 64 {
                return Err(Failure::usage(format!(
                    "--pids-limit {p} is too small for libvirtd and QEMU's threads; use 64 or more (default under --hardened: {DEFAULT_PIDS})"
                )));
            }
        }
        Ok(Limits {
            memory: or_default(memory, DEFAULT_MEMORY, hardened),
            // Docker refuses more CPUs than the machine has.
            cpus: or_default(cpus, DEFAULT_CPUS.min(host), hardened),
            pids: or_default(pids, DEFAULT_PIDS, hardened),
        })
    }

    pub fn apply(&self, host: &mut HostConfig) {
        if let Some(m) = self.memory {
            host.memory = Some(m as i64);
            // No swap beyond the limit: a VM that does not fit is refused
            // up front instead of paging slowly.
            host.memory_swap = Some(m as i64);
        }
        if let Some(c) = self.cpus {
            host.nano_cpus = Some((c * 1e9) as i64);
        }
        if let Some(p) = self.pids {
            host.pids_limit = Some(p);
        }
    }
}

/// The --hardened default for a limit that was not given.
fn or_default<T>(given: Option<T>, default: T, hardened: bool) -> Option<T> {
    if hardened {
        given.or(Some(default))
    } else {
        given
    }
}

/// CPUs of this machine (Docker's bound for --cpus).
fn host_cpus() -> f64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as f64)
        .unwrap_or(1.0)
}

/// "4g", "4096m", "512M", "1073741824" (bytes) -> bytes.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t).to_string();
    let (num, unit) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1024),
        Some('m') => (&t[..t.len() - 1], MIB),
        Some('g') => (&t[..t.len() - 1], 1024 * MIB),
        Some('t') => (&t[..t.len() - 1], 1024 * 1024 * MIB),
        _ => (t.as_str(), 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| {
            Failure::usage(format!(
                "--memory {s:?} is not a size; use e.g. 4g or 2048m"
            ))
        })
}

/// Refuses a new VM of `new_mib` when, with the `existing` VMs' memory, it
/// would not fit a container limited to `limit` bytes (the kernel would
/// OOM-kill a QEMU instead).
pub fn check_fit(limit: u64, existing_mib: &[u64], new_mib: u64, name: &str) -> Result<()> {
    let need = |m: &u64| m + QEMU_OVERHEAD_MIB;
    let used: u64 = DAEMONS_MIB + existing_mib.iter().map(need).sum::<u64>();
    let limit_mib = limit / MIB;
    if used + need(&new_mib) > limit_mib {
        return Err(Failure::conflict(format!(
            "vm '{name}' ({new_mib} MiB) does not fit the nested host's memory limit of {limit_mib} MiB: {used} MiB are taken by the daemons and {} VM(s), each VM needs its memory plus {QEMU_OVERHEAD_MIB} MiB; pass a smaller --memory, remove a VM, or 'boxvirt up --memory SIZE' with more",
            existing_mib.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("4g").unwrap(), 4096 * MIB);
        assert_eq!(parse_size("2048M").unwrap(), 2048 * MIB);
        assert_eq!(parse_size("512mb").unwrap(), 512 * MIB);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn memory_below_one_vm_is_refused_and_defaults_only_under_hardened() {
        let e = Limits::resolve(Some("256m"), None, None, true).unwrap_err();
        assert_eq!(e.exit, crate::error::Exit::Usage);
        assert!(e.message.contains("--memory 256"), "{}", e.message);
        let plain = Limits::resolve(None, None, None, false).unwrap();
        assert_eq!(plain, Limits::default());
        let hard = Limits::resolve(None, None, None, true).unwrap();
        assert_eq!(hard.memory, Some(DEFAULT_MEMORY));
        assert_eq!(hard.pids, Some(DEFAULT_PIDS));
        assert!(Limits::resolve(None, Some(0.0), None, false).is_err());
        let too_many = Limits::resolve(None, Some(100_000.0), None, false).unwrap_err();
        assert!(
            too_many.message.contains("this machine has"),
            "{}",
            too_many.message
        );
        assert!(Limits::resolve(None, None, Some(3), false).is_err());
    }

    #[test]
    fn a_vm_that_does_not_fit_is_a_conflict() {
        let limit = 1024 * MIB;
        check_fit(limit, &[], 256, "a").unwrap();
        let e = check_fit(limit, &[256], 512, "b").unwrap_err();
        assert_eq!(e.exit, crate::error::Exit::Conflict);
        assert!(e.message.contains("vm 'b' (512 MiB)"), "{}", e.message);
    }
}
