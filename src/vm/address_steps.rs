//! The apply steps that give the NICs their addresses: live DHCP
//! reservations before the define (networks without slots), and settling
//! the slot claims right after it (see slot_claim).

use super::metadata::Reservation;
use super::nics::{Nic, NicOut};
use super::rollback::Rollback;
use super::{seed, slot_claim};
use crate::cloudinit::{self, SeedSpec};
use crate::error::Result;
use crate::libvirt::{Libvirt, SettledDomains};
use crate::output::Output;

/// The live DHCP reservations of NICs on networks without slots, each
/// with its rollback.
pub fn reserve_live<'a>(
    conn: &'a Libvirt,
    name: &str,
    nics: &[Nic],
    rollback: &mut Rollback<'a>,
) -> Result<()> {
    for nic in nics {
        let Some(ip) = nic.live_ip else { continue };
        let ip = ip.to_string();
        conn.add_dhcp_host(&nic.network, &nic.mac, name, &ip)?;
        let (n, m, i, vm) = (
            nic.network.clone(),
            nic.mac.clone(),
            ip.clone(),
            name.to_string(),
        );
        rollback.push(format!("DHCP reservation {ip} on {n}"), move || {
            conn.remove_dhcp_host(&n, &m, &vm, &i).map(|_| ())
        });
    }
    Ok(())
}

/// Right after the define: settles each slot NIC's claim, in order; a NIC
/// moved to another slot gets its new MAC in the domain and the seed.
pub fn settle_slots(
    conn: &Libvirt,
    out: &Output,
    name: &str,
    nics: &mut [Nic],
    seed_spec: &mut Option<(Vec<u8>, SeedSpec)>,
) -> Result<()> {
    let mut kept: Vec<String> = Vec::new();
    for nic in nics.iter_mut() {
        let Some((block, slot, settled)) = nic.slot.clone() else {
            continue;
        };
        let mut current = slot.mac.clone();
        let net = nic.network.clone();
        let won = slot_claim::settle(conn, &net, &block, name, &kept, slot, settled, |new| {
            move_nic(conn, name, seed_spec, &current, &new.mac)?;
            out.detail(format!(
                "address slot {current} of network '{net}' was claimed by another create at the same moment; moved to {} ({})",
                new.mac, new.ip
            ));
            current = new.mac.clone();
            Ok(())
        })?;
        kept.push(won.mac.clone());
        nic.mac = won.mac.clone();
        nic.slot = Some((block, won, SettledDomains::default()));
    }
    Ok(())
}

/// Gives the NIC with MAC `from` the MAC `to`: in the seed (rebuilt and
/// uploaded again) and in the domain (redefined).
fn move_nic(
    conn: &Libvirt,
    name: &str,
    seed_spec: &mut Option<(Vec<u8>, SeedSpec)>,
    from: &str,
    to: &str,
) -> Result<()> {
    if let Some((_, spec)) = seed_spec.as_mut() {
        for m in std::iter::once(&mut spec.mac).chain(spec.more_macs.iter_mut()) {
            if *m == from {
                *m = to.to_string();
            }
        }
        let bytes = cloudinit::build_seed_image(spec)?;
        conn.delete_volume(super::create::POOL, &seed::volume(name))?;
        seed::upload(conn, name, &bytes)?;
    }
    let xml = conn
        .domain_xml(name, true)?
        .replace(&format!("address='{from}'"), &format!("address='{to}'"));
    conn.define_domain(&xml)
}

/// The address a NIC got, as the metadata records it.
pub fn reservation(nic: &Nic) -> Option<Reservation> {
    let (ip, slot) = match (&nic.slot, nic.live_ip) {
        (Some((_, s, _)), _) => (s.ip.to_string(), true),
        (None, Some(ip)) => (ip.to_string(), false),
        (None, None) => return None,
    };
    Some(Reservation {
        network: nic.network.clone(),
        mac: nic.mac.clone(),
        ip,
        slot,
        host: None,
    })
}

pub fn nic_out(nic: &Nic) -> NicOut {
    NicOut {
        network: nic.network.clone(),
        mac: nic.mac.clone(),
        ip: reservation(nic).map(|r| r.ip),
    }
}
