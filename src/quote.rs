//! Quoting a path or word for the two languages boxvirt writes into: a POSIX
//! shell line printed for the user (`virsh -c '...'`, `ssh -F ...`) and an
//! argument in an ssh config file (`IdentityFile "..."`). One function each,
//! so no caller hand-quotes.

use std::path::Path;

use crate::error::{Failure, Result};

/// `s` as one word for sh/bash: bare when it is only safe characters, else
/// in single quotes (a `'` inside becomes `'\''`).
pub fn shell(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A path as shell word.
pub fn shell_path(p: &Path) -> String {
    shell(&p.to_string_lossy())
}

/// A path as one argument of an ssh_config(5) keyword that expands `%`
/// tokens and `${VAR}` (IdentityFile, UserKnownHostsFile, Include, the
/// ProxyCommand's words): in double quotes, `%` doubled. ssh_config has no
/// portable escape for `"` or `\` (OpenSSH before 8.7 reads them raw, later
/// versions as escapes) and none for `${`, so such paths are refused.
pub fn ssh_config_path(p: &Path) -> Result<String> {
    let s = p.to_str().ok_or_else(|| {
        Failure::usage(format!(
            "{} is not valid UTF-8 and cannot be written into an ssh config; use another --data-dir",
            p.display()
        ))
    })?;
    if let Some(bad) = ['"', '\\', '\n', '\r']
        .into_iter()
        .find(|c| s.contains(*c))
        .map(|c| format!("{c:?}"))
        .or_else(|| s.contains("${").then(|| "\"${\"".to_string()))
    {
        return Err(Failure::usage(format!(
            "the path {s:?} contains {bad}, which an ssh config file cannot express; use a --data-dir (and HOME) without it"
        )));
    }
    Ok(format!("\"{}\"", s.replace('%', "%%")))
}

/// A path inside an ssh config `ProxyCommand`, which ssh hands to the shell
/// after expanding `%` tokens: shell-quoted, `%` doubled.
pub fn ssh_proxy_command_path(p: &Path) -> String {
    shell_path(p).replace('%', "%%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_round_trip_through_sh() {
        for s in [
            "plain/path",
            "sp ace&x",
            "it's",
            "#?*[]$`\"\\",
            "äöü ß",
            "",
            "a'b'c",
        ] {
            let out = std::process::Command::new("sh")
                .args(["-c", &format!("printf %s {}", shell(s))])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), s, "{}", shell(s));
        }
        assert_eq!(shell("qemu+unix:///system"), "qemu+unix:///system");
    }

    #[test]
    fn ssh_config_paths_are_quoted_or_refused() {
        assert_eq!(
            ssh_config_path(Path::new("/d/sp ace&#'x%/k")).unwrap(),
            "\"/d/sp ace&#'x%%/k\""
        );
        for bad in ["/a\"b", "/a\\b", "/a${HOME}", "/a\nb"] {
            let e = ssh_config_path(Path::new(bad)).unwrap_err();
            assert_eq!(e.exit, crate::error::Exit::Usage);
            assert!(e.message.contains("ssh config"), "{}", e.message);
        }
    }
}
