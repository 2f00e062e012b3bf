//! What each host has now, as the libvirt side reads it (see
//! `observe.rs`); the plan is a pure function of this and the file.

use serde::Serialize;

use super::mark::EnvMark;

/// One host of the environment and what was found there.
#[derive(Debug, Clone, PartialEq)]
pub struct HostState {
    /// The key under `hosts:` (or [`super::hosts::CURRENT`]).
    pub name: String,
    pub uri: String,
    pub reach: Reach,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reach {
    /// Could not connect or read: the one-line reason.
    Down(String),
    Up(Observed),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Observed {
    pub total_mib: u64,
    /// Free now; placement weighs hosts by it.
    pub free_mib: u64,
    pub networks: Vec<ObservedNetwork>,
    pub domains: Vec<ObservedDomain>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedNetwork {
    pub name: String,
    /// `A.B.C.D/N` of its first IPv4 address, when it has one.
    pub cidr: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedDomain {
    pub name: String,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub active: bool,
    /// Set when an environment made it.
    pub mark: Option<EnvMark>,
}

impl Observed {
    pub fn network(&self, name: &str) -> Option<&ObservedNetwork> {
        self.networks.iter().find(|n| n.name == name)
    }

    pub fn domain(&self, name: &str) -> Option<&ObservedDomain> {
        self.domains.iter().find(|d| d.name == name)
    }

    /// Free memory when the driver gives none: the total less what running
    /// domains hold.
    pub fn estimate_free(total_mib: u64, domains: &[ObservedDomain]) -> u64 {
        let used: u64 = domains
            .iter()
            .filter(|d| d.active)
            .map(|d| d.memory_mib)
            .sum();
        total_mib.saturating_sub(used)
    }
}

impl ObservedDomain {
    /// Made by environment `env`.
    pub fn belongs_to(&self, env: &str) -> bool {
        self.mark.as_ref().is_some_and(|m| m.env == env)
    }
}
