//! OpenSSH public key lines (`--ssh-key FILE`, the instance key): checked on
//! the host so a typo fails `vm create`, not the first login.

use std::path::Path;

use base64::Engine;

use crate::error::{Failure, Result};

/// Key types sshd accepts in authorized_keys.
const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-dss",
];

/// The key lines of an authorized_keys-style file (blank lines and `#`
/// comments skipped; options such as `no-pty` kept). Every other line must
/// be an OpenSSH public key; the error names the file and line.
pub fn read_authorized_keys_file(path: &Path) -> Result<Vec<String>> {
    let name = path.display();
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::usage(format!("cannot read ssh key file {name}: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Failure::usage(format!(
            "ssh key file {name} is not text (UTF-8); pass an OpenSSH public key file such as ~/.ssh/id_ed25519.pub"
        ))
    })?;
    if text.contains("PRIVATE KEY-----") {
        return Err(Failure::usage(format!(
            "ssh key file {name} holds a private key; pass the public one (the .pub file)"
        )));
    }
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        check_key_line(line)
            .map_err(|why| Failure::usage(format!("ssh key file {name} line {}: {why}", n + 1)))?;
        keys.push(line.to_string());
    }
    if keys.is_empty() {
        return Err(Failure::usage(format!(
            "ssh key file {name} holds no public key"
        )));
    }
    Ok(keys)
}

/// Ok when `line` is `[options] type base64 [comment]` with a known type and
/// a key blob of that type; else why not.
pub(crate) fn check_key_line(line: &str) -> std::result::Result<(), String> {
    if line.contains(['\n', '\r']) {
        return Err("a key must be one line".into());
    }
    let key_part = strip_options(line.trim())?;
    let mut words = key_part.split_whitespace();
    let kind = words.next().unwrap_or_default();
    if !KEY_TYPES.contains(&kind) {
        let shown: String = kind.chars().take(40).collect();
        return Err(format!(
            "not an OpenSSH public key (unknown key type {shown:?}; want e.g. ssh-ed25519 AAAA...)"
        ));
    }
    let b64 = words
        .next()
        .ok_or_else(|| format!("{kind} key without its base64 data"))?;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| format!("{kind} key data is not valid base64"))?;
    // The blob starts with its own type name (u32 length + name), as sshd checks.
    let inner = blob
        .get(0..4)
        .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .and_then(|len| blob.get(4..4 + len));
    if inner != Some(kind.as_bytes()) {
        return Err(format!("{kind} key data does not hold a {kind} key"));
    }
    // Full parse for the types the ssh-key crate is built with here.
    if matches!(kind, "ssh-ed25519" | "ssh-rsa") {
        ssh_key::PublicKey::from_openssh(&format!("{kind} {b64}"))
            .map_err(|e| format!("{kind} key is damaged: {e}"))?;
    }
    Ok(())
}

/// The part of an authorized_keys line after its options (if any): options
/// are comma-separated and may hold double-quoted strings with spaces.
fn strip_options(line: &str) -> std::result::Result<&str, String> {
    let first = line.split_whitespace().next().unwrap_or_default();
    if KEY_TYPES.contains(&first) {
        return Ok(line);
    }
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return Ok(line[i..].trim_start()),
            _ => {}
        }
    }
    if quoted {
        Err("unterminated quote in the key options".into())
    } else {
        Err(format!(
            "not an OpenSSH public key (want e.g. ssh-ed25519 AAAA... [comment]; got {:?})",
            line.chars().take(40).collect::<String>()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM8nAIZrpRr4FyBzTIxY3u/0VFRR7kOa8oL/uMR+Pm+A";
    // A real ecdsa key's blob (type name prefix checked, curve math not).
    const EC: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHcElF7CzjJyatLD1RMmKkR7Vas51S44uW+aSBL4kKo1TlXBFo/xmlF+rEg7FnDj2TDh4O3bxYstdvrNHAJcMjg=";

    #[test]
    fn accepts_keys_with_comments_and_options() {
        for line in [
            ED.to_string(),
            format!("{ED} me@laptop with spaces: and # marks"),
            format!("no-pty,command=\"echo hi there\" {ED} c"),
            format!("{EC} ec@host"),
        ] {
            check_key_line(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        }
    }

    #[test]
    fn rejects_what_is_not_a_public_key() {
        let cases = [
            ("hello world", "not an OpenSSH public key"),
            ("ssh-ed25519", "without its base64"),
            ("ssh-ed25519 !!!notbase64", "not valid base64"),
            (
                "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIM8nAIZrpRr4FyBzTIxY3u/0VFRR7kOa8oL/uMR+Pm+A",
                "does not hold a ssh-rsa key",
            ),
            (
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM8nAIZrpRr4FyBz",
                "damaged",
            ),
            ("command=\"x ssh-ed25519 AAAA", "unterminated quote"),
        ];
        for (line, want) in cases {
            let err = check_key_line(line).unwrap_err();
            assert!(err.contains(want), "{line}: {err}");
        }
        assert!(check_key_line(&format!("{ED}\nssh-rsa x")).is_err());
    }

    #[test]
    fn files_name_the_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("keys.pub");
        std::fs::write(&ok, format!("# mine\n\n{ED} a\r\n  {EC} b  \n")).unwrap();
        assert_eq!(
            read_authorized_keys_file(&ok).unwrap(),
            vec![format!("{ED} a"), format!("{EC} b")]
        );

        let bad = dir.path().join("bad.pub");
        std::fs::write(&bad, format!("{ED} a\nssh-ed25519 broken\n")).unwrap();
        let err = read_authorized_keys_file(&bad).unwrap_err().message;
        assert!(
            err.starts_with(&format!("ssh key file {} line 2: ", bad.display())),
            "{err}"
        );
        assert!(!err.contains('\n'));

        let private = dir.path().join("id_ed25519");
        std::fs::write(
            &private,
            "-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n-----END OPENSSH PRIVATE KEY-----\n",
        )
        .unwrap();
        assert!(read_authorized_keys_file(&private)
            .unwrap_err()
            .message
            .contains("the .pub file"));
        let empty = dir.path().join("empty.pub");
        std::fs::write(&empty, "# nothing\n").unwrap();
        assert!(read_authorized_keys_file(&empty)
            .unwrap_err()
            .message
            .contains("holds no public key"));
        assert!(read_authorized_keys_file(&dir.path().join("missing"))
            .unwrap_err()
            .message
            .contains("cannot read ssh key file"));
    }
}
