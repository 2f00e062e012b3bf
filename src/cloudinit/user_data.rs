//! user-data: boxvirt's #cloud-config (user, keys, host key, identity), with
//! an optional `--user-data FILE` merged in or attached as a MIME part.

use std::path::Path;

use serde_norway::{Mapping, Value};

use super::{authorized_keys, merge, multipart, yaml, SeedSpec};
use crate::error::{Failure, Result};

/// Login shell of the default user; every cloud image has it.
const SHELL: &str = "/bin/sh";
/// The default user may become root without a password (it has no password).
const SUDO: &str = "ALL=(ALL) NOPASSWD:ALL";

/// Gives a cloned disk a new machine-id on its first boot as a new instance
/// (systemd derives DHCP and other identities from it). Runs as bootcmd, every
/// boot; $1 is the instance-id. A disk that never ran another instance keeps
/// the machine-id systemd made at its first boot.
const NEW_MACHINE_ID: &str = "f=/var/lib/boxvirt/instance-id; \
if [ -s \"$f\" ] && [ \"$(cat \"$f\")\" != \"$1\" ] && command -v systemd-machine-id-setup >/dev/null; \
then rm -f /etc/machine-id && systemd-machine-id-setup; fi; \
mkdir -p /var/lib/boxvirt && echo \"$1\" > \"$f\"";

/// The whole user-data file.
///
/// Without `extra_user_data`, boxvirt's #cloud-config, in the exact layout the
/// tiny test guest's awk reader expects. With it:
/// - `#cloud-config`: merged into boxvirt's (see [`merge`]) and written again
///   (the file's comments are not kept);
/// - any other cloud-init type (`#!` script, `#cloud-boothook`, `#include`,
///   a MIME message, ...): a MIME multipart with boxvirt's #cloud-config
///   first and the file as its own part;
/// - anything else is refused (cloud-init would ignore it silently).
pub fn user_data(spec: &SeedSpec) -> Result<String> {
    let ours = boxvirt_config(spec)?;
    let extra = spec
        .extra_user_data
        .as_deref()
        .filter(|t| !t.trim().is_empty());
    let Some(extra) = extra else {
        return cloud_config_text(&ours);
    };
    match multipart::kind_of(extra) {
        Some(multipart::Kind::CloudConfig) => {
            let theirs = merge::parse_cloud_config(extra, "--user-data file")?;
            cloud_config_text(&merge::merge(ours, theirs, "--user-data file")?)
        }
        Some(kind) => Ok(multipart::combine(&cloud_config_text(&ours)?, extra, kind)),
        None => Err(unknown_type("--user-data file", extra)),
    }
}

/// Reads `--user-data FILE` and checks it early, so errors name the file:
/// it must be UTF-8 text of a type cloud-init handles, and a #cloud-config
/// must be valid YAML (the error gives line and column).
pub fn read_user_data_file(path: &Path) -> Result<String> {
    let name = format!("user-data file {}", path.display());
    let bytes =
        std::fs::read(path).map_err(|e| Failure::usage(format!("cannot read {name}: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Failure::usage(format!(
            "{name} is not UTF-8 text (compressed or binary user-data is not supported)"
        ))
    })?;
    match multipart::kind_of(&text) {
        Some(multipart::Kind::CloudConfig) => {
            merge::parse_cloud_config(&text, &name)?;
        }
        Some(_) => {}
        None if text.trim().is_empty() => {}
        None => return Err(unknown_type(&name, &text)),
    }
    Ok(text)
}

fn unknown_type(name: &str, text: &str) -> Failure {
    let first: String = text
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(40)
        .collect();
    Failure::usage(format!(
        "{name} starts with {first:?}, which cloud-init would ignore; start it with #cloud-config, #! (a script), #cloud-boothook or #include, or make it a MIME message"
    ))
}

fn cloud_config_text(doc: &Mapping) -> Result<String> {
    Ok(format!("#cloud-config\n{}", yaml::to_yaml(doc)?))
}

