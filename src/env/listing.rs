//! `env list` and `env show`: environments as the domains' marks tell
//! them, no file needed (state lives in libvirt, so any directory works).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use tabled::Tabled;

use super::observed::ObservedDomain;

/// One environment on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvSummary {
    pub name: String,
    pub vms: Vec<String>,
    pub active: usize,
    /// The file digests its VMs were made from (more than one when the
    /// file changed between applies).
    pub digests: Vec<String>,
}

#[derive(Debug, Clone, Tabled)]
pub struct SummaryRow {
    #[tabled(rename = "ENV")]
    pub name: String,
    #[tabled(rename = "VMS")]
    pub vms: usize,
    #[tabled(rename = "ACTIVE")]
    pub active: usize,
    #[tabled(rename = "DIGEST")]
    pub digests: String,
}

/// Every environment that has a VM here, by name.
pub fn summaries(domains: &[ObservedDomain]) -> Vec<EnvSummary> {
    let mut by: BTreeMap<&str, (Vec<String>, usize, BTreeSet<String>)> = BTreeMap::new();
    for d in domains {
        let Some(mark) = &d.mark else { continue };
        let e = by.entry(mark.env.as_str()).or_default();
        e.0.push(d.name.clone());
        e.1 += usize::from(d.active);
        if !mark.digest.is_empty() {
            e.2.insert(mark.digest.clone());
        }
    }
    by.into_iter()
        .map(|(name, (mut vms, active, digests))| {
            vms.sort();
            EnvSummary {
                name: name.to_string(),
                vms,
                active,
                digests: digests.into_iter().collect(),
            }
        })
        .collect()
}

pub fn summary_rows(list: &[EnvSummary]) -> Vec<SummaryRow> {
    list.iter()
        .map(|e| SummaryRow {
            name: e.name.clone(),
            vms: e.vms.len(),
            active: e.active,
            digests: e
                .digests
                .iter()
                .map(|d| short(d))
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect()
}

/// One VM of an environment (`env show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub name: String,
    pub active: bool,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub digest: String,
    /// The config fields recorded when it was made.
    pub config: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Tabled)]
pub struct MemberRow {
    #[tabled(rename = "VM")]
    pub name: String,
    #[tabled(rename = "ACTIVE")]
    pub active: &'static str,
    #[tabled(rename = "MEMORY")]
    pub memory: String,
    #[tabled(rename = "VCPUS")]
    pub vcpus: u32,
    #[tabled(rename = "DIGEST")]
    pub digest: String,
    #[tabled(rename = "CONFIG")]
    pub config: String,
}

/// The VMs of environment `env`, by name.
pub fn members(domains: &[ObservedDomain], env: &str) -> Vec<Member> {
    let mut out: Vec<Member> = domains
        .iter()
        .filter(|d| d.belongs_to(env))
        .map(|d| {
            let mark = d.mark.clone().unwrap_or_default();
            Member {
                name: d.name.clone(),
                active: d.active,
                memory_mib: d.memory_mib,
                vcpus: d.vcpus,
                digest: mark.digest,
                config: mark.config,
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

pub fn member_rows(members: &[Member]) -> Vec<MemberRow> {
    members
        .iter()
        .map(|m| MemberRow {
            name: m.name.clone(),
            active: if m.active { "yes" } else { "no" },
            memory: format!("{} MiB", m.memory_mib),
            vcpus: m.vcpus,
            digest: short(&m.digest),
            config: m
                .config
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
        })
        .collect()
}

/// The first 12 hex digits, as git shows commits.
fn short(digest: &str) -> String {
    digest.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::mark::EnvMark;

    fn dom(name: &str, env: Option<&str>, digest: &str, active: bool) -> ObservedDomain {
        ObservedDomain {
            name: name.into(),
            memory_mib: 256,
            vcpus: 1,
            active,
            mark: env.map(|e| EnvMark {
                env: e.into(),
                digest: digest.into(),
                config: [("memory".to_string(), "256".to_string())].into(),
            }),
        }
    }

    #[test]
    fn environments_are_grouped_from_the_marks() {
        let doms = [
            dom("b-2", Some("lab"), "aaaaaaaaaaaaaaaa", true),
            dom("x", None, "", true),
            dom("b-1", Some("lab"), "bbbbbbbbbbbbbbbb", false),
            dom("db", Some("prod"), "cccc", true),
        ];
        let list = summaries(&doms);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].name, "lab");
        assert_eq!(list[0].vms, ["b-1", "b-2"]);
        assert_eq!(list[0].active, 1);
        assert_eq!(list[0].digests.len(), 2);
        let rows = summary_rows(&list);
        assert_eq!(rows[0].digests, "aaaaaaaaaaaa, bbbbbbbbbbbb");
        let m = members(&doms, "lab");
        assert_eq!(
            m.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            ["b-1", "b-2"]
        );
        assert_eq!(member_rows(&m)[0].config, "memory=256");
        assert!(members(&doms, "none").is_empty());
    }
}
