//! Which host each VM goes to. The rule (README "Environments"):
//!
//! 1. a VM whose group pins `host:` goes there;
//! 2. a VM this environment already made stays on the host it is on;
//! 3. every other VM, in file order, goes to the host with the most free
//!    memory left once the VMs placed before it are counted; a tie goes to
//!    the host whose name sorts first.
//!
//! Only the file and the hosts' free memory decide, so the same file on
//! the same hosts gives the same placement.

use std::collections::BTreeMap;

use super::expand::VmSpec;

/// One candidate host and its free memory now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    pub host: String,
    pub free_mib: u64,
}

/// The host of each VM, in the order of `vms`. `existing` maps the names of
/// VMs this environment already has to their host. `hosts` must not be
/// empty.
pub fn place(
    vms: &[VmSpec],
    hosts: &[Capacity],
    existing: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut left: BTreeMap<&str, i128> = hosts
        .iter()
        .map(|h| (h.host.as_str(), i128::from(h.free_mib)))
        .collect();
    vms.iter()
        .map(|vm| {
            let (host, new) = match (&vm.host, existing.get(&vm.name)) {
                (Some(pin), Some(at)) => (pin.clone(), pin != at),
                (Some(pin), None) => (pin.clone(), true),
                (None, Some(at)) if left.contains_key(at.as_str()) => (at.clone(), false),
                (None, _) => (most_free(&left), true),
            };
            // A VM that is already there holds its memory already.
            if new {
                if let Some(free) = left.get_mut(host.as_str()) {
                    *free -= i128::from(vm.memory_mib);
                }
            }
            host
        })
        .collect()
}

/// The host with the most left; the first by name on a tie.
fn most_free(left: &BTreeMap<&str, i128>) -> String {
    let mut best: Option<(&str, i128)> = None;
    for (host, free) in left {
        if best.is_none_or(|(_, b)| *free > b) {
            best = Some((host, *free));
        }
    }
    best.map(|(h, _)| h.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(name: &str, mib: u64, host: Option<&str>) -> VmSpec {
        VmSpec {
            name: name.into(),
            group: 0,
            host: host.map(str::to_string),
            template: "tiny".into(),
            memory_mib: mib,
            vcpus: None,
            disk_size_gib: None,
            image: None,
            networks: vec![],
            user_data: None,
            user_data_digest: None,
            ssh_keys: vec![],
        }
    }

    fn hosts(list: &[(&str, u64)]) -> Vec<Capacity> {
        list.iter()
            .map(|(h, f)| Capacity {
                host: h.to_string(),
                free_mib: *f,
            })
            .collect()
    }

    #[test]
    fn unpinned_vms_fill_the_host_with_most_free_memory_first() {
        let vms: Vec<VmSpec> = (1..=4).map(|i| vm(&format!("n-{i}"), 1024, None)).collect();
        let placed = place(&vms, &hosts(&[("a", 2048), ("b", 4096)]), &BTreeMap::new());
        // b: 4096 -> 3072 -> 2048 (tie with a: a sorts first) ...
        assert_eq!(placed, ["b", "b", "a", "b"]);
    }

    #[test]
    fn the_same_input_gives_the_same_placement_whatever_the_host_order() {
        let vms: Vec<VmSpec> = (1..=7)
            .map(|i| vm(&format!("n-{i}"), 512 * i, None))
            .collect();
        let one = place(
            &vms,
            &hosts(&[("a", 3000), ("b", 3000), ("c", 2500)]),
            &BTreeMap::new(),
        );
        let two = place(
            &vms,
            &hosts(&[("c", 2500), ("b", 3000), ("a", 3000)]),
            &BTreeMap::new(),
        );
        assert_eq!(one, two);
        assert_eq!(
            one,
            place(
                &vms,
                &hosts(&[("a", 3000), ("b", 3000), ("c", 2500)]),
                &BTreeMap::new()
            )
        );
    }

    #[test]
    fn pins_win_and_count_against_their_host() {
        let vms = [vm("p", 3000, Some("b")), vm("x", 100, None)];
        let placed = place(&vms, &hosts(&[("a", 2000), ("b", 4000)]), &BTreeMap::new());
        assert_eq!(placed, ["b", "a"]);
    }

    #[test]
    fn existing_vms_stay_and_do_not_count_again() {
        let existing: BTreeMap<String, String> = [("x".to_string(), "a".to_string())].into();
        let vms = [vm("x", 1000, None), vm("y", 1000, None)];
        let placed = place(&vms, &hosts(&[("a", 1500), ("b", 1000)]), &existing);
        assert_eq!(placed, ["a", "a"]);
        // A host that is gone from the file does not keep it.
        let placed = place(&vms, &hosts(&[("b", 1000)]), &existing);
        assert_eq!(placed, ["b", "b"]);
    }
}
