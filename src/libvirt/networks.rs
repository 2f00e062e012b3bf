//! Virtual networks: list, show, ensure (define/start/autostart), delete.

use serde::Serialize;
use virt::error::ErrorNumber;
use virt::network::Network;

use super::errors::{self, failure};
use super::{race, Libvirt};
use crate::error::{Failure, Result};

/// One row of `net list` (stable JSON schema).
#[derive(Debug, Clone, Serialize)]
pub struct NetworkSummary {
    pub name: String,
    pub active: bool,
    pub autostart: bool,
    pub persistent: bool,
    pub bridge: Option<String>,
}

/// What `net ensure` changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkChange {
    Defined,
    /// An existing network without address slots got its block.
    SlotsAdded,
    Started,
    AutostartSet,
}

impl NetworkChange {
    pub fn describe(self) -> &'static str {
        match self {
            NetworkChange::Defined => "defined",
            NetworkChange::SlotsAdded => "given a block of address slots (redefined and restarted)",
            NetworkChange::Started => "started",
            NetworkChange::AutostartSet => "set to autostart",
        }
    }
}

/// The persistent definition of `net`; the live one for a transient
/// network or a driver without the flag (the test driver).
fn config_xml(net: &Network, name: &str) -> Result<String> {
    let what = format!("reading network '{name}' XML");
    if net.is_persistent().map_err(|e| failure(e, &what))? {
        match net.xml_desc(virt::sys::VIR_NETWORK_XML_INACTIVE) {
            Ok(xml) => return Ok(xml),
            Err(e) if errors::is_code(&e, ErrorNumber::InvalidArg) => {}
            Err(e) => return Err(failure(e, &what)),
        }
    }
    net.xml_desc(0).map_err(|e| failure(e, &what))
}

impl Libvirt {
    fn network(&self, name: &str) -> Result<Option<Network>> {
        match self.conn.lookup_network_by_name(name) {
            Ok(n) => Ok(Some(n)),
            Err(e) if errors::is_code(&e, ErrorNumber::NoNetwork) => Ok(None),
            Err(e) => Err(failure(e, &format!("looking up network '{name}'"))),
        }
    }

    pub(super) fn existing_network(&self, name: &str) -> Result<Network> {
        self.network(name)?.ok_or_else(|| {
            Failure::not_found(format!(
                "network '{name}' not found at {}; create it with 'boxvirt net ensure {name}'",
                self.uri()
            ))
        })
    }

    fn summarize_network(&self, net: &Network) -> Result<NetworkSummary> {
        let name = net
            .name()
            .map_err(|e| failure(e, "reading a network name"))?;
        let what = format!("reading network '{name}'");
        Ok(NetworkSummary {
            active: net.is_active().map_err(|e| failure(e, &what))?,
            autostart: net.autostart().map_err(|e| failure(e, &what))?,
            persistent: net.is_persistent().map_err(|e| failure(e, &what))?,
            bridge: net.bridge_name().ok(),
            name,
        })
    }

    pub fn list_networks(&self) -> Result<Vec<NetworkSummary>> {
        let nets = self
            .conn
            .list_all_networks(0)
            .map_err(|e| failure(e, "listing networks"))?;
        let mut rows = Vec::with_capacity(nets.len());
        for net in &nets {
            match self.summarize_network(net) {
                Ok(row) => rows.push(row),
                // Undefined by someone else between the listing and the read.
                Err(f) if f.exit == crate::error::Exit::NotFound => {}
                Err(f) => return Err(f),
            }
        }
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(rows)
    }

    /// `None` when the network does not exist.
    pub fn network_summary(&self, name: &str) -> Result<Option<NetworkSummary>> {
        self.network(name)?
            .map(|n| self.summarize_network(&n))
            .transpose()
    }

    pub fn network_xml(&self, name: &str) -> Result<String> {
        self.existing_network(name)?
            .xml_desc(0)
            .map_err(|e| failure(e, &format!("reading network '{name}' XML")))
    }

    /// The persistent definition (the live one for a transient network).
    pub fn network_config_xml(&self, name: &str) -> Result<String> {
        config_xml(&self.existing_network(name)?, name)
    }

