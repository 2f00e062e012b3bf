//! Every built-in template, rendered with its defaults and with edge-case
//! values, passes libvirt's own schema check (`virt-xml-validate`, from
//! libvirt-clients; the test fails if the tool is missing).

use std::process::Command;

use boxvirt::template::{Catalog, Kind};

fn validate(kind: Kind, label: &str, xml: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.xml");
    std::fs::write(&file, xml).unwrap();
    let schema = match kind {
        Kind::Domain => "domain",
        Kind::Network => "network",
        Kind::Pool => "storagepool",
    };
    let out = Command::new("virt-xml-validate")
        .arg(&file)
        .arg(schema)
        .output()
        .expect("virt-xml-validate must be installed (libvirt-clients); run tests/harness/install-deps.sh");
    assert!(
        out.status.success(),
        "{label} does not validate:\n{}\n{}\n{xml}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sets(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn every_template_validates_with_defaults_and_edge_values() {
    let catalog = Catalog::default();
    let long_name = "n".repeat(64);
    for t in catalog.list().unwrap() {
        validate(
            t.kind,
            &format!("{} (defaults)", t.label()),
            &t.render(&[]).unwrap(),
        );
        let edge = match t.kind {
            Kind::Domain => {
                let mut v = vec![
                    ("name", long_name.as_str()),
                    ("memory", "16"),
                    ("vcpus", "256"),
                    ("accel", "qemu"),
                    ("network", "net_with.dots-and_underscores"),
                    ("mac", "52:54:00:FF:ee:01"),
                ];
                let params = t.parameters();
                if params.contains(&"disk") {
                    v.push(("disk", "/var/lib/libvirt/images/a dir/it's <&> here.qcow2"));
                }
                if params.contains(&"cmdline") {
                    v.push(("cmdline", "console=ttyS0 x=\"a&b\" y='<c>'"));
                    v.push(("kernel", "/boot/vmlinuz & co"));
                    v.push(("initrd", "/boot/initrd'<>.img"));
                    v.push(("serial_log", "/var/log/x&y/<z>.log"));
                }
                sets(&v)
            }
            Kind::Network => sets(&[("name", long_name.as_str()), ("bridge", "virbr-edge_1")]),
            Kind::Pool => sets(&[
                ("name", long_name.as_str()),
                ("path", "/srv/pool & 'images' <x>"),
            ]),
        };
        let xml = t.render(&edge).unwrap();
        validate(t.kind, &format!("{} (edge values)", t.label()), &xml);
        // The values came through escaped, and the rest is untouched.
        assert!(xml.contains(&long_name));
        assert!(
            !xml.contains("<&>") && !xml.contains("'<c>'"),
            "unescaped value in {xml}"
        );
    }
    // Maximum memory too.
    let tiny = catalog.get(Kind::Domain, "tiny").unwrap();
    validate(
        Kind::Domain,
        "tiny max memory",
        &tiny
            .render(&sets(&[("memory", "1048576"), ("accel", "kvm")]))
            .unwrap(),
    );
}

#[test]
fn every_domain_template_with_eight_nics_validates() {
    let catalog = Catalog::default();
    let more: Vec<(String, String)> = (1..8)
        .map(|i| (format!("net-{i}"), format!("52:54:00:00:00:{:02x}", i + 1)))
        .collect();
    for t in catalog.list().unwrap() {
        if t.kind != Kind::Domain {
            continue;
        }
        let first = t.render(&sets(&[("network", "net-0"), ("mac", "52:54:00:00:00:01")]));
        let xml = boxvirt::template::nics::add(&t.label(), &first.unwrap(), &more).unwrap();
        assert_eq!(boxvirt::template::nics::count(&xml), 8, "{xml}");
        validate(Kind::Domain, &format!("{} (8 NICs)", t.label()), &xml);
    }
}
