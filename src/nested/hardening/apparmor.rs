//! Guideline 5, AppArmor half: boxvirt's profile for the nested host
//! (docker/apparmor/boxvirt-nested-host, Docker's default profile plus what
//! libvirtd, QEMU, dnsmasq and sshd need), used by `up --hardened` where the
//! kernel has AppArmor enabled. Where it has none, nothing is passed: a
//! profile would mean nothing there (report row 5 says so).

use std::path::{Path, PathBuf};

use crate::atomic_file;
use crate::error::{Failure, Result};
use crate::settings::Settings;

const ENABLED: &str = "/sys/module/apparmor/parameters/enabled";

/// The profile's name (the `profile` line of [`PROFILE`]).
pub const NAME: &str = "boxvirt-nested-host";
/// The profile text, embedded in the binary.
pub const PROFILE: &str = include_str!("../../../docker/apparmor/boxvirt-nested-host");
/// Data dir subdirectory the profile is written to before it is loaded.
pub const DIR: &str = "apparmor";
const PARSER: &str = "apparmor_parser";

/// True when this machine's kernel has AppArmor enabled ("Y").
pub fn kernel_has_apparmor() -> bool {
    enabled_in(Path::new(ENABLED))
}

fn enabled_in(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .map(|s| s.trim() == "Y")
        .unwrap_or(false)
}

/// DATA/apparmor/boxvirt-nested-host: the file `up --hardened` loads.
pub fn file(data_dir: &Path) -> PathBuf {
    data_dir.join(DIR).join(NAME)
}

/// The security option that puts the container under the profile.
pub fn security_opt(name: &str) -> String {
    format!("apparmor={name}")
}

/// The AppArmor profile a container's security options name, if any.
pub fn profile_of(security_opt: &[String]) -> Option<&str> {
    security_opt
        .iter()
        .find_map(|o| o.strip_prefix("apparmor="))
}

/// Row 5's AppArmor part, from the container's security options: whether
/// it holds, and what to say. No AppArmor in the kernel: nothing to apply.
pub fn row_part(kernel: bool, security_opt: &[String]) -> (bool, String) {
    if !kernel {
        let why = "AppArmor: not possible here: the kernel has no AppArmor";
        return (true, why.into());
    }
    match profile_of(security_opt) {
        Some(NAME) => (
            true,
            format!("AppArmor: profile {NAME} (boxvirt's, DATA/{DIR}/{NAME})"),
        ),
        Some(other) => (
            false,
            format!("AppArmor: {other}, not boxvirt's profile {NAME}"),
        ),
        None => (
            false,
            format!("AppArmor: Docker's docker-default, not boxvirt's profile {NAME}"),
        ),
    }
}

/// `up --hardened`'s AppArmor step: where the kernel has AppArmor, the
/// profile is written and loaded (or replaced) and its name returned for
/// the container's security options; where it has none, None.
pub fn prepare(settings: &Settings, uid: u32, gid: u32) -> Result<Option<String>> {
    let data_dir = settings.data_dir.as_path();
    let parser = find_parser(settings.process.path.as_deref().unwrap_or_default());
    let name = prepare_with(data_dir, kernel_has_apparmor(), parser)?;
    if name.is_some() {
        // Yours, like the rest of the data dir (`clean` removes it).
        let file = file(data_dir);
        for p in [file.parent().unwrap_or(data_dir), &file] {
            let _ = std::os::unix::fs::chown(p, Some(uid), Some(gid));
        }
    }
    Ok(name)
}

/// [`prepare`] with the kernel's answer and the parser found passed in.
pub fn prepare_with(
    data_dir: &Path,
    kernel: bool,
    parser: Option<PathBuf>,
) -> Result<Option<String>> {
    if !kernel {
        return Ok(None);
    }
    // Never a silent fall back to unconfined (or Docker's own profile).
    let parser = parser.ok_or_else(|| {
        Failure::failed(format!(
            "the kernel has AppArmor but {PARSER} is missing, so 'up --hardened' cannot load the {NAME} profile; install the 'apparmor' package and run it again"
        ))
    })?;
    let file = write(data_dir)?;
    load(&parser, &file)?;
    Ok(Some(NAME.to_string()))
}

/// Writes the profile (mode 0644) unless the file already holds it: an
/// unchanged file keeps apparmor_parser's cache valid.
pub fn write(data_dir: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = file(data_dir);
    let as_wanted = std::fs::metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o777 == 0o644)
        && std::fs::read_to_string(&path).is_ok_and(|t| t == PROFILE);
    if as_wanted {
        return Ok(path);
    }
    let fail = |e: std::io::Error| Failure::failed(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    atomic_file::write_whole(&path, PROFILE.as_bytes(), 0o644).map_err(fail)?;
    Ok(path)
}

/// The arguments that load or replace the profile and write its cache.
pub fn load_args(file: &Path) -> Vec<String> {
    vec!["-r".into(), "-W".into(), file.display().to_string()]
}

/// Loads (or replaces) the profile in the kernel. Replacing also moves
/// running containers under the new text: no container is re-created.
fn load(parser: &Path, file: &Path) -> Result<()> {
    let out = std::process::Command::new(parser)
        .args(load_args(file))
        .output()
        .map_err(|e| Failure::failed(format!("cannot run {}: {e}", parser.display())))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    // All of it on one line: the reason is not always the last line.
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let why = if lines.is_empty() {
        format!("exit status {}", out.status)
    } else {
        lines.join(" / ")
    };
    Err(Failure::failed(format!(
        "cannot load the AppArmor profile {NAME} ({} -r -W {}): {why}; loading needs root (CAP_MAC_ADMIN)",
        parser.display(),
        file.display()
    )))
}

