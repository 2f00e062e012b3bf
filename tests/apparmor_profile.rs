//! The nested host's AppArmor profile (guideline 5), compiled by the real
//! apparmor_parser (Debian package `apparmor`, tests/harness/install-deps.sh)
//! without loading it: this machine's kernel has no AppArmor, so loading is
//! not exercised here. A missing parser fails these tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use boxvirt::nested::hardening::apparmor::{self, NAME, PROFILE};

fn parser() -> PathBuf {
    apparmor::find_parser(&std::env::var_os("PATH").unwrap_or_default()).expect(
        "apparmor_parser is missing: run tests/harness/install-deps.sh (package 'apparmor')",
    )
}

/// A full parse and compile to binary policy, without the kernel or cache.
/// Warnings that point at a real problem in the profile are errors.
fn compile(file: &Path) -> std::process::Output {
    Command::new(parser())
        .args(["--skip-kernel-load", "--skip-cache"])
        .args([
            "--Werror=deprecated",
            "--Werror=dangerous",
            "--Werror=format",
        ])
        .args(["--Werror=missing", "--Werror=rule-downgraded"])
        .arg(file)
        .output()
        .expect("run apparmor_parser")
}

#[test]
fn the_embedded_profile_compiles_as_up_writes_it() {
    let d = tempfile::tempdir().unwrap();
    // The file `up --hardened` writes (and would load) in the data dir.
    let file = apparmor::write(d.path()).unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), PROFILE);
    let out = compile(&file);
    assert!(
        out.status.success(),
        "apparmor_parser rejected {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_compiled_binary_policy_is_not_empty() {
    let d = tempfile::tempdir().unwrap();
    let file = apparmor::write(d.path()).unwrap();
    let out = Command::new(parser())
        .args(["--skip-kernel-load", "--skip-cache", "--stdout"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.len() > 1000, "{} bytes", out.stdout.len());
}

#[test]
fn the_profile_defines_exactly_the_name_docker_is_given() {
    let d = tempfile::tempdir().unwrap();
    let file = apparmor::write(d.path()).unwrap();
    let out = Command::new(parser())
        .arg("--names")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), NAME);
    assert_eq!(apparmor::security_opt(NAME), "apparmor=boxvirt-nested-host");
}

#[test]
fn up_loads_it_with_the_real_parser_or_says_why_not_on_one_line() {
    let d = tempfile::tempdir().unwrap();
    let got = apparmor::prepare_with(d.path(), true, Some(parser()));
    if apparmor::kernel_has_apparmor() {
        // A kernel with AppArmor (as root): really loaded.
        assert_eq!(got.unwrap().as_deref(), Some(NAME));
    } else {
        // This machine: the kernel refuses; `up --hardened` would exit 1.
        let e = got.unwrap_err();
        assert_eq!(e.exit, boxvirt::error::Exit::Failed);
        assert!(
            e.message.contains("cannot load the AppArmor profile"),
            "{e}"
        );
        assert!(!e.message.contains('\n'), "{e}");
    }
}

#[test]
fn a_broken_rule_is_caught_by_the_same_check() {
    // The check above can fail: one bad rule in the same text fails it.
    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("broken");
    std::fs::write(&bad, PROFILE.replace("  deny mount,", "  deny mount")).unwrap();
    let out = compile(&bad);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("syntax error"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
