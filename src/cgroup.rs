//! Whether QEMU guests can get their cgroups where libvirtd runs: either
//! qemu.conf's `cgroup_controllers` is `[ ]` (libvirt makes none; what the
//! nested host's image sets, since a container's cgroup fs is read-only), or
//! the controllers libvirt will use exist and the cgroup fs is writable.
//! The original tool's "cgroup errors when creating VMs" ("Failed to create
//! v1 controller cpu for group: Read-only file system").

/// libvirt's default for `cgroup_controllers` (qemu.conf) in v1 names.
pub const DEFAULT_CONTROLLERS: &[&str] =
    &["cpu", "cpuacct", "cpuset", "memory", "devices", "blkio"];

/// What could be read where libvirtd runs.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The text of /etc/libvirt/qemu.conf (None: unreadable).
    pub qemu_conf: Option<String>,
    /// True for cgroup v2 (one hierarchy), false for v1.
    pub v2: bool,
    /// The controllers there: cgroup.controllers (v2) or the hierarchies
    /// under /sys/fs/cgroup (v1). None: no cgroup fs at all.
    pub controllers: Option<String>,
    /// Whether libvirtd could write there (None: not known, e.g. not root).
    pub writable: Option<bool>,
}

const MARK: &str = "@@boxvirt@@";

/// A shell script that prints the [`Facts`] where it runs (inside the
/// nested host through `docker exec`, or on this machine); read its output
/// with [`Facts::parse`].
pub const PROBE: &str = r#"
if [ -r /etc/libvirt/qemu.conf ]; then echo conf; cat /etc/libvirt/qemu.conf; else echo noconf; fi
echo @@boxvirt@@
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  echo v2; cat /sys/fs/cgroup/cgroup.controllers; w=/sys/fs/cgroup
elif [ -d /sys/fs/cgroup/memory ]; then
  echo v1; ls /sys/fs/cgroup | tr ',\n' '  '; echo; w=/sys/fs/cgroup/memory
else
  echo none; w=/sys/fs/cgroup
fi
echo @@boxvirt@@
if [ "$(id -u)" != 0 ]; then echo unknown; elif [ -w "$w" ]; then echo rw; else echo ro; fi
"#;

impl Facts {
    pub fn parse(out: &str) -> Facts {
        let parts: Vec<&str> = out.split(MARK).map(|p| p.trim_matches('\n')).collect();
        let part = |i: usize| parts.get(i).copied().unwrap_or("");
        let (conf_kind, conf) = part(0).split_once('\n').unwrap_or((part(0), ""));
        let (cg_kind, names) = part(1).split_once('\n').unwrap_or((part(1), ""));
        Facts {
            qemu_conf: (conf_kind.trim() == "conf").then(|| conf.to_string()),
            v2: cg_kind.trim() == "v2",
            controllers: matches!(cg_kind.trim(), "v1" | "v2").then(|| names.trim().to_string()),
            writable: match part(2).trim() {
                "rw" => Some(true),
                "ro" => Some(false),
                _ => None,
            },
        }
    }
}

/// pass (true) or fail, a one-line detail and a one-line fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    /// True when nothing could be decided (a warning, not a failure).
    pub unknown: bool,
    pub detail: String,
    pub fix: String,
}

const FIX: &str = "set cgroup_controllers = [ ] in /etc/libvirt/qemu.conf where libvirtd runs and restart libvirtd (the nested host's image does this: 'boxvirt rebuild' an older image)";

