//! network-config (version 2): DHCP on each of the VM's NICs, found by its MAC.

use super::SeedSpec;

/// Each NIC (eth0 the primary, then eth1, ... in the order of the VM's
/// networks) gets DHCPv4 with a MAC-based client id
/// (`dhcp-identifier: mac`): systemd-networkd would otherwise send a DUID
/// made from /etc/machine-id, and clones of one disk would share a lease.
/// `set-name` is there because cloud-init's networkd and sysconfig renderers
/// otherwise match the entry's id as the interface name too (so a NIC called
/// ens3 would get no configuration); cloud-init renames the NIC first.
/// Further NICs' routes get a higher metric, so the default route stays
/// on the primary NIC, where the VM's SSH address is.
pub fn network_config(spec: &SeedSpec) -> String {
    let mut out = String::from("version: 2\nethernets:\n");
    let macs = std::iter::once(&spec.mac).chain(&spec.more_macs);
    for (i, mac) in macs.enumerate() {
        // Quoted: PyYAML (YAML 1.1) reads an all-digit MAC such as
        // 52:54:00:12:34:56 as a base-60 integer.
        let mac = mac.to_ascii_lowercase().replace('\'', "''");
        out.push_str(&format!(
            "  eth{i}:\n    match:\n      macaddress: '{mac}'\n    set-name: eth{i}\n    dhcp4: true\n    dhcp-identifier: mac\n"
        ));
        if i > 0 {
            out.push_str(&format!(
                "    dhcp4-overrides:\n      route-metric: {}\n",
                100 * (i + 1)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_nic_primary_first() {
        let mut spec = SeedSpec {
            instance_id: "iid-a".into(),
            hostname: "a".into(),
            user: "boxvirt".into(),
            authorized_keys: Vec::new(),
            host_key: super::super::host_key::host_key_from_seed(&[7; 32], "a").unwrap(),
            mac: "52:54:00:12:34:56".into(),
            more_macs: Vec::new(),
            extra_user_data: None,
        };
        assert!(!network_config(&spec).contains("eth1"));
        spec.more_macs = vec!["52:54:00:AA:00:02".into()];
        let text = network_config(&spec);
        let eth1 = text.find("  eth1:").unwrap();
        assert!(text[..eth1].contains("macaddress: '52:54:00:12:34:56'"));
        assert!(!text[..eth1].contains("route-metric"));
        assert!(text[eth1..].contains("macaddress: '52:54:00:aa:00:02'\n    set-name: eth1"));
        assert!(text[eth1..].contains("route-metric: 200"));
    }
}
