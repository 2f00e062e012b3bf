//! Probes of this machine's kernel: /dev/kvm and what kind of KVM it is, and
//! the devices QEMU networking needs. Used by `doctor` and to pick the
//! accelerator when libvirtd runs on this kernel (a local socket, including
//! the nested host's container, which shares the kernel).

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::path::Path;

use serde::Serialize;

/// `_IO(KVMIO, 0x00)` and `_IO(KVMIO, 0x01)` from <linux/kvm.h>.
const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00;
const KVM_CREATE_VM: libc::c_ulong = 0xAE01;
/// The only KVM API version Linux has ever shipped.
pub const KVM_API_VERSION: i32 = 12;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KvmProbe {
    pub exists: bool,
    pub read_write: bool,
    pub api_version: Option<i32>,
    pub can_create_vm: bool,
    /// Why the probe stopped, when it did.
    pub problem: Option<String>,
}

impl KvmProbe {
    pub fn usable(&self) -> bool {
        self.can_create_vm && self.api_version == Some(KVM_API_VERSION)
    }
}

/// Opens the device, asks the API version and creates (then drops) a VM.
pub fn probe_kvm(path: &Path) -> KvmProbe {
    let mut probe = KvmProbe {
        exists: path.exists(),
        read_write: false,
        api_version: None,
        can_create_vm: false,
        problem: None,
    };
    if !probe.exists {
        probe.problem = Some(format!("{} does not exist", path.display()));
        return probe;
    }
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) => {
            probe.problem = Some(format!("cannot open {} read-write: {e}", path.display()));
            return probe;
        }
    };
    probe.read_write = true;
    let fd = file.as_raw_fd();
    // SAFETY: both ioctls take no argument pointer; fd is open for the call.
    let version = unsafe { libc::ioctl(fd, KVM_GET_API_VERSION as _, 0) };
    if version < 0 {
        probe.problem = Some(format!(
            "KVM_GET_API_VERSION failed: {}",
            std::io::Error::last_os_error()
        ));
        return probe;
    }
    probe.api_version = Some(version);
    // SAFETY: as above; the returned descriptor is closed right away.
    let vm = unsafe { libc::ioctl(fd, KVM_CREATE_VM as _, 0) };
    if vm < 0 {
        probe.problem = Some(format!(
            "KVM_CREATE_VM failed: {}",
            std::io::Error::last_os_error()
        ));
        return probe;
    }
    // SAFETY: vm is a descriptor we own and close once.
    unsafe { libc::close(vm) };
    probe.can_create_vm = true;
    probe
}

/// What kind of virtualization the kernel offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VirtKind {
    /// VT-x (vmx) or AMD-V (svm): KVM guests run.
    Hardware,
    /// Pagetable-based VM (kvm_pvm): /dev/kvm works, stock guest kernels do not boot.
    Pvm,
    None,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CpuVirt {
    pub kind: VirtKind,
    /// "vmx", "svm", "kvm_pvm" or "none".
    pub detail: String,
    /// kvm_intel/kvm_amd `nested` parameter, when the module is loaded.
    pub nested: Option<(String, String)>,
}

pub fn cpu_virt() -> CpuVirt {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    classify(&cpuinfo, Path::new("/sys/module"))
}

fn classify(cpuinfo: &str, sys_module: &Path) -> CpuVirt {
    let flags = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .unwrap_or("");
    let has = |f: &str| flags.split_whitespace().any(|w| w == f);
    let nested = ["kvm_intel", "kvm_amd"].iter().find_map(|m| {
        std::fs::read_to_string(sys_module.join(m).join("parameters/nested"))
            .ok()
            .map(|v| (m.to_string(), v.trim().to_string()))
    });
    let (kind, detail) = if sys_module.join("kvm_pvm").exists() {
        (VirtKind::Pvm, "kvm_pvm".to_string())
    } else if has("vmx") {
        (VirtKind::Hardware, "vmx".to_string())
    } else if has("svm") {
        (VirtKind::Hardware, "svm".to_string())
    } else {
        (VirtKind::None, "none".to_string())
    };
    CpuVirt {
        kind,
        detail,
        nested,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceAccess {
    Missing,
    NoAccess,
    ReadWrite,
}

pub fn device_access(path: &Path) -> DeviceAccess {
    if !path.exists() {
        return DeviceAccess::Missing;
    }
    match OpenOptions::new().read(true).write(true).open(path) {
        Ok(_) => DeviceAccess::ReadWrite,
        Err(_) => DeviceAccess::NoAccess,
    }
}

/// Whether a guest of type `kvm` can really run on this kernel, and why not.
pub fn kvm_guest_verdict(kvm: &KvmProbe, cpu: &CpuVirt) -> Result<(), String> {
    if !kvm.usable() {
        return Err(kvm
            .problem
            .clone()
            .unwrap_or_else(|| "/dev/kvm is not usable".to_string()));
    }
    match cpu.kind {
        VirtKind::Hardware => Ok(()),
        VirtKind::Pvm => {
            Err("KVM here is PVM (kvm_pvm): stock guest kernels do not boot under it".to_string())
        }
        VirtKind::None => Err("the CPU shows no vmx/svm flag".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_hardware_pvm_and_none() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path();
        assert_eq!(classify("flags\t: fpu vmx sse", m).kind, VirtKind::Hardware);
        assert_eq!(classify("flags\t: fpu svm", m).detail, "svm");
        assert_eq!(classify("flags\t: fpu sse", m).kind, VirtKind::None);
        std::fs::create_dir_all(m.join("kvm_intel/parameters")).unwrap();
        std::fs::write(m.join("kvm_intel/parameters/nested"), "Y\n").unwrap();
        assert_eq!(
            classify("flags: vmx", m).nested,
            Some(("kvm_intel".into(), "Y".into()))
        );
        std::fs::create_dir_all(m.join("kvm_pvm")).unwrap();
        assert_eq!(classify("flags: vmx", m).kind, VirtKind::Pvm);
    }

    #[test]
    fn missing_device_is_reported() {
        let p = probe_kvm(Path::new("/nonexistent/kvm"));
        assert!(!p.exists && !p.usable());
        assert!(p.problem.unwrap().contains("does not exist"));
        assert_eq!(
            device_access(Path::new("/nonexistent/tun")),
            DeviceAccess::Missing
        );
    }

    #[test]
    fn pvm_is_not_a_kvm_guest_host() {
        let ok = KvmProbe {
            exists: true,
            read_write: true,
            api_version: Some(12),
            can_create_vm: true,
            problem: None,
        };
        let pvm = CpuVirt {
            kind: VirtKind::Pvm,
            detail: "kvm_pvm".into(),
            nested: None,
        };
        assert!(kvm_guest_verdict(&ok, &pvm).unwrap_err().contains("PVM"));
        let hw = CpuVirt {
            kind: VirtKind::Hardware,
            detail: "vmx".into(),
            nested: None,
        };
        assert!(kvm_guest_verdict(&ok, &hw).is_ok());
    }
}
