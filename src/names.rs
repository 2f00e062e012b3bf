//! Names of VMs, networks, instances and volumes: one rule everywhere, so a
//! name that works in one command works in all (and in file paths and XML).

use crate::error::{Failure, Result};

pub const MAX_LEN: usize = 64;

/// 1..=64 characters from `[A-Za-z0-9._-]`, starting with a letter or digit.
pub fn validate(kind: &str, name: &str) -> Result<()> {
    let problem = if name.is_empty() {
        Some("is empty".to_string())
    } else if name.chars().count() > MAX_LEN {
        Some(format!("is longer than {MAX_LEN} characters"))
    } else if name.starts_with('-') || name.starts_with('.') {
        Some("starts with '-' or '.'".to_string())
    } else {
        name.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            .map(|c| format!("contains {c:?}"))
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(Failure::usage(format!(
            "invalid {kind} name {name:?}: it {p}; use 1-{MAX_LEN} letters, digits, '.', '_' or '-', starting with a letter or digit"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["tiny-1", "rocky9", "a", "web_01.lab", &"x".repeat(64)] {
            validate("vm", ok).unwrap();
        }
    }

    #[test]
    fn rejects_each_bad_shape_with_the_reason() {
        for (bad, why) in [
            ("", "is empty"),
            (&"x".repeat(65) as &str, "longer than 64"),
            ("a/b", "'/'"),
            ("a'b", "'\\''"),
            ("a\"b", "'\"'"),
            ("a<b", "'<'"),
            ("a b", "' '"),
            ("-x", "starts with '-'"),
        ] {
            let err = validate("vm", bad).unwrap_err();
            assert!(err.message.contains(why), "{bad:?}: {}", err.message);
            assert_eq!(err.exit, crate::error::Exit::Usage);
        }
    }
}
