//! Merging a user's #cloud-config into boxvirt's.
//!
//! Rules (documented for `--user-data`):
//! - mappings merge key by key, recursively;
//! - lists are concatenated, boxvirt's items first (runcmd, packages,
//!   bootcmd, ssh_authorized_keys, ...); in `users`, an entry whose `name`
//!   matches one of boxvirt's merges into it (so extra keys or groups for the
//!   default user work), other entries are appended;
//! - a single value where boxvirt has a list is appended to it (`users:
//!   default`, or a comma-separated list of names for `users`/`groups`);
//! - for any other value the user's wins, except what boxvirt owns for the
//!   VM's identity: `hostname`, `fqdn`, `prefer_fqdn_over_hostname`,
//!   `preserve_hostname`, `ssh_deletekeys` and the ed25519 entries of
//!   `ssh_keys` (the host key boxvirt pins); the user's values there are
//!   ignored;
//! - an empty value (`key:` alone) changes nothing.

use serde_norway::{Mapping, Value};

use crate::error::{Failure, Result};

const OWNED: &[&str] = &[
    "hostname",
    "fqdn",
    "prefer_fqdn_over_hostname",
    "preserve_hostname",
    "ssh_deletekeys",
    "ssh_keys.ed25519_private",
    "ssh_keys.ed25519_public",
    "ssh_keys.ed25519_certificate",
];

/// Lists whose string form cloud-init splits at commas.
const NAME_LISTS: &[&str] = &["users", "groups"];

/// Parses a #cloud-config document (YAML; `<<` merge keys applied like
/// PyYAML does). Errors are one line naming `source`, line and column.
pub fn parse_cloud_config(text: &str, source: &str) -> Result<Mapping> {
    let mut value: Value = serde_norway::from_str(text).map_err(|e| {
        let msg = e.to_string();
        // The library appends "at line L column C" itself; we lead with it.
        let what = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        match e.location() {
            Some(at) => Failure::usage(format!(
                "{source} line {}, column {}: invalid YAML: {what}",
                at.line(),
                at.column()
            )),
            None => Failure::usage(format!("{source}: invalid YAML: {msg}")),
        }
    })?;
    value
        .apply_merge()
        .map_err(|e| Failure::usage(format!("{source}: invalid YAML merge key (<<): {e}")))?;
    match value {
        Value::Null => Ok(Mapping::new()),
        Value::Mapping(m) => Ok(m),
        other => Err(Failure::usage(format!(
            "{source}: a #cloud-config must be a mapping of keys (like 'packages: [...]'), not {}",
            kind(&other)
        ))),
    }
}

/// `theirs` merged into `ours` by the rules above; `source` names the user's
/// file in errors.
pub fn merge(mut ours: Mapping, theirs: Mapping, source: &str) -> Result<Mapping> {
    merge_map(&mut ours, theirs, "", source)?;
    Ok(ours)
}

fn merge_map(ours: &mut Mapping, theirs: Mapping, path: &str, source: &str) -> Result<()> {
    for (k, v) in theirs {
        let key_path = match k.as_str() {
            Some(name) if path.is_empty() => name.to_string(),
            Some(name) => format!("{path}.{name}"),
            None => format!("{path}.?"),
        };
        if OWNED.contains(&key_path.as_str()) {
            continue;
        }
        match ours.get_mut(&k) {
            None => {
                ours.insert(k, v);
            }
            Some(mine) => merge_value(mine, v, &key_path, source)?,
        }
    }
    Ok(())
}

fn merge_value(mine: &mut Value, theirs: Value, path: &str, source: &str) -> Result<()> {
    match (mine, theirs) {
        (_, Value::Null) => {}
        (Value::Mapping(a), Value::Mapping(b)) => merge_map(a, b, path, source)?,
        (Value::Sequence(a), Value::Sequence(b)) if path == "users" => {
            for entry in b {
                merge_user(a, entry, source)?;
            }
        }
        (Value::Sequence(a), Value::Sequence(b)) => a.extend(b),
        (Value::Sequence(a), Value::String(names)) if NAME_LISTS.contains(&path) => {
            a.extend(
                names
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(|n| Value::String(n.to_string())),
            );
        }
        (Value::Sequence(_), b @ Value::Mapping(_)) | (Value::Mapping(_), b) => {
            return Err(Failure::usage(format!(
                "{source}: '{path}' is {}, but boxvirt's cloud-config has a {} there; write it as one",
                kind(&b),
                if b.is_mapping() { "list" } else { "mapping" }
            )))
        }
        (Value::Sequence(a), b) if path == "users" => merge_user(a, b, source)?,
        (Value::Sequence(a), b) => a.push(b),
        (mine, b) => *mine = b,
    }
    Ok(())
}

