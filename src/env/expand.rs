//! VM groups to VMs: `count: N` makes NAME-1..NAME-N, each with the group's
//! values over `defaults:`. Counts out of range, names invalid after
//! expansion and names used twice are errors at their line in the file.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::file::{EnvFile, Source, VmGroup};
use super::locate::{self, Seg};
use crate::error::Result;
use crate::yaml_path;

/// The most VMs one group may make.
pub const MAX_COUNT: u32 = 100;

/// One VM as the file wants it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmSpec {
    pub name: String,
    /// Index of its group in `vms:` (for messages).
    #[serde(skip)]
    pub group: usize,
    /// The `hosts:` key it is pinned to.
    pub host: Option<String>,
    pub template: String,
    pub memory_mib: u64,
    pub vcpus: Option<u32>,
    pub disk_size_gib: Option<u64>,
    pub image: Option<String>,
    pub networks: Vec<String>,
    pub user_data: Option<PathBuf>,
    /// sha256 of the user-data file, so an edited file reads as a change.
    pub user_data_digest: Option<String>,
    pub ssh_keys: Vec<PathBuf>,
}

impl VmSpec {
    /// The fields that, when they differ from what a VM was made with, make
    /// it "needs replace". apply records exactly these in the domain.
    pub fn config(&self) -> BTreeMap<String, String> {
        let mut c = BTreeMap::new();
        c.insert("template".to_string(), self.template.clone());
        c.insert("memory".to_string(), self.memory_mib.to_string());
        let mut put = |key: &str, value: Option<String>| {
            if let Some(v) = value {
                c.insert(key.to_string(), v);
            }
        };
        put("vcpus", self.vcpus.map(|v| v.to_string()));
        put("disk_size", self.disk_size_gib.map(|v| v.to_string()));
        put("image", self.image.clone());
        put(
            "networks",
            (!self.networks.is_empty()).then(|| self.networks.join(",")),
        );
        put("user_data", self.user_data_digest.clone());
        c
    }
}

/// The VMs of the file, in file order (group by group, 1..N within one).
/// `memory_of` gives a template's own memory for groups that set none.
pub fn expand(
    src: &Source,
    file: &EnvFile,
    memory_of: &dyn Fn(&str) -> u64,
) -> Result<Vec<VmSpec>> {
    let mut vms = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, group) in file.vms.iter().enumerate() {
        let user_data_digest = user_data_digest(src, file, i)?;
        for name in names(src, group, i)? {
            if let Some(first) = seen.insert(name.clone(), i) {
                return Err(duplicate(src, &name, first, i));
            }
            vms.push(spec(src, file, i, name, memory_of, &user_data_digest));
        }
    }
    Ok(vms)
}

/// The group's names: NAME, or NAME-1..NAME-N with `count: N`.
fn names(src: &Source, group: &VmGroup, i: usize) -> Result<Vec<String>> {
    let names = match group.count {
        None => vec![group.name.clone()],
        Some(n) if n == 0 || n > MAX_COUNT => {
            return Err(src.error_at(
                &yaml_path!["vms", i, "count"],
                format!(
                    "count {n} for vm '{}' is out of range; use 1 to {MAX_COUNT}",
                    group.name
                ),
            ))
        }
        Some(n) => (1..=n).map(|k| format!("{}-{k}", group.name)).collect(),
    };
    for name in &names {
        crate::names::validate("vm", name)
            .map_err(|f| src.error_at(&yaml_path!["vms", i, "name"], f.message))?;
    }
    Ok(names)
}

fn duplicate(src: &Source, name: &str, first: usize, again: usize) -> crate::error::Failure {
    let first_at = match locate::locate(&src.text, &yaml_path!["vms", first, "name"]) {
        Some((line, _)) => format!("vms[{first}] at line {line}"),
        None => format!("vms[{first}]"),
    };
    let what = if first == again {
        format!("vm name '{name}' comes out twice")
    } else {
        format!("vm name '{name}' is also made by {first_at}")
    };
    src.error_at(
        &yaml_path!["vms", again, "name"],
        format!("{what}; VM names must be unique after count is expanded"),
    )
}

