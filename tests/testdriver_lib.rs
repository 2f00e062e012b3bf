//! Tier 2, library level: several operations on ONE test-driver connection,
//! so state carries from step to step (create, then list; fail, then check
//! that nothing is left).

mod common;

use boxvirt::cli::OutputFormat;
use boxvirt::libvirt::{Libvirt, NetworkChange};
use boxvirt::output::Output;
use boxvirt::template::{Catalog, Kind};
use boxvirt::vm::create::{create, Request, STEPS};
use common::volume_names;

fn open(fixture: &str) -> Libvirt {
    Libvirt::open(&common::test_uri(fixture), "test").unwrap()
}

fn quiet() -> Output {
    Output {
        format: OutputFormat::Table,
        quiet: true,
        verbose: 0,
        columns: None,
    }
}

/// The test driver has no upload streams and there is no internet: a blank
/// disk and no seed (the live tiers cover images and seeds).
fn offline() -> Request {
    Request {
        blank_disk: true,
        no_seed: true,
        ..Default::default()
    }
}

fn reservations(conn: &Libvirt) -> usize {
    boxvirt::xml::find_all(
        &conn.network_xml("default").unwrap(),
        &["network", "ip", "dhcp", "host"],
    )
    .len()
}

fn names(conn: &Libvirt) -> Vec<String> {
    conn.list_domains()
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect()
}

#[test]
fn create_then_list_then_delete_leaves_the_host_as_it_was() {
    let conn = open("node.xml");
    let before = (names(&conn), volume_names(&conn));
    let req = Request {
        template: "rocky9".into(),
        name: Some("r1".into()),
        start: true,
        ..offline()
    };
    let made = create(&conn, &Catalog::default(), &quiet(), &req).unwrap();
    assert_eq!(made.volumes, vec!["r1.qcow2"]);
    assert!(names(&conn).contains(&"r1".to_string()));
    assert!(volume_names(&conn).contains(&"r1.qcow2".to_string()));
    let xml = conn.domain_xml("r1", true).unwrap();
    assert!(
        xml.contains(&format!("<mac address='{}'/>", made.mac.unwrap())),
        "{xml}"
    );
    assert!(
        xml.contains("/r1.qcow2'/>"),
        "disk points at the new volume: {xml}"
    );
    assert_eq!(
        reservations(&conn),
        1,
        "a DHCP host entry for {:?}",
        made.ip
    );
    let meta = conn
        .domain_metadata("r1")
        .unwrap()
        .expect("boxvirt metadata");
    assert!(
        meta.contains("r1.qcow2") && meta.contains("rocky9"),
        "{meta}"
    );
    // What `vm delete` does.
    conn.destroy_domain("r1").unwrap();
    conn.undefine_domain("r1").unwrap();
    let parsed = boxvirt::vm::metadata::VmMetadata::parse(&meta);
    for v in &parsed.volumes {
        assert!(conn.delete_volume(&v.pool, &v.name).unwrap());
    }
    let r = parsed.reservation().unwrap();
    assert!(conn
        .remove_dhcp_host(&r.network, &r.mac, "r1", &r.ip)
        .unwrap());
    assert_eq!(reservations(&conn), 0);
    assert_eq!((names(&conn), volume_names(&conn)), before);
}

#[test]
fn a_failure_after_each_step_rolls_back_everything_this_run_made() {
    // "seed" needs upload streams: covered on the live daemon.
    for step in STEPS.iter().filter(|s| **s != "seed") {
        let conn = open("node.xml");
        let before = (names(&conn), volume_names(&conn), reservations(&conn));
        let req = Request {
            template: "rocky9".into(),
            name: Some("doomed".into()),
            start: true,
            fail_after: Some(step.to_string()),
            ..offline()
        };
        let err = create(&conn, &Catalog::default(), &quiet(), &req).unwrap_err();
        assert!(
            err.message.contains(&format!("after step '{step}'")),
            "{}",
            err.message
        );
        assert!(err.message.contains("rolled back"), "{}", err.message);
        assert!(!err.message.contains("could NOT"), "{}", err.message);
        assert_eq!(
            (names(&conn), volume_names(&conn), reservations(&conn)),
            before,
            "after failing at {step}"
        );
    }
}