/// One entry of the user's `users` list: merged into boxvirt's entry of the
/// same name, else appended (an identical string such as "default" once).
fn merge_user(users: &mut Vec<Value>, entry: Value, source: &str) -> Result<()> {
    if !(entry.is_string() || entry.is_mapping()) {
        return Err(Failure::usage(format!(
            "{source}: an entry of 'users' is {}; write a user name or a mapping with name:",
            kind(&entry)
        )));
    }
    let name_of = |v: &Value| v.get("name").and_then(Value::as_str).map(str::to_string);
    if let (Some(name), Value::Mapping(fields)) = (name_of(&entry), &entry) {
        if let Some(Value::Mapping(mine)) = users
            .iter_mut()
            .find(|u| name_of(u).as_deref() == Some(name.as_str()))
        {
            return merge_map(mine, fields.clone(), &format!("users[{name}]"), source);
        }
    }
    if !(entry.is_string() && users.contains(&entry)) {
        users.push(entry);
    }
    Ok(())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Mapping {
        parse_cloud_config(text, "f").unwrap()
    }

    fn ours() -> Mapping {
        doc("hostname: vm1\nusers:\n- name: boxvirt\n  shell: /bin/sh\n  ssh_authorized_keys: [k1]\nssh_keys:\n  ed25519_private: P\n  ed25519_public: Q\nssh_deletekeys: true\nbootcmd: [[sh, -c, x]]\n")
    }

    #[test]
    fn maps_recurse_lists_concatenate_user_scalars_win() {
        let theirs = doc(
            "#cloud-config\npackages: [git]\nbootcmd: [echo hi]\nruncmd:\n- [touch, /x]\nusers:\n- default\n- name: boxvirt\n  shell: /bin/bash\n  groups: [docker]\n  ssh_authorized_keys: [k2]\n- name: alice\nssh_keys:\n  rsa_private: R\nwrite_files:\n- path: /etc/x\n  content: y\n",
        );
        let merged = merge(ours(), theirs, "f").unwrap();
        let want = doc(
            "hostname: vm1\nusers:\n- name: boxvirt\n  shell: /bin/bash\n  ssh_authorized_keys: [k1, k2]\n  groups: [docker]\n- default\n- name: alice\nssh_keys:\n  ed25519_private: P\n  ed25519_public: Q\n  rsa_private: R\nssh_deletekeys: true\nbootcmd: [[sh, -c, x], echo hi]\npackages: [git]\nruncmd:\n- [touch, /x]\nwrite_files:\n- path: /etc/x\n  content: y\n",
        );
        assert_eq!(merged, want);
    }

    #[test]
    fn users_entries_that_are_neither_names_nor_mappings_are_refused() {
        for text in ["users: 5\n", "users: [default, 7]\n", "users: [[a]]\n"] {
            let err = merge(ours(), doc(text), "f").unwrap_err();
            assert!(
                err.message.contains("an entry of 'users' is a"),
                "{text}: {}",
                err.message
            );
        }
    }

    #[test]
    fn identity_keys_stay_boxvirts() {
        let theirs = doc("hostname: other\nfqdn: o.example\npreserve_hostname: true\nssh_deletekeys: false\nssh_keys:\n  ed25519_private: X\n  ed25519_public: Y\n");
        let merged = merge(ours(), theirs, "f").unwrap();
        assert_eq!(merged.get("hostname").and_then(Value::as_str), Some("vm1"));
        assert!(merged.get("fqdn").is_none() && merged.get("preserve_hostname").is_none());
        assert_eq!(merged.get("ssh_deletekeys"), Some(&Value::Bool(true)));
        assert_eq!(merged["ssh_keys"]["ed25519_private"].as_str(), Some("P"));
        assert_eq!(merged["ssh_keys"]["ed25519_public"].as_str(), Some("Q"));
    }

    #[test]
    fn single_values_join_lists_and_empty_values_change_nothing() {
        let merged = merge(
            ours(),
            doc("users: default, bob\nbootcmd:\nssh_keys:\n"),
            "f",
        )
        .unwrap();
        assert_eq!(merged["users"].as_sequence().unwrap().len(), 3);
        assert_eq!(merged["users"][2].as_str(), Some("bob"));
        assert_eq!(merged["bootcmd"], ours()["bootcmd"]);
        assert_eq!(merged["ssh_keys"], ours()["ssh_keys"]);
        let err = merge(ours(), doc("ssh_keys: [a]\n"), "f")
            .unwrap_err()
            .message;
        assert_eq!(
            err,
            "f: 'ssh_keys' is a list, but boxvirt's cloud-config has a mapping there; write it as one"
        );
        let err = merge(ours(), doc("users: {name: x}\n"), "f")
            .unwrap_err()
            .message;
        assert!(
            err.contains("'users' is a mapping") && err.contains("has a list"),
            "{err}"
        );
    }

    #[test]
    fn invalid_yaml_names_file_line_and_column() {
        let err = parse_cloud_config(
            "#cloud-config\npackages: [git\nruncmd: []\n",
            "user-data file /tmp/u.yaml",
        )
        .unwrap_err();
        assert!(
            err.message
                .starts_with("user-data file /tmp/u.yaml line 3, column "),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("invalid YAML") && !err.message.contains('\n'),
            "{}",
            err.message
        );
        let err = parse_cloud_config("#cloud-config\na: 1\n\tb: 2\n", "u")
            .unwrap_err()
            .message;
        assert!(err.starts_with("u line 3, column "), "{err}");
        let err = parse_cloud_config("#cloud-config\n- a\n", "u")
            .unwrap_err()
            .message;
        assert!(
            err.contains("must be a mapping") && err.contains("not a list"),
            "{err}"
        );
        assert!(parse_cloud_config("#cloud-config\n# only comments\n", "u")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn yaml_merge_keys_are_applied_like_pyyaml() {
        let m = doc("base: &b {a: 1}\nx:\n  <<: *b\n  c: 2\n");
        assert_eq!(m["x"]["a"].as_i64(), Some(1));
        assert_eq!(m["x"]["c"].as_i64(), Some(2));
    }
}