    /// Replaces a persistent network's definition with `xml` and restarts
    /// it (when it runs) so the new definition applies. Only for a network
    /// no VM uses: its bridge goes away for a moment. On failure the old
    /// definition is put back (and started again if it ran).
    pub fn redefine_network(&self, name: &str, xml: &str) -> Result<()> {
        let old = self.existing_network(name)?;
        let what = format!("redefining network '{name}'");
        if !old.is_persistent().map_err(|e| failure(e, &what))? {
            return Err(Failure::failed(format!(
                "network '{name}' is transient (not defined), so boxvirt cannot redefine it; define it persistently first"
            )));
        }
        let old_xml = config_xml(&old, name)?;
        let was_active = old.is_active().map_err(|e| failure(e, &what))?;
        let apply = || -> Result<()> {
            let net = self
                .conn
                .define_network_xml(xml)
                .map_err(|e| failure(e, &what))?;
            if was_active {
                net.destroy().map_err(|e| failure(e, &what))?;
                net.create().map_err(|e| failure(e, &what))?;
            }
            Ok(())
        };
        apply().map_err(|err| {
            if let Ok(net) = self.conn.define_network_xml(&old_xml) {
                if was_active && !net.is_active().unwrap_or(true) {
                    let _ = net.create();
                }
            }
            Failure {
                exit: err.exit,
                message: format!("{}; the old definition was put back", err.message),
            }
        })
    }

    /// Makes the network exist, run and autostart. `definition` is called only
    /// when the network must be defined. A network this call defined is
    /// undefined again if starting it fails (nothing half-made).
    pub fn ensure_network(
        &self,
        name: &str,
        definition: impl FnOnce() -> Result<String>,
    ) -> Result<Vec<NetworkChange>> {
        let mut changes = Vec::new();
        let net = match self.network(name)? {
            Some(n) => n,
            None => {
                let xml = definition()?;
                let (net, ours) = race::define_or_adopt(
                    &format!("defining network '{name}'"),
                    || self.conn.define_network_xml(&xml),
                    || self.network(name),
                )?;
                if ours {
                    changes.push(NetworkChange::Defined);
                }
                net
            }
        };
        let what = format!("reading network '{name}'");
        if !net.is_active().map_err(|e| failure(e, &what))? {
            match race::start_or_adopt(
                &format!("starting network '{name}'"),
                changes.contains(&NetworkChange::Defined),
                || net.create(),
                || net.is_active().map_err(|e| failure(e, &what)),
            ) {
                Ok(true) => changes.push(NetworkChange::Started),
                Ok(false) => {}
                Err(err) if changes.contains(&NetworkChange::Defined) => {
                    let _ = net.undefine();
                    return Err(err.context("rolled back the definition"));
                }
                Err(err) => return Err(err),
            }
        }
        if net.is_persistent().map_err(|e| failure(e, &what))?
            && !net.autostart().map_err(|e| failure(e, &what))?
        {
            net.set_autostart(true)
                .map_err(|e| failure(e, &format!("setting network '{name}' to autostart")))?;
            changes.push(NetworkChange::AutostartSet);
        }
        Ok(changes)
    }

    /// Stops (if running) and undefines a network.
    /// The VMs with an interface on network `name`, each as "vm 'x'" with
    /// "(running)" when it is.
    pub fn network_users(&self, name: &str) -> Result<Vec<String>> {
        let on_network = |xml: &str| {
            crate::xml::find_all(xml, &["domain", "devices", "interface", "source"])
                .iter()
                .any(|s| s.attr("network") == Some(name))
        };
        let mut users: Vec<String> = self
            .domains_whose_xml(on_network)?
            .iter()
            .map(|dom| {
                let running = if dom.is_active().unwrap_or(false) {
                    " (running)"
                } else {
                    ""
                };
                format!("vm '{}'{running}", dom.name().unwrap_or_default())
            })
            .collect();
        users.sort();
        Ok(users)
    }

    pub fn delete_network(&self, name: &str) -> Result<()> {
        let net = self.existing_network(name)?;
        let what = format!("deleting network '{name}'");
        if net.is_active().map_err(|e| failure(e, &what))? {
            net.destroy().map_err(|e| failure(e, &what))?;
        }
        if net.is_persistent().map_err(|e| failure(e, &what))? {
            net.undefine().map_err(|e| failure(e, &what))?;
        }
        Ok(())
    }
}