/// Group value, else the default.
fn spec(
    src: &Source,
    file: &EnvFile,
    i: usize,
    name: String,
    memory_of: &dyn Fn(&str) -> u64,
    user_data_digest: &Option<String>,
) -> VmSpec {
    let g = &file.vms[i];
    let d = &file.defaults;
    let template = g
        .template
        .clone()
        .or_else(|| d.template.clone())
        .unwrap_or_default();
    VmSpec {
        name,
        group: i,
        host: g.host.clone(),
        memory_mib: g
            .memory
            .or(d.memory)
            .unwrap_or_else(|| memory_of(&template)),
        template,
        vcpus: g.vcpus.or(d.vcpus),
        disk_size_gib: g.disk_size.or(d.disk_size),
        image: g.image.clone().or_else(|| d.image.clone()),
        networks: g
            .networks
            .clone()
            .or_else(|| d.networks.clone())
            .unwrap_or_default(),
        user_data: g
            .user_data
            .as_ref()
            .or(d.user_data.as_ref())
            .map(|p| src.resolve(p)),
        user_data_digest: user_data_digest.clone(),
        ssh_keys: g
            .ssh_keys
            .clone()
            .or_else(|| d.ssh_keys.clone())
            .unwrap_or_default()
            .iter()
            .map(|p| src.resolve(p))
            .collect(),
    }
}

/// Where group `i` takes a field from: its own key, else `defaults:`.
pub fn field_path(file: &EnvFile, i: usize, key: &str) -> Vec<Seg> {
    let own = |g: &VmGroup| match key {
        "template" => g.template.is_some(),
        "networks" => g.networks.is_some(),
        "user_data" => g.user_data.is_some(),
        "ssh_keys" => g.ssh_keys.is_some(),
        _ => true,
    };
    if file.vms.get(i).is_some_and(own) {
        yaml_path!["vms", i, key].to_vec()
    } else {
        yaml_path!["defaults", key].to_vec()
    }
}

