//! Claiming an address slot. libvirt does not refuse two domains with one
//! MAC, so the domain itself is the claim, in two phases:
//! 1. define the domain with the slot's MAC, then look at every domain
//!    holding it: if one of them marked the slot as claimed, or has not yet
//!    but has a smaller name, move to another free slot;
//! 2. else mark it (domain metadata) and look again: if another one marked
//!    it meanwhile, both move (rare: both passed phase 1 at once).
//!
//! Safe: of two domains that mark one MAC, the later marker sees the
//! earlier's mark in its second look, so no two keep one slot. And one of
//! two colliding creates always goes on (the smaller name), so a block can
//! be filled to its last slot by creates running at once.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::slots::{self, Block, Slot};
use crate::error::{Failure, Result};
use crate::libvirt::{Libvirt, SettledDomains};

/// Moves before giving up (each needs another create to collide again).
const MAX_MOVES: u32 = 32;

/// A first free slot for `vm` (before anything is made): exit 4 naming the
/// network and its size when the block is full.
/// Also returns the domains that had finished their create then, which the
/// later looks skip.
pub fn pick(
    conn: &Libvirt,
    network: &str,
    block: &Block,
    vm: &str,
) -> Result<(Slot, SettledDomains)> {
    let (held, settled) = conn.interface_macs()?;
    let slot = slots::choose(block, &held, vm)
        .cloned()
        .ok_or_else(|| slots::full(network, block))?;
    Ok((slot, settled))
}

/// Called right after the domain `vm` was defined with `slot`'s MAC:
/// returns the slot it keeps. `kept` are the slot MACs this VM already
/// settled on other networks (the mark holds them all). `move_to`
/// redefines the domain (and whatever else carries the MAC) for another slot.
#[allow(clippy::too_many_arguments)]
pub fn settle(
    conn: &Libvirt,
    network: &str,
    block: &Block,
    vm: &str,
    kept: &[String],
    mut slot: Slot,
    mut settled: SettledDomains,
    mut move_to: impl FnMut(&Slot) -> Result<()>,
) -> Result<Slot> {
    for attempt in 0..MAX_MOVES {
        if keeps(conn, vm, kept, &slot.mac, &settled)? {
            return Ok(slot);
        }
        // A short pause that differs between the colliding creates, so
        // they do not meet on the next slot too.
        std::thread::sleep(backoff(vm, attempt));
        // Our own domain still holds the lost MAC, so it is not picked again.
        let (held, now_settled) = conn.interface_macs()?;
        settled = now_settled;
        slot = slots::choose(block, &held, vm)
            .cloned()
            .ok_or_else(|| slots::full(network, block))?;
        move_to(&slot)?;
    }
    Err(Failure::conflict(format!(
        "could not claim an address slot on network '{network}': other VMs took each of {MAX_MOVES} tried at the same moment; try again"
    )))
}

/// The two phases for the domain `vm`, just defined with `mac`.
fn keeps(
    conn: &Libvirt,
    vm: &str,
    kept: &[String],
    mac: &str,
    settled: &SettledDomains,
) -> Result<bool> {
    let others = |holders: Vec<(String, bool)>| -> Vec<(String, bool)> {
        holders.into_iter().filter(|(n, _)| n != vm).collect()
    };
    let first = others(conn.slot_holders(mac, settled)?);
    if first.iter().any(|(n, marked)| *marked || n.as_str() < vm) {
        return Ok(false);
    }
    let mut marks = kept.to_vec();
    marks.push(mac.to_string());
    conn.mark_slot_claim(vm, &marks)?;
    Ok(!others(conn.slot_holders(mac, settled)?)
        .iter()
        .any(|(_, marked)| *marked))
}

fn backoff(vm: &str, attempt: u32) -> Duration {
    let noise = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let digest = Sha256::digest(format!("{vm}/{attempt}/{noise}").as_bytes());
    Duration::from_millis(u64::from(digest[0] % 20) + 1)
}
