//! The image build context: the docker/ assets embedded at compile time
//! (build.rs), filtered by docker/.dockerignore, packed as a reproducible tar,
//! and hashed so that `up` rebuilds only when the assets changed.

use sha2::{Digest, Sha256};

use crate::cli::Base;
use crate::error::{Failure, Result};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/docker_assets.rs"));
}

/// One file of the build context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    pub path: String,
    pub mode: u32,
    pub data: Vec<u8>,
}

/// The context for the image: the embedded docker/ files that .dockerignore
/// lets through (Dockerfiles always go, as with `docker build`).
pub fn context() -> Vec<Asset> {
    let all: Vec<Asset> = embedded::FILES
        .iter()
        .map(|(path, mode, data)| Asset {
            path: path.to_string(),
            mode: *mode,
            data: data.to_vec(),
        })
        .collect();
    filter(all)
}

/// Every embedded docker/ file below `dir` (e.g. `image-build/`), paths kept
/// relative to docker/, sorted; .dockerignore does not apply.
pub fn embedded_under(dir: &str) -> Vec<Asset> {
    let mut found: Vec<Asset> = embedded::FILES
        .iter()
        .filter(|(path, _, _)| path.starts_with(dir))
        .map(|(path, mode, data)| Asset {
            path: path.to_string(),
            mode: *mode,
            data: data.to_vec(),
        })
        .collect();
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

fn filter(all: Vec<Asset>) -> Vec<Asset> {
    let patterns = all
        .iter()
        .find(|a| a.path == ".dockerignore")
        .map(|a| parse_dockerignore(&String::from_utf8_lossy(&a.data)))
        .unwrap_or_default();
    let mut kept: Vec<Asset> = all
        .into_iter()
        .filter(|a| a.path.starts_with("Dockerfile") || !ignored(&patterns, &a.path))
        .collect();
    kept.sort_by(|a, b| a.path.cmp(&b.path));
    kept
}

/// The tag this boxvirt builds and runs for a base: `debian-<assets>`, the
/// first 12 hex digits of its embedded assets' hash. Two boxvirt versions
/// (an upgrade, two checkouts) each keep their own image instead of
/// rebuilding one shared tag back and forth.
pub fn image_tag(base: Base) -> String {
    format!(
        "{}:{}-{}",
        IMAGE_REPO,
        base_name(base),
        &embedded_hash()[..12]
    )
}

/// The hash of this binary's embedded build context, computed once per
/// process (the tag, `up`'s rebuild check and the image-build cache key
/// all need it).
pub fn embedded_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| assets_hash(&context()))
}

/// Whether `tag` is one boxvirt (any version) or the compose file builds:
/// `repo:debian`, `repo:debian-<assets>` (and rocky9 alike).
pub fn is_boxvirt_tag(tag: &str) -> bool {
    let Some(rest) = tag
        .strip_prefix(IMAGE_REPO)
        .and_then(|t| t.strip_prefix(':'))
    else {
        return false;
    };
    [Base::Debian, Base::Rocky9].into_iter().any(|b| {
        let name = base_name(b);
        rest == name
            || rest
                .strip_prefix(name)
                .and_then(|v| v.strip_prefix('-'))
                .is_some_and(|v| v.len() == 12 && v.bytes().all(|c| c.is_ascii_hexdigit()))
    })
}
pub const IMAGE_REPO: &str = "boxvirt/nested-host";

pub fn base_name(base: Base) -> &'static str {
    match base {
        Base::Debian => "debian",
        Base::Rocky9 => "rocky9",
    }
}

pub fn dockerfile(base: Base) -> &'static str {
    match base {
        Base::Debian => "Dockerfile",
        Base::Rocky9 => "Dockerfile.rocky9",
    }
}

/// The `FROM` image of a Dockerfile in the context (first stage), to check
/// that it is present before a build that could otherwise try to pull it.
pub fn from_image(assets: &[Asset], dockerfile: &str) -> Option<String> {
    let text =
        String::from_utf8_lossy(&assets.iter().find(|a| a.path == dockerfile)?.data).into_owned();
    text.lines()
        .map(str::trim)
        .find(|l| l.len() > 5 && l[..5].eq_ignore_ascii_case("from "))
        .and_then(|l| {
            l[5..]
                .split_whitespace()
                .find(|w| !w.starts_with("--"))
                .map(str::to_string)
        })
}

/// sha256 over every path, mode and content: the `io.boxvirt.assets` label.
pub fn assets_hash(assets: &[Asset]) -> String {
    let mut h = Sha256::new();
    for a in assets {
        h.update(a.path.as_bytes());
        h.update([0]);
        h.update(format!("{:o}", a.mode).as_bytes());
        h.update([0]);
        h.update((a.data.len() as u64).to_le_bytes());
        h.update(&a.data);
    }
    hex::encode(h.finalize())
}

/// An uncompressed tar with fixed owners and times (same assets, same bytes).
pub fn tar(assets: &[Asset]) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for a in assets {
        let mut header = tar::Header::new_gnu();
        header.set_size(a.data.len() as u64);
        header.set_mode(a.mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, &a.path, a.data.as_slice())
            .map_err(|e| {
                Failure::failed(format!("cannot pack the build context ({}): {e}", a.path))
            })?;
    }
    builder
        .into_inner()
        .map_err(|e| Failure::failed(format!("cannot pack the build context: {e}")))
}

