//! Renaming a shut-off VM that boxvirt made (`env apply --replace` swaps
//! the new VM in under the old one's name). Its disks, slots and UUID
//! stay; a live DHCP host entry keeps the name it was made with, so the
//! metadata records that name for the delete to find the entry by.

use sha2::{Digest, Sha256};

use super::metadata::VmMetadata;
use crate::error::Result;
use crate::libvirt::Libvirt;
use crate::names;

pub fn rename(conn: &Libvirt, from: &str, to: &str) -> Result<()> {
    conn.rename_domain(from, to)?;
    let Some(raw) = conn.domain_metadata(to)? else {
        return Ok(());
    };
    let mut meta = VmMetadata::parse(&raw);
    let mut changed = false;
    for r in meta.reservations.iter_mut().filter(|r| !r.slot) {
        // The entry's name; none recorded when it is the VM's own.
        let entry = r.host.clone().unwrap_or_else(|| from.to_string());
        let host = (entry != to).then_some(entry);
        changed |= host != r.host;
        r.host = host;
    }
    if changed {
        conn.set_domain_metadata(to, &meta.to_xml())?;
    }
    Ok(())
}

/// A name beside `vm`'s for a while, e.g. `web.new-3fa2c1`: valid, at
/// most [`names::MAX_LEN`], and new on every call (so the MACs derived
/// from it never meet an earlier replace's).
pub fn aside_name(vm: &str, tag: &str) -> String {
    let noise = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let digest = Sha256::digest(format!("{vm}/{tag}/{}/{noise}", std::process::id()).as_bytes());
    format!(
        "{}{:02x}{:02x}{:02x}",
        aside_prefix(vm, tag),
        digest[0],
        digest[1],
        digest[2]
    )
}

/// What every [`aside_name`] of `vm` and `tag` starts with: `web.new-`
/// (`vm` shortened so that six hex digits still fit).
pub fn aside_prefix(vm: &str, tag: &str) -> String {
    let suffix = format!(".{tag}-");
    let keep = names::MAX_LEN.saturating_sub(suffix.len() + 6);
    let head: String = vm.chars().take(keep).collect();
    format!("{head}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aside_names_are_valid_short_and_new_each_time() {
        let a = aside_name("web", "new");
        assert!(
            a.starts_with("web.new-") && a.len() == "web.new-".len() + 6,
            "{a}"
        );
        names::validate("vm", &a).unwrap();
        let long = aside_name(&"x".repeat(64), "old");
        assert_eq!(long.len(), names::MAX_LEN);
        names::validate("vm", &long).unwrap();
        assert_ne!(aside_name("web", "new"), aside_name("web", "new"));
    }
}
