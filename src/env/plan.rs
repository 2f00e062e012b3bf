//! What `env apply` would do, per host: create, keep, change ("needs
//! replace") or delete each network and VM. A pure function of the file
//! and what the hosts hold now; it refuses (with the exit code of the
//! first problem) an unreachable host, a VM name taken outside this
//! environment or by another one, and more memory than a host has.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::expand::VmSpec;
use super::observed::{HostState, Observed, ObservedDomain, Reach};
use super::placement::{self, Capacity};
use super::Desired;
use crate::error::{Failure, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    Create,
    Keep,
    Change,
    Adopt,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Keep => "keep",
            Verb::Change => "change",
            Verb::Adopt => "adopt",
            Verb::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Object {
    Network,
    Vm,
}

/// One field that differs from what the VM or network was made with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub field: String,
    /// `None`: the field was not set.
    pub now: Option<String>,
    pub wanted: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    pub object: Object,
    pub name: String,
    pub action: Verb,
    /// For change (and adopt): what differs; a change needs `--replace`.
    pub changes: Vec<Change>,
    /// One line for people: template and size, why a delete, ...
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostPlan {
    pub host: String,
    pub uri: String,
    pub total_mib: u64,
    pub free_mib: u64,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub env: String,
    pub file: String,
    pub digest: String,
    pub hosts: Vec<HostPlan>,
}

impl Plan {
    /// How many actions of each verb, over all hosts.
    pub fn count(&self, verb: Verb) -> usize {
        self.hosts
            .iter()
            .flat_map(|h| &h.actions)
            .filter(|a| a.action == verb)
            .count()
    }

    /// True when apply would change nothing.
    pub fn is_converged(&self) -> bool {
        self.hosts
            .iter()
            .flat_map(|h| &h.actions)
            .all(|a| a.action == Verb::Keep)
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Take over VMs of the same name that no environment made.
    pub adopt: bool,
}

/// The plan, or the first reason there can be none.
pub fn plan(desired: &Desired, hosts: &[HostState], opts: Options) -> Result<Plan> {
    let up = reachable(hosts)?;
    check_names(desired, &up, opts)?;
    let existing = existing_locations(desired, &up, opts);
    let capacity: Vec<Capacity> = up
        .iter()
        .map(|(h, o)| Capacity {
            host: h.name.clone(),
            free_mib: o.free_mib,
        })
        .collect();
    let placed = placement::place(&desired.vms, &capacity, &existing);
    check_memory(desired, &up, &placed)?;
    Ok(Plan {
        env: desired.name.clone(),
        file: desired.file.clone(),
        digest: desired.digest.clone(),
        hosts: up
            .iter()
            .map(|(h, o)| host_plan(desired, h, o, &placed, &existing))
            .collect(),
    })
}

/// Every host answered; the first that did not is exit 5, named.
fn reachable(hosts: &[HostState]) -> Result<Vec<(&HostState, &Observed)>> {
    hosts
        .iter()
        .map(|h| match &h.reach {
            Reach::Up(o) => Ok((h, o)),
            Reach::Down(why) => Err(Failure::connect(format!(
                "host '{}' is unreachable: {why}; nothing was planned",
                h.name
            ))),
        })
        .collect()
}

/// A wanted name held by a VM of another environment, or (without adopt)
/// by a VM no environment made, is a conflict (exit 4).
fn check_names(desired: &Desired, up: &[(&HostState, &Observed)], opts: Options) -> Result<()> {
    for vm in &desired.vms {
        for (host, observed) in up {
            let Some(dom) = observed.domain(&vm.name) else {
                continue;
            };
            match &dom.mark {
                Some(m) if m.env == desired.name => {}
                Some(m) => {
                    return Err(Failure::conflict(format!(
                        "vm '{}' on host '{}' belongs to environment '{}', not '{}'; rename the vm in {} or destroy that environment",
                        vm.name, host.name, m.env, desired.name, desired.file
                    )))
                }
                None if opts.adopt => {}
                None => {
                    return Err(Failure::conflict(format!(
                        "vm '{}' already exists on host '{}' outside environment '{}'; rename it in {}, delete it, or pass --adopt to take it over",
                        vm.name, host.name, desired.name, desired.file
                    )))
                }
            }
        }
    }
    Ok(())
}

/// VM name -> host, for the VMs this environment has (or adopts).
fn existing_locations(
    desired: &Desired,
    up: &[(&HostState, &Observed)],
    opts: Options,
) -> BTreeMap<String, String> {
    let mut at = BTreeMap::new();
    for vm in &desired.vms {
        let found = up.iter().find(|(_, o)| {
            o.domain(&vm.name)
                .is_some_and(|d| d.belongs_to(&desired.name) || (opts.adopt && d.mark.is_none()))
        });
        if let Some((h, _)) = found {
            at.insert(vm.name.clone(), h.name.clone());
        }
    }
    at
}

/// The VMs placed on a host need no more memory than it has in total.
fn check_memory(
    desired: &Desired,
    up: &[(&HostState, &Observed)],
    placed: &[String],
) -> Result<()> {
    for (host, observed) in up {
        let on: Vec<&VmSpec> = desired
            .vms
            .iter()
            .zip(placed)
            .filter(|(_, p)| **p == host.name)
            .map(|(vm, _)| vm)
            .collect();
        let need: u64 = on.iter().map(|vm| vm.memory_mib).sum();
        if need > observed.total_mib {
            let names: Vec<&str> = on.iter().map(|vm| vm.name.as_str()).collect();
            return Err(Failure::usage(format!(
                "{}: the VMs placed on host '{}' ({}) need {need} MiB, more than its {} MiB in total; lower their memory or add a host",
                desired.file,
                host.name,
                names.join(", "),
                observed.total_mib
            )));
        }
    }
    Ok(())
}

fn host_plan(
    desired: &Desired,
    host: &HostState,
    observed: &Observed,
    placed: &[String],
    existing: &BTreeMap<String, String>,
) -> HostPlan {
    let here: Vec<&VmSpec> = desired
        .vms
        .iter()
        .zip(placed)
        .filter(|(_, p)| **p == host.name)
        .map(|(vm, _)| vm)
        .collect();
    let mut actions = network_actions(desired, observed, &here);
    for vm in &here {
        actions.push(vm_action(vm, observed, existing.get(&vm.name), &host.name));
    }
    actions.extend(deletions(desired, observed, placed, &host.name));
    HostPlan {
        host: host.name.clone(),
        uri: host.uri.clone(),
        total_mib: observed.total_mib,
        free_mib: observed.free_mib,
        actions,
    }
}

/// The networks the host's VMs use (a declared network no VM uses goes on
/// every host), in name order: create the missing ones, keep the others.
fn network_actions(desired: &Desired, observed: &Observed, here: &[&VmSpec]) -> Vec<Action> {
    let used_anywhere: BTreeSet<&str> = desired
        .vms
        .iter()
        .flat_map(|vm| vm.networks.iter().map(String::as_str))
        .collect();
    let used_here: BTreeSet<&str> = here
        .iter()
        .flat_map(|vm| vm.networks.iter().map(String::as_str))
        .collect();
    desired
        .networks
        .iter()
        .filter(|(name, _)| {
            used_here.contains(name.as_str()) || !used_anywhere.contains(name.as_str())
        })
        .map(|(name, spec)| {
            let detail = match &spec.cidr {
                Some(c) => format!("template {}, {c}", spec.template),
                None => format!("template {}", spec.template),
            };
            let (action, changes) = match observed.network(name) {
                None => (Verb::Create, vec![]),
                Some(n) => match (&spec.cidr, &n.cidr) {
                    (Some(want), Some(now)) if want != now => (
                        Verb::Change,
                        vec![Change {
                            field: "cidr".into(),
                            now: Some(now.clone()),
                            wanted: Some(want.clone()),
                        }],
                    ),
                    _ => (Verb::Keep, vec![]),
                },
            };
            let detail = if changes.is_empty() {
                detail
            } else {
                format!("{}; needs replace", show_changes(&changes))
            };
            Action {
                object: Object::Network,
                name: name.clone(),
                action,
                changes,
                detail,
            }
        })
        .collect()
}

fn vm_action(vm: &VmSpec, observed: &Observed, was_at: Option<&String>, host: &str) -> Action {
    let summary = describe(vm);
    let (action, changes, detail) = match (observed.domain(&vm.name), was_at) {
        (Some(dom), Some(at)) if at == host => match &dom.mark {
            Some(mark) => {
                let changes = diff(&mark.config, &vm.config());
                let verb = if changes.is_empty() {
                    Verb::Keep
                } else {
                    Verb::Change
                };
                (verb, changes, summary)
            }
            None => (
                Verb::Adopt,
                adopt_diff(vm, dom),
                format!("{summary}; made outside the environment"),
            ),
        },
        (_, Some(at)) => (
            Verb::Create,
            vec![],
            format!("{summary}; moves here from host '{at}'"),
        ),
        _ => (Verb::Create, vec![], summary),
    };
    let detail = if changes.is_empty() {
        detail
    } else {
        format!("{}; needs replace", show_changes(&changes))
    };
    Action {
        object: Object::Vm,
        name: vm.name.clone(),
        action,
        changes,
        detail,
    }
}

/// Fields whose recorded and wanted values differ, in field order.
pub fn diff(now: &BTreeMap<String, String>, wanted: &BTreeMap<String, String>) -> Vec<Change> {
    let keys: BTreeSet<&String> = now.keys().chain(wanted.keys()).collect();
    keys.into_iter()
        .filter(|k| now.get(*k) != wanted.get(*k))
        .map(|k| Change {
            field: k.clone(),
            now: now.get(k).cloned(),
            wanted: wanted.get(k).cloned(),
        })
        .collect()
}

/// For a VM no environment made, only what the domain shows can differ.
fn adopt_diff(vm: &VmSpec, dom: &ObservedDomain) -> Vec<Change> {
    let mut out = Vec::new();
    let mut check = |field: &str, now: String, wanted: Option<String>| {
        if let Some(w) = wanted.filter(|w| *w != now) {
            out.push(Change {
                field: field.into(),
                now: Some(now),
                wanted: Some(w),
            });
        }
    };
    check(
        "memory",
        dom.memory_mib.to_string(),
        Some(vm.memory_mib.to_string()),
    );
    check(
        "vcpus",
        dom.vcpus.to_string(),
        vm.vcpus.map(|v| v.to_string()),
    );
    out
}

/// This environment's VMs on the host that the file no longer puts there.
fn deletions(desired: &Desired, observed: &Observed, placed: &[String], host: &str) -> Vec<Action> {
    let mut out: Vec<Action> = observed
        .domains
        .iter()
        .filter(|d| d.belongs_to(&desired.name))
        .filter_map(|d| {
            let at = desired.vms.iter().position(|vm| vm.name == d.name);
            let detail = match at.map(|i| &placed[i]) {
                Some(p) if p == host => return None,
                Some(p) => format!("moves to host '{p}'"),
                None => format!("no longer in {}", desired.file),
            };
            Some(Action {
                object: Object::Vm,
                name: d.name.clone(),
                action: Verb::Delete,
                changes: vec![],
                detail,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn describe(vm: &VmSpec) -> String {
    let mut parts = vec![vm.template.clone(), format!("{} MiB", vm.memory_mib)];
    if let Some(v) = vm.vcpus {
        parts.push(format!("{v} vcpu"));
    }
    if let Some(d) = vm.disk_size_gib {
        parts.push(format!("{d} GiB disk"));
    }
    if !vm.networks.is_empty() {
        parts.push(format!("on {}", vm.networks.join(", ")));
    }
    parts.join(", ")
}

fn show_changes(changes: &[Change]) -> String {
    let v = |o: &Option<String>| o.clone().unwrap_or_else(|| "(unset)".into());
    changes
        .iter()
        .map(|c| format!("{} {} -> {}", c.field, v(&c.now), v(&c.wanted)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
