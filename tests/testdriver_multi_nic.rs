//! Tier 2, several NICs per VM on ONE in-process test-driver host
//! (`test:///default`, whose state lasts for the process): the domain XML
//! and metadata of a VM on two networks, a NIC list change that needs
//! replace, `--replace` runs that fail at a step and keep the old VM as it
//! was, the one that succeeds, and destroy leaving no slot or reservation.

mod common;

use boxvirt::cli::GlobalArgs;
use boxvirt::context::Ctx;
use boxvirt::env::{self, apply, destroy, hosts, observe, outcome::Outcome, plan, refuse};
use boxvirt::libvirt::Libvirt;
use boxvirt::settings::{Settings, Sources};
use boxvirt::template::Kind;
use boxvirt::vm::metadata::VmMetadata;
use boxvirt::vm::nic_addresses;

fn ctx_in(dir: &std::path::Path) -> Ctx {
    let flags = GlobalArgs {
        connect: Some("test:///default".into()),
        ..Default::default()
    };
    let src = Sources {
        cwd: dir.to_path_buf(),
        ..Default::default()
    };
    Ctx::new(Settings::resolve(&flags, &src).unwrap())
}

/// The DHCP host entries of a network: (mac, ip).
fn hosts_of(conn: &Libvirt, net: &str) -> Vec<(String, String)> {
    boxvirt::xml::find_all(
        &conn.network_xml(net).unwrap(),
        &["network", "ip", "dhcp", "host"],
    )
    .into_iter()
    .map(|h| {
        (
            h.attr("mac").unwrap().to_ascii_lowercase(),
            h.attr("ip").unwrap().to_string(),
        )
    })
    .collect()
}

fn domain_names(conn: &Libvirt) -> Vec<String> {
    let mut n: Vec<String> = conn
        .list_domains()
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    n.sort();
    n
}

/// (network, mac) of each interface of `vm`, in order.
fn nics(conn: &Libvirt, vm: &str) -> Vec<(Option<String>, String)> {
    nic_addresses::interfaces(&conn.domain_xml(vm, true).unwrap())
}

fn meta(conn: &Libvirt, vm: &str) -> VmMetadata {
    VmMetadata::parse(&conn.domain_metadata(vm).unwrap().unwrap())
}