/// sha256 of the group's user-data file; unreadable is an error at its line.
fn user_data_digest(src: &Source, file: &EnvFile, i: usize) -> Result<Option<String>> {
    let g = &file.vms[i];
    let Some(path) = g.user_data.as_ref().or(file.defaults.user_data.as_ref()) else {
        return Ok(None);
    };
    let full = src.resolve(path);
    let bytes = std::fs::read(&full).map_err(|e| {
        src.error_at(
            &field_path(file, i, "user_data"),
            format!("cannot read user-data {}: {e}", full.display()),
        )
    })?;
    Ok(Some(hex::encode(Sha256::digest(bytes))[..16].to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Result<Vec<VmSpec>> {
        let src = Source::from_text("lab.yaml".into(), fixtures(), text.into());
        let file = src.parse().unwrap();
        expand(&src, &file, &|t| if t == "tiny" { 256 } else { 1024 })
    }

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/env")
    }

    fn names_of(vms: &[VmSpec]) -> Vec<&str> {
        vms.iter().map(|v| v.name.as_str()).collect()
    }

    #[test]
    fn count_makes_numbered_names_in_file_order() {
        let vms = run("name: lab\ndefaults: {template: tiny}\nvms:\n  - name: ctrl\n  - name: node\n    count: 3\n  - {name: one, count: 1}\n").unwrap();
        assert_eq!(
            names_of(&vms),
            ["ctrl", "node-1", "node-2", "node-3", "one-1"]
        );
        assert_eq!(vms[2].group, 1);
    }

    #[test]
    fn group_values_win_over_defaults_and_the_template() {
        let vms = run("name: lab\ndefaults: {template: debian12, memory: 2048, vcpus: 2, networks: [mgmt]}\nvms:\n  - {name: a}\n  - {name: b, memory: 512, networks: [data], template: tiny}\n  - {name: c, template: tiny}\n").unwrap();
        assert_eq!((vms[0].memory_mib, vms[0].vcpus), (2048, Some(2)));
        assert_eq!(vms[0].networks, ["mgmt"]);
        assert_eq!((vms[1].memory_mib, vms[1].template.as_str()), (512, "tiny"));
        assert_eq!(vms[1].networks, ["data"]);
        assert_eq!(vms[2].memory_mib, 2048);
        let vms = run("name: lab\nvms:\n  - {name: c, template: tiny}\n").unwrap();
        assert_eq!(vms[0].memory_mib, 256, "the template's own memory");
    }

    #[test]
    fn counts_out_of_range_are_errors_at_the_count() {
        for (count, col) in [("0", 12), ("101", 12)] {
            let text = format!("name: lab\nvms:\n  - name: node\n    count: {count}\n");
            let e = run(&text).unwrap_err();
            assert_eq!(e.exit, crate::error::Exit::Usage);
            assert_eq!(
                e.message,
                format!(
                    "lab.yaml:4:{col}: count {count} for vm 'node' is out of range; use 1 to 100"
                )
            );
        }
        run("name: lab\nvms:\n  - {name: node, count: 100, template: tiny}\n").unwrap();
    }

    #[test]
    fn duplicates_after_expansion_name_both_places() {
        let e =
            run("name: lab\nvms:\n  - name: node\n    count: 3\n  - name: node-2\n").unwrap_err();
        assert_eq!(
            e.message,
            "lab.yaml:5:11: vm name 'node-2' is also made by vms[0] at line 3; VM names must be unique after count is expanded"
        );
        let e = run("name: lab\nvms:\n  - name: a\n  - name: a\n").unwrap_err();
        assert!(
            e.message
                .starts_with("lab.yaml:4:11: vm name 'a' is also made by vms[0] at line 3"),
            "{}",
            e.message
        );
    }

    #[test]
    fn names_invalid_after_expansion_are_errors_at_the_name() {
        let long = "x".repeat(63);
        let e = run(&format!(
            "name: lab\nvms:\n  - name: {long}\n    count: 2\n"
        ))
        .unwrap_err();
        assert!(
            e.message.starts_with(&format!(
                "lab.yaml:3:11: invalid vm name \"{long}-1\": it is longer than 64"
            )),
            "{}",
            e.message
        );
        let e = run("name: lab\nvms:\n  - name: \"a b\"\n").unwrap_err();
        assert!(
            e.message
                .starts_with("lab.yaml:3:11: invalid vm name \"a b\""),
            "{}",
            e.message
        );
    }

    #[test]
    fn user_data_is_read_from_the_files_directory() {
        let vms =
            run("name: lab\nvms:\n  - {name: a, template: tiny, user_data: node.yaml}\n").unwrap();
        assert_eq!(vms[0].user_data, Some(fixtures().join("node.yaml")));
        assert_eq!(vms[0].user_data_digest.as_ref().map(String::len), Some(16));
        assert!(vms[0].config().contains_key("user_data"));
        let e =
            run("name: lab\ndefaults: {user_data: nope.yaml}\nvms:\n  - {name: a}\n").unwrap_err();
        assert!(
            e.message
                .starts_with("lab.yaml:2:23: cannot read user-data "),
            "{}",
            e.message
        );
    }

    #[test]
    fn config_holds_what_was_set() {
        let vms =
            run("name: lab\nvms:\n  - {name: a, template: tiny, vcpus: 2, networks: [x, y]}\n")
                .unwrap();
        let c = vms[0].config();
        assert_eq!(c["template"], "tiny");
        assert_eq!(c["memory"], "256");
        assert_eq!(c["vcpus"], "2");
        assert_eq!(c["networks"], "x,y");
        assert!(!c.contains_key("disk_size") && !c.contains_key("image"));
    }
}