/// One .dockerignore rule: a pattern, negated with a leading `!`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    pattern: String,
    negate: bool,
}

fn parse_dockerignore(text: &str) -> Vec<Rule> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (negate, p) = match l.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, l),
            };
            Rule {
                pattern: p.trim_start_matches('/').trim_end_matches('/').to_string(),
                negate,
            }
        })
        .collect()
}

/// Docker's rule: the last matching pattern decides; a pattern that matches
/// a parent directory matches everything below it.
fn ignored(rules: &[Rule], path: &str) -> bool {
    let mut excluded = false;
    for rule in rules {
        let mut prefixes = path
            .match_indices('/')
            .map(|(i, _)| &path[..i])
            .collect::<Vec<_>>();
        prefixes.push(path);
        if prefixes.iter().any(|p| glob_match(&rule.pattern, p)) {
            excluded = !rule.negate;
        }
    }
    excluded
}

/// `*` and `?` within one path segment, `**` across segments.
fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') if p.get(1) == Some(&b'*') => {
                let rest = p[2..].strip_prefix(b"/").unwrap_or(&p[2..]);
                (0..=t.len()).any(|i| go(rest, &t[i..]))
            }
            Some(b'*') => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != b'/')
                .any(|i| go(&p[1..], &t[i..])),
            Some(b'?') => !t.is_empty() && t[0] != b'/' && go(&p[1..], &t[1..]),
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {

    #[test]
    fn boxvirt_tags_are_the_base_alone_or_with_an_assets_hash() {
        let current = image_tag(Base::Debian);
        assert!(
            current.starts_with("boxvirt/nested-host:debian-"),
            "{current}"
        );
        assert!(is_boxvirt_tag(&current));
        assert!(is_boxvirt_tag("boxvirt/nested-host:debian"));
        assert!(is_boxvirt_tag("boxvirt/nested-host:rocky9-0123456789ab"));
        assert!(!is_boxvirt_tag("boxvirt/nested-host:debian-mine"));
        assert!(!is_boxvirt_tag("boxvirt/nested-host:latest"));
        assert!(!is_boxvirt_tag("other/nested-host:debian"));
    }
    use super::*;

    fn asset(path: &str, data: &str) -> Asset {
        Asset {
            path: path.into(),
            mode: 0o644,
            data: data.as_bytes().to_vec(),
        }
    }

    #[test]
    fn dockerignore_last_match_wins_and_dirs_cover_children() {
        let rules = parse_dockerignore("# c\n*\n!entrypoint.sh\n!conf/\nconf/secret\n");
        assert!(ignored(&rules, "data/ssh/id_ed25519"));
        assert!(!ignored(&rules, "entrypoint.sh"));
        assert!(!ignored(&rules, "conf/a.conf"));
        assert!(ignored(&rules, "conf/secret"));
        assert!(glob_match("**/x", "a/b/x"));
        assert!(!glob_match("*.sh", "a/b.sh"));
    }

    #[test]
    fn context_keeps_dockerfiles_and_drops_ignored_files() {
        let all = vec![
            asset(".dockerignore", "*\n!entrypoint.sh\n"),
            asset("Dockerfile", "FROM debian:bookworm-slim\n"),
            asset(
                "Dockerfile.rocky9",
                "FROM --platform=linux/amd64 rockylinux:9 AS base\n",
            ),
            asset("entrypoint.sh", "#!/bin/sh\n"),
            asset("docker-compose.yml", "services: {}\n"),
        ];
        let kept: Vec<String> = filter(all).into_iter().map(|a| a.path).collect();
        assert_eq!(kept, ["Dockerfile", "Dockerfile.rocky9", "entrypoint.sh"]);
        let kept = filter(vec![
            asset("Dockerfile", "FROM x:y"),
            asset("Dockerfile.rocky9", "FROM --platform=p rockylinux:9 AS b"),
        ]);
        assert_eq!(from_image(&kept, "Dockerfile").as_deref(), Some("x:y"));
        assert_eq!(
            from_image(&kept, "Dockerfile.rocky9").as_deref(),
            Some("rockylinux:9")
        );
    }

    #[test]
    fn hash_changes_with_content_and_tar_is_reproducible() {
        let a = vec![asset("Dockerfile", "FROM a"), asset("entrypoint.sh", "x")];
        let b = vec![asset("Dockerfile", "FROM a"), asset("entrypoint.sh", "y")];
        assert_ne!(assets_hash(&a), assets_hash(&b));
        assert_eq!(assets_hash(&a), assets_hash(&a.clone()));
        assert_eq!(tar(&a).unwrap(), tar(&a).unwrap());
        let bytes = tar(&a).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["Dockerfile", "entrypoint.sh"]);
    }

    #[test]
    fn embedded_context_has_the_real_dockerfiles_and_entrypoint() {
        let ctx = context();
        let names: Vec<&str> = ctx.iter().map(|a| a.path.as_str()).collect();
        for want in ["Dockerfile", "entrypoint.sh", "supervisord.conf"] {
            assert!(names.contains(&want), "{names:?}");
        }
        assert!(!names.iter().any(|n| n.starts_with("data")), "{names:?}");
    }
}