/// apparmor_parser on PATH, or in /usr/sbin or /sbin (often not on a
/// non-root user's PATH).
pub fn find_parser(path: &std::ffi::OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(PARSER))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_a_y_means_enabled() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("enabled");
        assert!(!enabled_in(&f));
        std::fs::write(&f, "N\n").unwrap();
        assert!(!enabled_in(&f));
        std::fs::write(&f, "Y\n").unwrap();
        assert!(enabled_in(&f));
    }

    #[test]
    fn the_profile_is_named_as_the_option_says() {
        assert!(PROFILE.contains(&format!("\nprofile {NAME} flags=")));
        assert!(PROFILE.contains(&format!("peer={NAME},")));
        let opts = vec!["seccomp={}".to_string(), security_opt(NAME)];
        assert_eq!(profile_of(&opts), Some(NAME));
        assert_eq!(profile_of(&["seccomp=unconfined".into()]), None);
    }

    #[test]
    fn the_profile_allows_the_hardened_capabilities_and_no_mount() {
        for cap in super::super::caps::HARDENED {
            let rule = format!("capability {},", cap.to_lowercase());
            assert!(PROFILE.contains(&rule), "{rule} missing");
        }
        assert!(!PROFILE.contains("capability sys_admin"));
        assert!(PROFILE.contains("\n  deny mount,"));
    }

    fn hardened_opts(apparmor: Option<String>) -> Vec<String> {
        let profile = super::super::Profile {
            hardened: true,
            apparmor,
            ..Default::default()
        };
        let mut host = bollard::models::HostConfig::default();
        profile.apply(&mut host);
        host.security_opt.unwrap()
    }

    #[test]
    fn the_container_gets_the_profile_only_where_the_kernel_has_apparmor() {
        let d = tempfile::tempdir().unwrap();
        let parser = fake_parser(d.path(), true);
        // Kernel without AppArmor: seccomp only, as before.
        let none = prepare_with(d.path(), false, Some(parser.clone())).unwrap();
        let opts = hardened_opts(none);
        assert_eq!(opts.len(), 1);
        assert!(opts[0].starts_with("seccomp={"));
        assert_eq!(profile_of(&opts), None);
        // Kernel with AppArmor: seccomp and boxvirt's profile.
        let some = prepare_with(d.path(), true, Some(parser)).unwrap();
        let opts = hardened_opts(some);
        assert!(opts[0].starts_with("seccomp={"));
        assert_eq!(opts[1], "apparmor=boxvirt-nested-host");
        assert_eq!(profile_of(&opts), Some(NAME));
    }

    #[test]
    fn the_fingerprint_changes_only_with_a_profile() {
        let json = |p: &super::super::Profile| serde_json::to_string(p).unwrap();
        let without = super::super::Profile {
            hardened: true,
            ..Default::default()
        };
        assert!(!json(&without).contains("apparmor"));
        let with = super::super::Profile {
            apparmor: Some(NAME.into()),
            ..without
        };
        assert!(json(&with).contains("\"apparmor\":\"boxvirt-nested-host\""));
    }

    #[test]
    fn no_apparmor_in_the_kernel_means_no_profile_and_no_file() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(prepare_with(d.path(), false, None).unwrap(), None);
        assert!(!d.path().join(DIR).exists());
    }

    #[test]
    fn apparmor_without_the_parser_fails_and_names_the_package() {
        let d = tempfile::tempdir().unwrap();
        let e = prepare_with(d.path(), true, None).unwrap_err();
        assert_eq!(e.exit, crate::error::Exit::Failed);
        assert!(e.message.contains("install the 'apparmor' package"), "{e}");
        assert!(!e.message.contains('\n'));
        assert!(!d.path().join(DIR).exists());
    }

    /// A stand-in parser (the kernel here has no AppArmor to load into):
    /// it records its arguments, or fails like a non-root load does.
    fn fake_parser(dir: &Path, ok: bool) -> PathBuf {
        let p = dir.join("apparmor_parser");
        let body = if ok {
            format!("echo \"$@\" > {}/args", dir.display())
        } else {
            "echo 'apparmor_parser: Access denied. You need policy admin privileges to manage profiles.' >&2; exit 1".into()
        };
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn apparmor_with_the_parser_writes_0644_and_replaces_with_cache() {
        let d = tempfile::tempdir().unwrap();
        let parser = fake_parser(d.path(), true);
        let got = prepare_with(d.path(), true, Some(parser)).unwrap();
        assert_eq!(got.as_deref(), Some(NAME));
        let f = file(d.path());
        assert_eq!(std::fs::read_to_string(&f).unwrap(), PROFILE);
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let args = std::fs::read_to_string(d.path().join("args")).unwrap();
        assert_eq!(args.trim(), format!("-r -W {}", f.display()));
    }

    #[test]
    fn a_failed_load_is_one_line_with_the_parsers_reason() {
        let d = tempfile::tempdir().unwrap();
        let parser = fake_parser(d.path(), false);
        let e = prepare_with(d.path(), true, Some(parser)).unwrap_err();
        assert_eq!(e.exit, crate::error::Exit::Failed);
        assert!(e.message.contains("Access denied"), "{e}");
        assert!(e.message.contains(NAME));
        assert!(!e.message.contains('\n'));
    }

    #[test]
    fn an_unchanged_file_is_not_rewritten() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let f = write(d.path()).unwrap();
        let ino = |f: &Path| std::fs::metadata(f).unwrap().ino();
        let before = ino(&f);
        write(d.path()).unwrap();
        assert_eq!(ino(&f), before, "rewritten (renamed over) though unchanged");
        std::fs::write(&f, "old").unwrap();
        write(d.path()).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), PROFILE);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        write(d.path()).unwrap();
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }
}
