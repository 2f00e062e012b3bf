//! Which accelerator a new VM uses: `kvm` only where a KVM guest can really
//! run, else `qemu` (TCG) with a visible warning; `--accel` overrides.

use crate::cli::Accel;
use crate::error::{Failure, Result};
use crate::hostcheck;
use crate::libvirt::{HostCaps, Libvirt};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The domain `type` to write (`kvm`, `qemu`, or `test` on the test driver).
    pub domain_type: String,
    /// Why boxvirt fell back to TCG (printed as a warning).
    pub warning: Option<String>,
}

/// What is known about KVM where libvirtd runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvmEvidence {
    /// This kernel (local socket): the probe's verdict.
    Local(Result<(), String>),
    /// A remote host: whether libvirt reports vmx/svm CPU features.
    Remote { hardware_flags: bool },
}

pub fn evidence(conn: &Libvirt, cpu_features: &[String]) -> KvmEvidence {
    if conn.is_local() {
        let kvm = hostcheck::probe_kvm(std::path::Path::new("/dev/kvm"));
        KvmEvidence::Local(hostcheck::kvm_guest_verdict(&kvm, &hostcheck::cpu_virt()))
    } else {
        KvmEvidence::Remote {
            hardware_flags: cpu_features.iter().any(|f| f == "vmx" || f == "svm"),
        }
    }
}

/// Pure decision, so every branch is unit-tested.
pub fn decide(
    uri: &str,
    offered: &[String],
    kvm_domcaps_ok: bool,
    evidence: &KvmEvidence,
    requested: Option<Accel>,
) -> Result<Choice> {
    let offers = |t: &str| offered.iter().any(|o| o == t);
    if !offers("kvm") && !offers("qemu") {
        if offers("test") {
            return Ok(Choice {
                domain_type: "test".into(),
                warning: None,
            });
        }
        return Err(Failure::failed(format!(
            "libvirt at {uri} offers neither kvm nor qemu guests (offered: {}); install QEMU there",
            offered.join(", ")
        )));
    }
    let tcg = |why: String| Choice {
        domain_type: "qemu".into(),
        warning: Some(format!(
            "{why}; using qemu (TCG software emulation, much slower); pass --accel kvm to override"
        )),
    };
    match requested {
        Some(Accel::Qemu) => Ok(Choice {
            domain_type: "qemu".into(),
            warning: None,
        }),
        Some(Accel::Kvm) => {
            if !offers("kvm") || !kvm_domcaps_ok {
                return Err(Failure::usage(format!(
                    "libvirt at {uri} cannot run kvm guests; use --accel qemu"
                )));
            }
            let warning = match evidence {
                KvmEvidence::Local(Err(why)) => {
                    Some(format!("--accel kvm requested although {why}"))
                }
                _ => None,
            };
            Ok(Choice {
                domain_type: "kvm".into(),
                warning,
            })
        }
        None => {
            if !offers("kvm") || !kvm_domcaps_ok {
                return Ok(tcg(format!(
                    "libvirt at {uri} offers no usable kvm domain type"
                )));
            }
            match evidence {
                KvmEvidence::Local(Ok(()))
                | KvmEvidence::Remote {
                    hardware_flags: true,
                } => Ok(Choice {
                    domain_type: "kvm".into(),
                    warning: None,
                }),
                KvmEvidence::Local(Err(why)) => Ok(tcg(why.clone())),
                KvmEvidence::Remote {
                    hardware_flags: false,
                } => Ok(tcg(
                    "cannot tell whether kvm guests run on the remote host (no vmx/svm reported)"
                        .into(),
                )),
            }
        }
    }
}

/// Reads what is needed from libvirt and decides.
pub fn choose(conn: &Libvirt, requested: Option<Accel>) -> Result<Choice> {
    let caps = conn.host_caps()?;
    // Domain capabilities are a large reply: not needed when qemu is asked for.
    let kvm_ok =
        requested != Some(Accel::Qemu) && caps.offers("kvm") && conn.domain_caps("kvm").supported;
    choose_with(conn, &caps, kvm_ok, requested)
}

/// The same, with capabilities the caller already read (doctor reads them
/// for its own rows; domain capabilities are a large reply).
pub fn choose_with(
    conn: &Libvirt,
    caps: &HostCaps,
    kvm_ok: bool,
    requested: Option<Accel>,
) -> Result<Choice> {
    let ev = if kvm_ok {
        evidence(conn, &caps.cpu_features)
    } else {
        KvmEvidence::Remote {
            hardware_flags: false,
        }
    };
    decide(conn.uri(), &caps.domain_types, kvm_ok, &ev, requested)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn kvm_only_with_evidence() {
        let both = offered(&["kvm", "qemu"]);
        let c = decide("u", &both, true, &KvmEvidence::Local(Ok(())), None).unwrap();
        assert_eq!((c.domain_type.as_str(), c.warning), ("kvm", None));
        let c = decide(
            "u",
            &both,
            true,
            &KvmEvidence::Local(Err("KVM here is PVM".into())),
            None,
        )
        .unwrap();
        assert_eq!(c.domain_type, "qemu");
        assert!(c.warning.unwrap().contains("PVM"));
        let c = decide(
            "u",
            &both,
            true,
            &KvmEvidence::Remote {
                hardware_flags: false,
            },
            None,
        )
        .unwrap();
        assert_eq!(c.domain_type, "qemu");
        let c = decide(
            "u",
            &offered(&["qemu"]),
            false,
            &KvmEvidence::Local(Ok(())),
            None,
        )
        .unwrap();
        assert_eq!(c.domain_type, "qemu");
    }

    #[test]
    fn overrides_and_test_driver() {
        let both = offered(&["kvm", "qemu"]);
        let c = decide(
            "u",
            &both,
            true,
            &KvmEvidence::Local(Err("PVM".into())),
            Some(Accel::Kvm),
        )
        .unwrap();
        assert_eq!(c.domain_type, "kvm");
        assert!(c.warning.is_some());
        assert_eq!(
            decide(
                "u",
                &offered(&["qemu"]),
                false,
                &KvmEvidence::Local(Ok(())),
                Some(Accel::Kvm)
            )
            .unwrap_err()
            .exit,
            crate::error::Exit::Usage
        );
        assert_eq!(
            decide(
                "u",
                &offered(&["test"]),
                false,
                &KvmEvidence::Local(Ok(())),
                None
            )
            .unwrap()
            .domain_type,
            "test"
        );
        assert!(decide(
            "u",
            &offered(&["xen"]),
            false,
            &KvmEvidence::Local(Ok(())),
            None
        )
        .is_err());
    }
}