/// The `cgroup_controllers` list set in qemu.conf; None when unset
/// (comments ignored; the list may span lines).
pub fn configured(qemu_conf: &str) -> Option<Vec<String>> {
    let text: String = qemu_conf
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let at = text.find("cgroup_controllers")?;
    let rest = text[at + "cgroup_controllers".len()..].trim_start();
    let rest = rest.strip_prefix('=')?.trim_start().strip_prefix('[')?;
    let list = &rest[..rest.find(']')?];
    Some(
        list.split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

/// A v1 controller name as cgroup v2 offers it (None: always there in v2).
fn v2_name(v1: &str) -> Option<&str> {
    match v1 {
        "cpuacct" => Some("cpu"),
        "blkio" => Some("io"),
        "devices" | "freezer" => None,
        other => Some(other),
    }
}

pub fn verdict(f: &Facts) -> Verdict {
    let fail = |detail: String| Verdict {
        ok: false,
        unknown: false,
        detail,
        fix: FIX.to_string(),
    };
    let Some(conf) = &f.qemu_conf else {
        return Verdict {
            ok: false,
            unknown: true,
            detail: "cannot read /etc/libvirt/qemu.conf where libvirtd runs".into(),
            fix: "run doctor as root, or check that qemu.conf sets cgroup_controllers = [ ] if VM start fails with cgroup errors".into(),
        };
    };
    let wanted = match configured(conf) {
        Some(list) if list.is_empty() => {
            return Verdict {
                ok: true,
                unknown: false,
                detail: "cgroup_controllers = [ ] in qemu.conf: libvirt makes no cgroups for VMs"
                    .into(),
                fix: String::new(),
            }
        }
        Some(list) => list,
        None => DEFAULT_CONTROLLERS.iter().map(|s| s.to_string()).collect(),
    };
    let Some(present) = &f.controllers else {
        return Verdict {
            ok: false,
            unknown: true,
            detail: "no cgroup file system where libvirtd runs; QEMU guests cannot get cgroups"
                .into(),
            fix: FIX.to_string(),
        };
    };
    let present: Vec<&str> = present.split_whitespace().collect();
    let missing: Vec<&str> = wanted
        .iter()
        .filter_map(|c| if f.v2 { v2_name(c) } else { Some(c.as_str()) })
        .filter(|c| !present.contains(c))
        .collect();
    if !missing.is_empty() {
        return fail(format!(
            "libvirt will use the cgroup controllers {} but {} missing",
            wanted.join(","),
            if missing.len() == 1 {
                format!("{} is", missing[0])
            } else {
                format!("{} are", missing.join(","))
            }
        ));
    }
    if f.writable == Some(false) {
        return fail(format!(
            "/sys/fs/cgroup is read-only where libvirtd runs and qemu.conf does not set cgroup_controllers = [ ] (starting a VM fails: 'Failed to create v1 controller'); controllers wanted: {}",
            wanted.join(",")
        ));
    }
    Verdict {
        ok: true,
        unknown: false,
        detail: format!("cgroup controllers present: {}", present.join(" ")),
        fix: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(conf: &str, controllers: Option<&str>, writable: Option<bool>) -> Facts {
        Facts {
            qemu_conf: Some(conf.into()),
            v2: true,
            controllers: controllers.map(str::to_string),
            writable,
        }
    }

    #[test]
    fn the_setting_is_read_with_comments_and_lines() {
        assert_eq!(configured("#cgroup_controllers = [ \"cpu\" ]\n"), None);
        assert_eq!(configured("cgroup_controllers = [ ]\n"), Some(vec![]));
        assert_eq!(
            configured("x = 1\ncgroup_controllers = [ \"cpu\",\n  \"memory\" ] # c\n"),
            Some(vec!["cpu".into(), "memory".into()])
        );
    }

    #[test]
    fn empty_list_passes_even_without_controllers() {
        let v = verdict(&facts("cgroup_controllers = [ ]", None, Some(false)));
        assert!(v.ok && !v.unknown, "{v:?}");
    }

    #[test]
    fn read_only_or_missing_controllers_fail_with_the_fix() {
        let all = "cpuset cpu io memory hugetlb pids rdma misc";
        let v = verdict(&facts("", Some(all), Some(false)));
        assert!(
            !v.ok && !v.unknown && v.detail.contains("read-only"),
            "{v:?}"
        );
        assert!(v.fix.contains("cgroup_controllers = [ ]"));
        let v = verdict(&facts("", Some("cpu memory pids"), Some(true)));
        assert!(!v.ok && v.detail.contains("cpuset,io are missing"), "{v:?}");
        let v = verdict(&facts(
            "cgroup_controllers = [ \"memory\" ]",
            Some("memory"),
            Some(true),
        ));
        assert!(v.ok, "{v:?}");
        let v = verdict(&facts("", Some(all), None));
        assert!(v.ok, "{v:?}");
    }

    #[test]
    fn the_probe_runs_and_its_output_is_read() {
        let f = Facts::parse(&format!(
            "conf\ncgroup_controllers = [ ]\n{MARK}\nv1\nblkio cpu cpuacct cpuset devices memory\n{MARK}\nro\n"
        ));
        assert_eq!(f.qemu_conf.as_deref(), Some("cgroup_controllers = [ ]"));
        assert!(!f.v2);
        assert_eq!(f.writable, Some(false));
        assert!(verdict(&f).ok);
        let f = Facts {
            qemu_conf: Some(String::new()),
            ..f
        };
        assert!(verdict(&f).detail.contains("read-only"), "{f:?}");
        // The real script on this machine gives something readable.
        let out = std::process::Command::new("sh")
            .args(["-c", PROBE])
            .output()
            .unwrap();
        let f = Facts::parse(&String::from_utf8_lossy(&out.stdout));
        assert!(
            f.controllers.is_some() || !std::path::Path::new("/sys/fs/cgroup").exists(),
            "{f:?}"
        );
    }
}