#[test]
fn a_missing_network_is_caught_before_anything_is_made() {
    let conn = open("node.xml");
    let before = (names(&conn), volume_names(&conn));
    // A network that existed and was deleted: caught by the pre-checks.
    conn.ensure_network("isolated", || {
        Catalog::default()
            .get(Kind::Network, "isolated")?
            .render(&[])
    })
    .unwrap();
    conn.delete_network("isolated").unwrap();
    let req = Request {
        template: "rocky9".into(),
        name: Some("nonet".into()),
        networks: vec!["isolated".into()],
        start: true,
        ..offline()
    };
    let err = create(&conn, &Catalog::default(), &quiet(), &req).unwrap_err();
    assert_eq!(err.exit, boxvirt::error::Exit::NotFound, "{}", err.message);
    assert_eq!((names(&conn), volume_names(&conn)), before);
}

#[test]
fn net_ensure_is_idempotent_and_says_what_it_changed() {
    let conn = open("empty.xml");
    let tpl = || {
        Catalog::default()
            .get(Kind::Network, "default")?
            .render(&[])
    };
    let first = conn.ensure_network("default", tpl).unwrap();
    assert_eq!(
        first,
        vec![
            NetworkChange::Defined,
            NetworkChange::Started,
            NetworkChange::AutostartSet
        ]
    );
    assert!(conn.ensure_network("default", tpl).unwrap().is_empty());
    let s = conn.network_summary("default").unwrap().unwrap();
    assert!(s.active && s.autostart && s.persistent);
    conn.delete_network("default").unwrap();
    assert!(conn.network_summary("default").unwrap().is_none());
}

#[test]
fn pool_is_created_from_the_template_when_missing() {
    let conn = open("empty.xml");
    conn.ensure_network("default", || {
        Catalog::default()
            .get(Kind::Network, "default")?
            .render(&[])
    })
    .unwrap();
    let req = Request {
        template: "debian12".into(),
        name: Some("d1".into()),
        disk_gib: Some(3),
        ..offline()
    };
    create(&conn, &Catalog::default(), &quiet(), &req).unwrap();
    let vols = conn.list_volumes("default").unwrap();
    assert_eq!(vols.len(), 1);
    assert_eq!(vols[0].capacity_bytes, 3 * 1024 * 1024 * 1024);
}

/// On a network with a block of address slots, each VM takes a free slot's
/// MAC; the network's XML never changes; a full block is exit 4 naming the
/// network and its size, with nothing left; an undefined VM's slot is free.
#[test]
fn vms_take_free_slots_and_a_full_block_is_a_conflict() {
    use boxvirt::vm::slots;
    let conn = open("empty.xml");
    conn.ensure_network("default", || {
        let xml = Catalog::default()
            .get(Kind::Network, "default")?
            .render(&[])?;
        Ok(slots::with_block("default", &xml, Some(2))?.unwrap().0)
    })
    .unwrap();
    let net_xml = conn.network_xml("default").unwrap();
    let block = slots::block(&net_xml).unwrap();
    let make = |name: &str| {
        let req = Request {
            template: "rocky9".into(),
            name: Some(name.into()),
            ..offline()
        };
        create(&conn, &Catalog::default(), &quiet(), &req)
    };
    let a = make("s1").unwrap();
    let b = make("s2").unwrap();
    for made in [&a, &b] {
        let slot = block
            .slots
            .iter()
            .find(|s| Some(&s.mac) == made.mac.as_ref())
            .expect("a slot MAC");
        assert_eq!(made.ip, Some(slot.ip.to_string()));
    }
    assert_ne!(a.mac, b.mac);
    let before = (names(&conn), volume_names(&conn));
    let full = make("s3").unwrap_err();
    assert_eq!(full.exit, boxvirt::error::Exit::Conflict);
    assert!(
        full.message
            .contains("all 2 address slots of network 'default'"),
        "{}",
        full.message
    );
    assert_eq!((names(&conn), volume_names(&conn)), before);
    // Rolled back after the define: the slot is not kept.
    conn.destroy_domain("s2").unwrap();
    conn.undefine_domain("s2").unwrap();
    conn.delete_volume("default", "s2.qcow2").unwrap();
    for step in ["define", "metadata"] {
        let req = Request {
            template: "rocky9".into(),
            name: Some("s4".into()),
            fail_after: Some(step.into()),
            ..offline()
        };
        create(&conn, &Catalog::default(), &quiet(), &req).unwrap_err();
        assert!(!names(&conn).contains(&"s4".to_string()));
    }
    let c = make("s4").unwrap();
    assert_eq!(c.mac, b.mac, "the freed slot is the only free one");
    assert_eq!(conn.network_xml("default").unwrap(), net_xml);
}