#[test]
fn two_nics_then_a_safe_replace_of_the_nic_list_then_destroy() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ctx_in(dir.path());
    let conn = ctx.libvirt().unwrap();
    conn.ensure_pool("default", || {
        ctx.catalog.get(Kind::Pool, "default")?.render(&[])
    })
    .unwrap();
    for v in ["tiny-0123456789ab.vmlinuz", "tiny-0123456789ab.initrd"] {
        conn.create_volume("default", v, 1 << 20, "raw").unwrap();
    }
    let default_before = hosts_of(&conn, "default");
    let file = dir.path().join("boxvirt.yaml");
    let text = |nets: &str| {
        format!("name: mn\nnetworks:\n  default: {{template: default}}\n  mn-a: {{template: isolated, cidr: 10.41.0.0/24}}\n  mn-b: {{template: isolated, cidr: 10.42.0.0/24}}\ndefaults: {{template: tiny}}\nvms:\n  - {{name: mn-duo, networks: [{nets}]}}\n")
    };
    let load = |nets: &str| {
        std::fs::write(&file, text(nets)).unwrap();
        env::load(&file, &ctx.catalog).unwrap()
    };
    let targets_of = |d: &env::Desired| hosts::targets(d, &ctx.settings);
    let plan_of = |d: &env::Desired| {
        plan::plan(
            d,
            &observe::observe_all(&targets_of(d)),
            plan::Options::default(),
        )
        .unwrap()
    };
    let apply_with = |d: &env::Desired, replace: bool, inject: Option<&str>| -> Vec<Outcome> {
        let p = plan_of(d);
        refuse::refusals(&p, replace).unwrap();
        let opts = apply::Options {
            parallel: 2,
            no_seed: true,
            start: true,
            replace,
            inject: inject.map(str::to_string),
            ..Default::default()
        };
        apply::apply(&ctx, d, &targets_of(d), &p, &opts).unwrap()
    };

    // 1. On mn-a (boxvirt's network: a slot) and default (made before
    //    boxvirt: a live reservation), one NIC each, mn-a's the primary.
    let first = load("mn-a, default");
    let made = apply_with(&first, false, None);
    assert!(made.iter().all(|o| o.error.is_none()), "{made:?}");
    let old_nics = nics(&conn, "mn-duo");
    assert_eq!(
        old_nics
            .iter()
            .map(|n| n.0.clone().unwrap())
            .collect::<Vec<_>>(),
        ["mn-a", "default"]
    );
    let old_meta = meta(&conn, "mn-duo");
    assert_eq!(old_meta.reservations.len(), 2, "{old_meta:?}");
    let (slot, live) = (&old_meta.reservations[0], &old_meta.reservations[1]);
    assert!(slot.slot && slot.network == "mn-a" && slot.ip.starts_with("10.41.0."));
    assert!(!live.slot && live.network == "default");
    assert_eq!(slot.mac, old_nics[0].1);
    assert_eq!(
        live.mac,
        boxvirt::vm::identity::nic_mac("mn-duo", "default", 1)
    );
    assert!(hosts_of(&conn, "default").contains(&(live.mac.clone(), live.ip.clone())));
    // The summary's ip is the primary's.
    let row = made.iter().find(|o| o.name == "mn-duo").unwrap();
    assert_eq!(row.ip.as_deref(), Some(slot.ip.as_str()));

    // 2. Another NIC list: "needs replace", refused without --replace.
    let second = load("mn-a, mn-b");
    let p = plan_of(&second);
    let change = p.hosts[0]
        .actions
        .iter()
        .find(|a| a.name == "mn-duo")
        .unwrap();
    assert_eq!(change.action, plan::Verb::Change);
    assert!(
        change.detail.contains("networks mn-a,default -> mn-a,mn-b"),
        "{}",
        change.detail
    );
    assert!(refuse::refusals(&p, false).is_err());

    // 3. A replace that fails while the new VM is made, or right after it
    //    took the name: the old VM is back as it was, running, and nothing
    //    of the new one is left.
    let before = (domain_names(&conn), common::volume_names(&conn));
    for step in ["define", "metadata", "swap"] {
        let out = apply_with(&second, true, Some(step));
        let row = out.iter().find(|o| o.name == "mn-duo").unwrap();
        let err = row.error.as_deref().unwrap_or_default();
        assert!(
            err.contains(&format!("after step '{step}'")),
            "{step}: {err}"
        );
        assert!(err.contains("the old vm was kept"), "{step}: {err}");
        assert_eq!(row.state, "failed (the old vm was kept)", "{step}");
        assert_eq!(nics(&conn, "mn-duo"), old_nics, "{step}");
        assert_eq!(meta(&conn, "mn-duo"), old_meta, "{step}");
        assert!(conn.domain_summary("mn-duo").unwrap().state.is_active());
        assert_eq!(
            (domain_names(&conn), common::volume_names(&conn)),
            before,
            "{step}"
        );
        assert!(hosts_of(&conn, "default").contains(&(live.mac.clone(), live.ip.clone())));
        assert!(hosts_of(&conn, "mn-b")
            .iter()
            .all(|(m, _)| m.starts_with("52:54:b0:")));
    }

    // 4. The replace that works: the new NICs, the old one's live
    //    reservation released, no temporary name left; the VM ran, so it runs.
    let out = apply_with(&second, true, None);
    let row = out.iter().find(|o| o.name == "mn-duo").unwrap();
    assert!(row.error.is_none(), "{row:?}");
    assert_eq!((row.action, row.state.as_str()), ("replaced", "running"));
    assert_eq!(
        nics(&conn, "mn-duo")
            .iter()
            .map(|n| n.0.clone().unwrap())
            .collect::<Vec<_>>(),
        ["mn-a", "mn-b"]
    );
    assert_eq!(domain_names(&conn), before.0);
    assert_eq!(hosts_of(&conn, "default"), default_before);
    let new_meta = meta(&conn, "mn-duo");
    assert!(new_meta.reservations.iter().all(|r| r.slot));
    assert_eq!(new_meta.reservations[1].network, "mn-b");
    assert!(plan_of(&second).is_converged());
    // Nothing of it counts as a leftover.
    assert!(boxvirt::vm::leftovers::find(&conn, None)
        .unwrap()
        .is_empty());

    // 5. Destroy: its VM and networks; 'default' as it was.
    let targets = targets_of(&second);
    let conns: Vec<_> = targets
        .iter()
        .map(observe::connect)
        .collect::<Result<_, _>>()
        .unwrap();
    let vm_names: Vec<String> = second.vms.iter().map(|v| v.name.clone()).collect();
    let found = destroy::find("mn", &vm_names, &conns).unwrap();
    let gone = destroy::destroy(&ctx, &targets, &conns, &found, 2);
    assert!(gone.iter().all(|o| o.error.is_none()), "{gone:?}");
    assert!(!domain_names(&conn).iter().any(|n| n.starts_with("mn-")));
    assert_eq!(hosts_of(&conn, "default"), default_before);
}