/// boxvirt's own cloud-config, keys in the order the tiny guest's reader and
/// the documented layout use (hostname, users, ssh_keys first).
fn boxvirt_config(spec: &SeedSpec) -> Result<Mapping> {
    spec.validate()?;
    spec.host_key.check()?;
    for (i, key) in spec.authorized_keys.iter().enumerate() {
        authorized_keys::check_key_line(key).map_err(|why| {
            Failure::usage(format!(
                "authorized key {} for user {}: {why}",
                i + 1,
                spec.user
            ))
        })?;
    }
    let s = |v: &str| Value::String(v.to_string());

    let mut user = Mapping::new();
    user.insert(s("name"), s(&spec.user));
    user.insert(s("shell"), s(SHELL));
    user.insert(s("sudo"), s(SUDO));
    if !spec.authorized_keys.is_empty() {
        let keys = spec.authorized_keys.iter().map(|k| s(k.trim())).collect();
        user.insert(s("ssh_authorized_keys"), Value::Sequence(keys));
    }

    let mut ssh_keys = Mapping::new();
    let mut private = spec.host_key.private_openssh.clone();
    if !private.ends_with('\n') {
        private.push('\n');
    }
    ssh_keys.insert(s("ed25519_private"), Value::String(private));
    ssh_keys.insert(s("ed25519_public"), s(spec.host_key.public_line.trim()));

    let mut doc = Mapping::new();
    doc.insert(s("hostname"), s(&spec.hostname));
    doc.insert(s("users"), Value::Sequence(vec![Value::Mapping(user)]));
    doc.insert(s("ssh_keys"), Value::Mapping(ssh_keys));
    // Delete host keys baked into the image (shared by every VM made from
    // it); ssh_keys then writes ours, and with ssh_keys given cloud-init
    // generates no others.
    doc.insert(s("ssh_deletekeys"), Value::Bool(true));
    doc.insert(s("preserve_hostname"), Value::Bool(false));
    doc.insert(s("disable_root"), Value::Bool(true));
    doc.insert(s("ssh_pwauth"), Value::Bool(false));
    let machine_id = vec![
        s("sh"),
        s("-c"),
        s(NEW_MACHINE_ID),
        s("boxvirt-machine-id"),
        s(&spec.instance_id),
    ];
    doc.insert(
        s("bootcmd"),
        Value::Sequence(vec![Value::Sequence(machine_id)]),
    );
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::super::host_key::host_key_from_seed;
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM8nAIZrpRr4FyBzTIxY3u/0VFRR7kOa8oL/uMR+Pm+A";

    fn spec() -> SeedSpec {
        SeedSpec {
            instance_id: "iid-tiny-1-0011223344556677".into(),
            hostname: "tiny-1".into(),
            user: "boxvirt".into(),
            authorized_keys: vec![format!("{KEY} me@laptop")],
            host_key: host_key_from_seed(&[7; 32], "tiny-1").unwrap(),
            mac: "52:54:00:12:34:56".into(),
            more_macs: Vec::new(),
            extra_user_data: None,
        }
    }

    fn indent(text: &str, by: &str) -> String {
        text.lines().map(|l| format!("{by}{l}\n")).collect()
    }

    #[test]
    fn exact_text_for_a_fixed_spec() {
        let s = spec();
        let want = format!(
            "#cloud-config
hostname: tiny-1
users:
  - name: boxvirt
    shell: /bin/sh
    sudo: ALL=(ALL) NOPASSWD:ALL
    ssh_authorized_keys:
      - {KEY} me@laptop
ssh_keys:
  ed25519_private: |
{}  ed25519_public: {}
ssh_deletekeys: true
preserve_hostname: false
disable_root: true
ssh_pwauth: false
bootcmd:
  - - sh
    - -c
    - 'f=/var/lib/boxvirt/instance-id; if [ -s \"$f\" ] && [ \"$(cat \"$f\")\" != \"$1\" ] && command -v systemd-machine-id-setup >/dev/null; then rm -f /etc/machine-id && systemd-machine-id-setup; fi; mkdir -p /var/lib/boxvirt && echo \"$1\" > \"$f\"'
    - boxvirt-machine-id
    - iid-tiny-1-0011223344556677
",
            indent(&s.host_key.private_openssh, "    "),
            s.host_key.public_line
        );
        assert_eq!(user_data(&s).unwrap(), want);
        assert!(
            s.host_key.public_line.starts_with("ssh-ed25519 AAAA")
                && s.host_key.public_line.ends_with(" tiny-1")
        );
    }

    #[test]
    fn odd_key_comments_are_quoted_and_read_back() {
        let mut s = spec();
        let odd = [
            format!("{KEY} a: b"),
            format!("{KEY} it's #1"),
            format!("{KEY} tab\there"),
            format!("no-pty,command=\"echo hi\" {KEY} x"),
        ];
        s.authorized_keys = odd.to_vec();
        let text = user_data(&s).unwrap();
        assert!(text.contains(&format!("      - '{KEY} a: b'\n")), "{text}");
        assert!(
            text.contains(&format!("      - '{KEY} it''s #1'\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("      - \"{KEY} tab\\there\"\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("      - 'no-pty,command=\"echo hi\" {KEY} x'\n")),
            "{text}"
        );
        let doc: Value = serde_norway::from_str(&text).unwrap();
        let keys: Vec<&str> = doc["users"][0]["ssh_authorized_keys"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(keys, odd.iter().map(String::as_str).collect::<Vec<_>>());
    }

    #[test]
    fn bad_inputs_are_refused_with_one_line() {
        let mut s = spec();
        s.authorized_keys.push("ssh-ed25519 nope".into());
        let err = user_data(&s).unwrap_err().message;
        assert!(
            err.starts_with("authorized key 2 for user boxvirt: ") && !err.contains('\n'),
            "{err}"
        );
        let mut s = spec();
        s.hostname = "a b".into();
        assert!(user_data(&s)
            .unwrap_err()
            .message
            .starts_with("invalid hostname"));
        let mut s = spec();
        s.host_key.public_line = KEY.into();
        assert!(user_data(&s)
            .unwrap_err()
            .message
            .contains("does not belong"));
    }

    #[test]
    fn a_cloud_config_file_is_merged() {
        let mut s = spec();
        s.extra_user_data = Some("#cloud-config\n# mine\nhostname: nope\npackages: [git]\nruncmd:\n  - echo done\nusers:\n  - name: boxvirt\n    groups: [wheel]\n".into());
        let text = user_data(&s).unwrap();
        assert!(
            text.starts_with("#cloud-config\nhostname: tiny-1\nusers:\n  - name: boxvirt\n"),
            "{text}"
        );
        let doc: Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(
            doc["users"][0]["ssh_authorized_keys"][0].as_str(),
            Some(format!("{KEY} me@laptop").as_str())
        );
        assert_eq!(doc["users"][0]["groups"][0].as_str(), Some("wheel"));
        assert_eq!(
            doc["ssh_keys"]["ed25519_public"].as_str(),
            Some(s.host_key.public_line.as_str())
        );
        assert_eq!(doc["packages"][0].as_str(), Some("git"));
        assert_eq!(doc["runcmd"][0].as_str(), Some("echo done"));
        assert_eq!(doc["hostname"].as_str(), Some("tiny-1"));
    }

    #[test]
    fn a_script_goes_into_a_multipart() {
        let mut s = spec();
        s.extra_user_data = Some("#!/bin/sh\necho hi\n".into());
        let text = user_data(&s).unwrap();
        assert!(
            text.starts_with("Content-Type: multipart/mixed; boundary=\""),
            "{text}"
        );
        let ours = user_data(&spec()).unwrap();
        assert!(
            text.contains(&format!("filename=\"boxvirt.cfg\"\n\n{ours}--")),
            "{text}"
        );
        assert!(
            text.contains("Content-Type: text/x-shellscript; charset=\"us-ascii\"\n"),
            "{text}"
        );
        assert!(
            text.contains("\n\n#!/bin/sh\necho hi\n--==BOXVIRT-") && text.ends_with("==--\n"),
            "{text}"
        );
    }

    #[test]
    fn unknown_or_broken_files_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("u.yaml");
        std::fs::write(&f, "#cloud-config\npackages: [git\n").unwrap();
        let err = read_user_data_file(&f).unwrap_err().message;
        assert!(
            err.starts_with(&format!("user-data file {} line 3, column ", f.display())),
            "{err}"
        );
        std::fs::write(&f, "echo hi\n").unwrap();
        let err = read_user_data_file(&f).unwrap_err().message;
        assert!(
            err.contains("starts with \"echo hi\"") && err.contains("#cloud-config"),
            "{err}"
        );
        std::fs::write(&f, "#!/bin/sh\necho hi\n").unwrap();
        assert_eq!(read_user_data_file(&f).unwrap(), "#!/bin/sh\necho hi\n");
        std::fs::write(&f, [0xffu8, 0xfe]).unwrap();
        assert!(read_user_data_file(&f)
            .unwrap_err()
            .message
            .contains("not UTF-8"));
        let mut s = spec();
        s.extra_user_data = Some("plain text\n".into());
        assert!(user_data(&s)
            .unwrap_err()
            .message
            .starts_with("--user-data file starts with"));
    }
}
