//! What a slot claim (vm/slot_claim.rs) reads and writes: the interface
//! MACs of every domain, and the claim mark in a domain's metadata.

use std::collections::HashSet;

use virt::sys;

use super::errors::failure;
use super::Libvirt;
use crate::error::Result;

/// The element (and namespace) a domain carries while and after it claims
/// an address slot.
const CLAIM_KEY: &str = "slotclaim";
const CLAIM_URI: &str = "urn:boxvirt:slot-claim:1";

/// Domains (by UUID) that had finished their create at an earlier look
/// (their boxvirt metadata records an address, written only after the
/// claim): they never change their
/// MAC, so later looks need not read their XML again. That keeps the two
/// looks after the define cheap on a daemon with many domains.
#[derive(Debug, Clone, Default)]
pub struct SettledDomains(HashSet<String>);

struct DomainMacs {
    name: String,
    macs: Vec<String>,
    /// The slot MACs it marked as claimed (one per NIC on a slotted network).
    claimed: Vec<String>,
}

impl Libvirt {
    /// Every defined or running domain not in `skip`: its name, interface
    /// MACs and the slot MAC it marked as claimed; and the domains that
    /// have finished their create. A domain gone between the listing and
    /// the read is left out.
    fn interface_macs_by_domain(
        &self,
        skip: &SettledDomains,
    ) -> Result<(Vec<DomainMacs>, SettledDomains)> {
        let doms = self
            .conn
            .list_all_domains(0)
            .map_err(|e| failure(e, "listing domains"))?;
        let mut settled = SettledDomains::default();
        let mut rows = Vec::with_capacity(doms.len());
        for d in &doms {
            let uuid = d.uuid_string().ok();
            if uuid.as_ref().is_some_and(|u| skip.0.contains(u)) {
                continue;
            }
            // The persistent definition: it holds the MACs and the marks
            // (both written to the config), and reading it takes no job on
            // the domain, so a create does not wait for other creates'
            // domains to finish starting (the live XML of a running domain
            // with a balloon needs a query job, queued behind the start).
            let Ok(xml) = d.xml_desc(sys::VIR_DOMAIN_XML_INACTIVE) else {
                continue;
            };
            let Ok(name) = d.name() else { continue };
            if let Some(u) = uuid {
                // The template's own `<boxvirt:vm>` is there from the define;
                // the reservation is written only once the claim is settled.
                if crate::xml::find_first(&xml, &["domain", "metadata", "vm", "reservation"])
                    .is_some()
                {
                    settled.0.insert(u);
                }
            }
            rows.push(DomainMacs {
                name,
                macs: crate::xml::find_all(&xml, &["domain", "devices", "interface", "mac"])
                    .into_iter()
                    .filter_map(|m| m.attr("address").map(str::to_ascii_lowercase))
                    .collect(),
                claimed: crate::xml::find_first(&xml, &["domain", "metadata", CLAIM_KEY])
                    .and_then(|c| c.attr("mac").map(str::to_ascii_lowercase))
                    .map(|m| m.split_whitespace().map(str::to_string).collect())
                    .unwrap_or_default(),
            });
        }
        Ok((rows, settled))
    }

    /// Every MAC any domain's interfaces hold (lower case), and the
    /// domains that have finished their create.
    pub fn interface_macs(&self) -> Result<(Vec<String>, SettledDomains)> {
        let (rows, settled) = self.interface_macs_by_domain(&SettledDomains::default())?;
        Ok((rows.into_iter().flat_map(|d| d.macs).collect(), settled))
    }

    /// The domains (other than those in `settled`) with an interface
    /// holding `mac`: (name, whether it marked that MAC as claimed).
    pub fn slot_holders(&self, mac: &str, settled: &SettledDomains) -> Result<Vec<(String, bool)>> {
        let mac = mac.to_ascii_lowercase();
        Ok(self
            .interface_macs_by_domain(settled)?
            .0
            .into_iter()
            .filter(|d| d.macs.contains(&mac))
            .map(|d| {
                let marked = d.claimed.contains(&mac);
                (d.name, marked)
            })
            .collect())
    }

    /// Marks (in its metadata, a namespace of its own) that domain `vm`
    /// claims the slots with `macs` (space-separated in one attribute: a
    /// VM with NICs on several slotted networks claims one slot on each).
    pub fn mark_slot_claim(&self, vm: &str, macs: &[String]) -> Result<()> {
        let dom = self
            .conn
            .lookup_domain_by_name(vm)
            .map_err(|e| failure(e, &format!("looking up vm '{vm}'")))?;
        dom.set_metadata(
            sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
            Some(&format!(
                "<{CLAIM_KEY} mac='{}'/>",
                quick_xml::escape::escape(macs.join(" ").as_str())
            )),
            Some(CLAIM_KEY),
            Some(CLAIM_URI),
            sys::VIR_DOMAIN_AFFECT_CONFIG,
        )
        .map_err(|e| failure(e, &format!("marking the address slot of vm '{vm}'")))
    }
}
