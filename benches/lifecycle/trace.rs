//! Counting libvirt round trips: one extra, untimed run of a command with
//! libvirt's client-side RPC log switched on (LIBVIRT_LOG_FILTERS; every
//! contender goes through libvirt's C client library, virt-install through
//! its Python binding), then the calls it sent, by remote procedure.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// libvirt's remote program number (remote_protocol.x).
const REMOTE_PROGRAM: &str = "prog=536903814 ";

/// Procedure numbers of remote_protocol.x that these commands use (the
/// numbers are part of libvirt's wire ABI and never change).
const PROCS: &[(u32, &str)] = &[
    (1, "connect_open"),
    (2, "connect_close"),
    (3, "connect_get_type"),
    (4, "connect_get_version"),
    (6, "node_get_info"),
    (7, "connect_get_capabilities"),
    (9, "domain_create"),
    (10, "domain_create_xml"),
    (11, "domain_define_xml"),
    (12, "domain_destroy"),
    (14, "domain_get_xml_desc"),
    (15, "domain_get_autostart"),
    (16, "domain_get_info"),
    (23, "domain_lookup_by_name"),
    (24, "domain_lookup_by_uuid"),
    (43, "network_get_xml_desc"),
    (44, "network_get_autostart"),
    (45, "network_get_bridge_name"),
    (46, "network_lookup_by_name"),
    (59, "connect_get_hostname"),
    (60, "connect_supports_feature"),
    (66, "auth_list"),
    (83, "storage_pool_refresh"),
    (84, "storage_pool_lookup_by_name"),
    (87, "storage_pool_get_info"),
    (89, "storage_pool_get_autostart"),
    (93, "storage_vol_create_xml"),
    (94, "storage_vol_delete"),
    (95, "storage_vol_lookup_by_name"),
    (98, "storage_vol_get_info"),
    (100, "storage_vol_get_path"),
    (110, "connect_get_uri"),
    (150, "domain_is_active"),
    (151, "domain_is_persistent"),
    (152, "network_is_active"),
    (153, "network_is_persistent"),
    (154, "storage_pool_is_active"),
    (155, "storage_pool_is_persistent"),
    (157, "connect_get_lib_version"),
    (196, "domain_create_with_flags"),
    (208, "storage_vol_upload"),
    (212, "domain_get_state"),
    (231, "domain_undefine_flags"),
    (264, "domain_set_metadata"),
    (265, "domain_get_metadata"),
    (273, "connect_list_all_domains"),
    (281, "connect_list_all_storage_pools"),
    (282, "storage_pool_list_all_volumes"),
    (283, "connect_list_all_networks"),
    (291, "network_update"),
    (341, "network_get_dhcp_leases"),
    (342, "connect_get_domain_capabilities"),
    (350, "domain_define_xml_flags"),
    (353, "domain_interface_addresses"),
    (360, "connect_register_close_callback"),
    (361, "connect_unregister_close_callback"),
];

/// Calls that took at least this long (call to reply) are listed by name.
const SLOW_MS: u64 = 5;

/// The calls one run sent.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    pub calls: usize,
    /// (procedure, count), most frequent first.
    pub by_proc: Vec<(String, usize)>,
    /// (procedure, ms from call to reply) of the calls that took SLOW_MS or
    /// more, in order (the log has millisecond timestamps).
    pub slow: Vec<(String, u64)>,
}

impl Trace {
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .by_proc
            .iter()
            .map(|(p, n)| {
                if *n == 1 {
                    p.clone()
                } else {
                    format!("{p} ×{n}")
                }
            })
            .collect();
        parts.join(", ")
    }

    pub fn slow_summary(&self) -> String {
        let parts: Vec<String> = self
            .slow
            .iter()
            .map(|(p, ms)| format!("{p} {ms} ms"))
            .collect();
        if parts.is_empty() {
            "-".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Makes `cmd` (and every libvirt client it starts) log its RPCs to `log`.
pub fn enable(cmd: &mut Command, log: &Path) {
    let _ = std::fs::remove_file(log);
    cmd.env("LIBVIRT_LOG_FILTERS", "1:rpc.netclient")
        .env("LIBVIRT_LOG_OUTPUTS", format!("1:file:{}", log.display()));
}

/// Counts the calls (not replies or stream data) in a client RPC log and
/// times each from its call to its reply.
pub fn read(log: &Path) -> Trace {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    // (client, serial) -> (procedure, ms of the call); the processes of one
    // command (the original tool's two virsh) run one after the other.
    let mut pending: BTreeMap<(String, u64), (String, u64)> = BTreeMap::new();
    let mut slow = Vec::new();
    for line in text.lines().filter(|l| l.contains(REMOTE_PROGRAM)) {
        let (Some(proc_no), Some(serial), Some(client), Some(at)) = (
            field(line, "proc="),
            field(line, "serial="),
            word(line, "client="),
            millis(line),
        ) else {
            continue;
        };
        let key = (client.to_string(), serial);
        if line.contains("RPC_CLIENT_MSG_TX_QUEUE") && line.contains(" type=0 ") {
            let name = PROCS
                .iter()
                .find(|(n, _)| *n == proc_no as u32)
                .map(|(_, s)| s.to_string());
            let name = name.unwrap_or(format!("proc {proc_no}"));
            *counts.entry(name.clone()).or_default() += 1;
            pending.insert(key, (name, at));
        } else if line.contains("RPC_CLIENT_MSG_RX") && line.contains(" type=1 ") {
            if let Some((name, sent)) = pending.remove(&key) {
                let took = at.saturating_sub(sent);
                if took >= SLOW_MS {
                    slow.push((name, took));
                }
            }
        }
    }
    let mut by_proc: Vec<(String, usize)> = counts.into_iter().collect();
    by_proc.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Trace {
        calls: by_proc.iter().map(|(_, n)| n).sum(),
        by_proc,
        slow,
    }
}

fn word<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line[line.find(key)? + key.len()..]
        .split_whitespace()
        .next()
}

fn field(line: &str, key: &str) -> Option<u64> {
    word(line, key)?
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()
}

/// Milliseconds since midnight of a log line ("2026-01-01 10:57:33.267+0000: ...").
fn millis(line: &str) -> Option<u64> {
    let time = line.split_whitespace().nth(1)?.split('+').next()?;
    let (hms, frac) = time.split_once('.')?;
    let mut parts = hms.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
    Some(((h * 60 + m) * 60 + s) * 1000 + frac.parse::<u64>().ok()?)
}
