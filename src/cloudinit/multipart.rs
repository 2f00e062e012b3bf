//! cloud-init's user-data types, and a MIME multipart that carries
//! boxvirt's #cloud-config next to a user's part of another type.

use sha2::{Digest, Sha256};

/// A user-data type cloud-init recognises by its first characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    CloudConfig,
    /// Already a MIME message: attached as it is (cloud-init walks nested parts).
    Mime,
    /// Any other type, with its MIME content type.
    Other(&'static str),
}

/// cloud-init's prefixes (cloudinit/handlers: INCLUSION_TYPES_MAP); the
/// longest match wins, as in cloud-init (#cloud-config-archive is not
/// #cloud-config).
const PREFIXES: &[(&str, &str)] = &[
    ("#include", "text/x-include-url"),
    ("#include-once", "text/x-include-once-url"),
    ("#!", "text/x-shellscript"),
    ("#cloud-config", "text/cloud-config"),
    ("#upstart-job", "text/upstart-job"),
    ("#part-handler", "text/part-handler"),
    ("#cloud-boothook", "text/cloud-boothook"),
    ("#cloud-config-archive", "text/cloud-config-archive"),
    ("#cloud-config-jsonp", "text/cloud-config-jsonp"),
    ("## template: jinja", "text/jinja2"),
];

/// The type of a user-data text, or None when cloud-init would not handle it.
pub fn kind_of(text: &str) -> Option<Kind> {
    // cloud-init looks for a MIME header before anything else.
    let head: String = text
        .chars()
        .take(4096)
        .collect::<String>()
        .to_ascii_lowercase();
    if head.contains("mime-version:") {
        return Some(Kind::Mime);
    }
    let (_, ctype) = PREFIXES
        .iter()
        .filter(|(p, _)| text.starts_with(p))
        .max_by_key(|(p, _)| p.len())?;
    Some(if *ctype == "text/cloud-config" {
        Kind::CloudConfig
    } else {
        Kind::Other(ctype)
    })
}

/// A multipart/mixed message: `cloud_config` first, then `extra`.
pub fn combine(cloud_config: &str, extra: &str, kind: Kind) -> String {
    let boundary = boundary_for(&[cloud_config, extra]);
    let mut out =
        format!("Content-Type: multipart/mixed; boundary=\"{boundary}\"\nMIME-Version: 1.0\n\n");
    out.push_str(&format!("--{boundary}\n"));
    out.push_str(&part("text/cloud-config", "boxvirt.cfg", cloud_config));
    out.push_str(&format!("--{boundary}\n"));
    match kind {
        // A message is a valid body part as it is: its headers, a blank line, its body.
        Kind::Mime => out.push_str(&with_newline(extra)),
        Kind::CloudConfig => out.push_str(&part("text/cloud-config", "user-data", extra)),
        Kind::Other(ctype) => out.push_str(&part(ctype, "user-data", extra)),
    }
    out.push_str(&format!("--{boundary}--\n"));
    out
}

fn part(ctype: &str, filename: &str, body: &str) -> String {
    let (charset, encoding) = if body.is_ascii() {
        ("us-ascii", "7bit")
    } else {
        ("utf-8", "8bit")
    };
    format!(
        "Content-Type: {ctype}; charset=\"{charset}\"\nMIME-Version: 1.0\nContent-Transfer-Encoding: {encoding}\nContent-Disposition: attachment; filename=\"{filename}\"\n\n{}",
        with_newline(body)
    )
}

fn with_newline(s: &str) -> String {
    if s.ends_with('\n') {
        s.to_string()
    } else {
        format!("{s}\n")
    }
}

/// A boundary that occurs in no part (derived from the contents, so the
/// same input gives the same bytes).
fn boundary_for(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for p in parts {
        hasher.update(p.as_bytes());
    }
    let digest = hex::encode(hasher.finalize());
    free_boundary(&digest[..24], parts)
}

fn free_boundary(tag: &str, parts: &[&str]) -> String {
    (0..)
        .map(|n| format!("==BOXVIRT-{tag}-{n}=="))
        .find(|b| !parts.iter().any(|p| p.contains(b.as_str())))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_follow_cloud_inits_prefixes() {
        assert_eq!(kind_of("#cloud-config\na: 1\n"), Some(Kind::CloudConfig));
        assert_eq!(
            kind_of("#cloud-config-archive\n- x\n"),
            Some(Kind::Other("text/cloud-config-archive"))
        );
        assert_eq!(
            kind_of("#!/bin/sh\necho hi\n"),
            Some(Kind::Other("text/x-shellscript"))
        );
        assert_eq!(
            kind_of("#include-once\nhttp://x\n"),
            Some(Kind::Other("text/x-include-once-url"))
        );
        assert_eq!(
            kind_of("#cloud-boothook\n#!/bin/sh\n"),
            Some(Kind::Other("text/cloud-boothook"))
        );
        assert_eq!(
            kind_of("## template: jinja\n#cloud-config\n"),
            Some(Kind::Other("text/jinja2"))
        );
        assert_eq!(
            kind_of("Content-Type: multipart/mixed; boundary=x\nMIME-Version: 1.0\n\n"),
            Some(Kind::Mime)
        );
        assert_eq!(kind_of("echo hi\n"), None);
        assert_eq!(kind_of(" #cloud-config\n"), None);
    }

    #[test]
    fn a_script_becomes_the_second_part() {
        let ours = "#cloud-config\nhostname: a\n";
        let text = combine(
            ours,
            "#!/bin/sh\necho hi",
            Kind::Other("text/x-shellscript"),
        );
        let b = boundary_for(&[ours, "#!/bin/sh\necho hi"]);
        let want = format!(
            "Content-Type: multipart/mixed; boundary=\"{b}\"\nMIME-Version: 1.0\n\n--{b}\nContent-Type: text/cloud-config; charset=\"us-ascii\"\nMIME-Version: 1.0\nContent-Transfer-Encoding: 7bit\nContent-Disposition: attachment; filename=\"boxvirt.cfg\"\n\n#cloud-config\nhostname: a\n--{b}\nContent-Type: text/x-shellscript; charset=\"us-ascii\"\nMIME-Version: 1.0\nContent-Transfer-Encoding: 7bit\nContent-Disposition: attachment; filename=\"user-data\"\n\n#!/bin/sh\necho hi\n--{b}--\n"
        );
        assert_eq!(text, want);
        assert!(combine(
            ours,
            "#!/bin/sh\necho é\n",
            Kind::Other("text/x-shellscript")
        )
        .contains("charset=\"utf-8\"\nMIME-Version: 1.0\nContent-Transfer-Encoding: 8bit"));
    }

    #[test]
    fn the_boundary_never_occurs_in_a_part() {
        let sneaky = "#!/bin/sh\n# --==BOXVIRT-abc-0==\n";
        assert_eq!(free_boundary("abc", &["x", sneaky]), "==BOXVIRT-abc-1==");
        assert_eq!(free_boundary("abc", &["x"]), "==BOXVIRT-abc-0==");
    }
}
