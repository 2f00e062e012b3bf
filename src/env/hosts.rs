//! The libvirt URI of each host of an environment: `uri:` as given,
//! `instance:` that nested instance's socket (in its data dir), and no
//! `hosts:` at all the current connection (`-c`, the instance).
//!
//! An instance's sshd port (`up --auto-ports` may pick any) is read from
//! the ssh config `up` wrote in its data dir: the one `--ssh-port` of this
//! command names the current instance, not the file's.

use super::Desired;
use crate::settings::Settings;

/// The name of the one host of a file without `hosts:`.
pub const CURRENT: &str = "current";

/// One host to connect to.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub name: String,
    pub uri: String,
    /// The settings of a nested instance (its socket may need a short link).
    pub instance: Option<Settings>,
}

/// The hosts in name order.
pub fn targets(desired: &Desired, settings: &Settings) -> Vec<Target> {
    if desired.hosts.is_empty() {
        return vec![Target {
            name: CURRENT.to_string(),
            uri: settings.libvirt_uri(),
            instance: settings.uses_instance_socket().then(|| settings.clone()),
        }];
    }
    desired
        .hosts
        .iter()
        .map(|(name, spec)| match (&spec.uri, &spec.instance) {
            (Some(uri), _) => Target {
                name: name.clone(),
                uri: uri.clone(),
                instance: None,
            },
            (None, instance) => {
                let s = instance_settings(desired, settings, instance.as_deref(), spec);
                Target {
                    name: name.clone(),
                    uri: s.socket_uri(),
                    instance: Some(s),
                }
            }
        })
        .collect()
}

/// The current settings for instance NAME, with its data dir (relative to
/// the file's directory) when the file gives one.
fn instance_settings(
    desired: &Desired,
    settings: &Settings,
    instance: Option<&str>,
    spec: &super::HostSpec,
) -> Settings {
    let mut s = settings.clone();
    s.explicit_uri = None;
    s.via = crate::cli::Via::Socket;
    if let Some(name) = instance {
        s.instance = name.to_string();
    }
    if let Some(dir) = &spec.data_dir {
        let dir = if dir.is_absolute() {
            dir.clone()
        } else {
            desired.dir.join(dir)
        };
        s.data_dir = absolute(&dir);
    }
    if let Some(port) = written_ssh_port(&s.ssh_config_path()) {
        s.ssh_port = port;
    }
    s
}

/// The `Port` line of an instance's boxman.conf (None before its first `up`).
fn written_ssh_port(conf: &std::path::Path) -> Option<u16> {
    let text = std::fs::read_to_string(conf).ok()?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Port "))
        .and_then(|p| p.trim().parse().ok())
}

/// Absolute, without `.` parts (paths end up in URIs and messages).
fn absolute(p: &std::path::Path) -> std::path::PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    joined
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::GlobalArgs;

    /// `up --auto-ports` wrote port 2231 into the instance's boxman.conf.
    #[test]
    fn an_instances_ssh_port_comes_from_its_own_ssh_config() {
        let tmp = tempfile::tempdir().unwrap();
        let ssh = tmp.path().join("d2/ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        let conf =
            crate::nested::ssh_config::config_text("boxman-two", 2231, &tmp.path().join("d2"))
                .unwrap();
        std::fs::write(ssh.join("boxman.conf"), conf).unwrap();
        let text = format!(
            "name: lab\nhosts:\n  a: {{instance: two, data_dir: {}/d2}}\n",
            tmp.path().display()
        );
        let t = targets(&desired(&text), &settings(GlobalArgs::default()));
        assert_eq!(t[0].instance.as_ref().unwrap().ssh_port, 2231);
    }
    use crate::settings::Sources;
    use std::path::PathBuf;

    fn settings(flags: GlobalArgs) -> Settings {
        let src = Sources {
            cwd: PathBuf::from("/home/u/proj"),
            uid: 1000,
            gid: 1000,
            ..Default::default()
        };
        Settings::resolve(&flags, &src).unwrap()
    }

    fn desired(text: &str) -> Desired {
        let src =
            super::super::Source::from_text("lab.yaml".into(), PathBuf::from("/labs"), text.into());
        super::super::from_source(&src, &crate::template::Catalog::new(None)).unwrap()
    }

    #[test]
    fn no_hosts_means_the_current_connection() {
        let d = desired("name: lab\n");
        let t = targets(
            &d,
            &settings(GlobalArgs {
                connect: Some("test:///default".into()),
                ..Default::default()
            }),
        );
        assert_eq!(
            t,
            vec![Target {
                name: "current".into(),
                uri: "test:///default".into(),
                instance: None
            }]
        );
        let s = settings(GlobalArgs::default());
        let t = targets(&d, &s);
        assert_eq!(t[0].uri, s.socket_uri());
        assert!(t[0].instance.is_some());
    }

    #[test]
    fn instances_use_their_data_dirs_socket_and_uris_are_kept() {
        let d = desired("name: lab\nhosts:\n  b: {uri: \"qemu+ssh://ops@hv2/system\"}\n  a: {instance: two, data_dir: data-two}\n  c: {instance: default}\n");
        let s = settings(GlobalArgs {
            connect: Some("test:///default".into()),
            ..Default::default()
        });
        let t = targets(&d, &s);
        let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(
            t[0].uri,
            "qemu+unix:///system?socket=/labs/data-two/libvirt-run/libvirt-sock"
        );
        assert_eq!(t[0].instance.as_ref().unwrap().instance, "two");
        assert_eq!(t[1].uri, "qemu+ssh://ops@hv2/system");
        assert_eq!(t[0].instance.as_ref().unwrap().ssh_port, s.ssh_port);
        // No data_dir: the current one, even though -c points elsewhere.
        assert_eq!(
            t[2].uri,
            "qemu+unix:///system?socket=/home/u/proj/data/libvirt-run/libvirt-sock"
        );
    }
}