#[test]
fn a_failure_after_each_step_rolls_back_every_nics_address() {
    use boxvirt::output::Output;
    use boxvirt::template::Catalog;
    use boxvirt::vm::create::{create, Request, STEPS};
    use boxvirt::vm::slots;

    // A host of its own: node.xml's 'default' (no block: live
    // reservations) and a network with a block of 4 slots.
    let conn = Libvirt::open(&common::test_uri("node.xml"), "test").unwrap();
    conn.ensure_network("fx-slots", || {
        let xml = Catalog::default()
            .get(Kind::Network, "isolated")?
            .render(&[("name".into(), "fx-slots".into())])?;
        Ok(slots::with_block("fx-slots", &xml, Some(4))?.unwrap().0)
    })
    .unwrap();
    let quiet = Output {
        format: boxvirt::cli::OutputFormat::Table,
        quiet: true,
        verbose: 0,
        columns: None,
    };
    let state = |conn: &Libvirt| {
        (
            domain_names(conn),
            common::volume_names(conn),
            hosts_of(conn, "default"),
            hosts_of(conn, "fx-slots"),
            conn.interface_macs().unwrap().0,
        )
    };
    let before = state(&conn);
    // "seed" needs upload streams: covered on the live daemon.
    for step in STEPS.iter().filter(|s| **s != "seed") {
        let req = Request {
            template: "rocky9".into(),
            name: Some("fx-duo".into()),
            networks: vec!["fx-slots".into(), "default".into()],
            start: true,
            blank_disk: true,
            no_seed: true,
            fail_after: Some(step.to_string()),
            ..Default::default()
        };
        let err = create(&conn, &Catalog::default(), &quiet, &req).unwrap_err();
        assert!(
            err.message.contains("rolled back"),
            "{step}: {}",
            err.message
        );
        assert!(
            !err.message.contains("could NOT"),
            "{step}: {}",
            err.message
        );
        assert_eq!(state(&conn), before, "after failing at {step}");
    }
    // And without a failure: two interfaces, two addresses, in order.
    let req = Request {
        template: "rocky9".into(),
        name: Some("fx-duo".into()),
        networks: vec!["fx-slots".into(), "default".into()],
        blank_disk: true,
        no_seed: true,
        ..Default::default()
    };
    let made = create(&conn, &Catalog::default(), &quiet, &req).unwrap();
    let got = nics(&conn, "fx-duo");
    assert_eq!(
        got,
        made.nics
            .iter()
            .map(|n| (Some(n.network.clone()), n.mac.clone()))
            .collect::<Vec<_>>()
    );
    assert!(made.nics[0].mac.starts_with(slots::OUI), "{made:?}");
    let live = &made.nics[1];
    assert!(hosts_of(&conn, "default").contains(&(live.mac.clone(), live.ip.clone().unwrap())));
}
