//! On a fresh daemon the first creates race: several boxvirt processes (an
//! `env apply`, two terminals, parallel CI jobs) all find no pool or network
//! and all try to define and start it. Exactly one defines, the others find
//! it, and none fails. Against the REAL live libvirtd
//! (tests/harness/live-libvirtd.sh), with names of this test's own so the
//! shared daemon's other objects are never touched.

mod common;

use std::process::Command;
use std::sync::{Arc, Barrier};

use boxvirt::libvirt::{Libvirt, NetworkChange, PoolChange};
use common::live_uri;

const RACERS: usize = 8;
const ROUNDS: usize = 4;

fn open() -> Libvirt {
    Libvirt::open(&live_uri(), "start tests/harness/live-libvirtd.sh").unwrap()
}

fn virsh(args: &[&str]) -> bool {
    Command::new("virsh")
        .arg("-c")
        .arg(live_uri())
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Removes this test's pools and networks whatever happens.
struct Cleanup(Vec<(&'static str, String)>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for (kind, name) in &self.0 {
            let _ = virsh(&[&format!("{kind}-destroy"), name]);
            let _ = virsh(&[&format!("{kind}-undefine"), name]);
        }
    }
}

/// Runs `ensure` on RACERS threads, each with its own connection, released
/// together; returns every thread's result.
fn race<T: Send + 'static>(
    ensure: impl Fn(&Libvirt) -> Result<T, String> + Send + Sync + 'static,
) -> Vec<Result<T, String>> {
    let ensure = Arc::new(ensure);
    let gate = Arc::new(Barrier::new(RACERS));
    let threads: Vec<_> = (0..RACERS)
        .map(|_| {
            let (ensure, gate) = (ensure.clone(), gate.clone());
            std::thread::spawn(move || {
                let conn = open();
                gate.wait();
                ensure(&conn)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// Every racer succeeded; exactly one defined the object and one started it.
#[track_caller]
fn one_defined_one_started<C: PartialEq + std::fmt::Debug>(
    round: usize,
    results: Vec<Result<Vec<C>, String>>,
    defined: C,
    started: C,
) {
    let changes: Vec<Vec<C>> = results
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("round {round}: a racer failed: {e}")))
        .collect();
    for (what, change) in [("defined", &defined), ("started", &started)] {
        let by = changes.iter().filter(|c| c.contains(change)).count();
        assert_eq!(by, 1, "round {round}: {what} by {by} racers: {changes:?}");
    }
}

#[test]
fn live_racing_first_creates_of_a_pool_define_it_once_and_none_fails() {
    let mut cleanup = Cleanup(Vec::new());
    for round in 0..ROUNDS {
        let name = format!("race-pool-{}-{round}", std::process::id());
        cleanup.0.push(("pool", name.clone()));
        let dir = format!("/var/lib/libvirt/{name}");
        let xml = format!(
            "<pool type='dir'><name>{name}</name><target><path>{dir}</path></target></pool>"
        );
        let results = race(move |conn| {
            let xml = xml.clone();
            conn.ensure_pool(&name.clone(), move || Ok(xml))
                .map_err(|e| e.message)
        });
        one_defined_one_started(round, results, PoolChange::Defined, PoolChange::Started);
        // The work was really done: the pool runs and autostarts.
        let pools = open().list_pools().unwrap();
        let pool = pools
            .iter()
            .find(|p| p.name == cleanup.0[round].1)
            .expect("pool defined");
        assert!(pool.active && pool.autostart, "{pool:?}");
        let _ = std::fs::remove_dir(&dir);
    }
}

#[test]
fn live_racing_first_creates_of_a_network_define_it_once_and_none_fails() {
    let mut cleanup = Cleanup(Vec::new());
    for round in 0..ROUNDS {
        let name = format!("race-net-{}-{round}", std::process::id());
        cleanup.0.push(("net", name.clone()));
        // No address, so no dnsmasq and no subnet that could clash.
        let bridge = format!("brc{}{round}", std::process::id() % 100_000);
        let xml = format!("<network><name>{name}</name><bridge name='{bridge}'/></network>");
        let net = name.clone();
        let results = race(move |conn| {
            let xml = xml.clone();
            conn.ensure_network(&net, move || Ok(xml))
                .map_err(|e| e.message)
        });
        one_defined_one_started(
            round,
            results,
            NetworkChange::Defined,
            NetworkChange::Started,
        );
        let nets = open().list_networks().unwrap();
        let row = nets
            .iter()
            .find(|n| n.name == name)
            .expect("network defined");
        assert!(row.active && row.autostart, "{row:?}");
    }
}
