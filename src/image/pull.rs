//! `image pull`: a catalogue name or a URL becomes a verified image in the
//! local cache. The expected digest comes first (`--sha256` wins, else the
//! checksum file published beside the image), so that a cached image is
//! found without any download and a download is checked against it.

use serde::Serialize;

use super::cache::{Cache, CachedImage};
use super::catalog::{self, Entry};
use super::checksum::{self, Expected};
use super::download::Http;
use super::qcow2;
use crate::error::{Exit, Failure, Result};
use crate::names;
use crate::output::Output;
use crate::progress::Transfer;
use crate::settings::ProcessEnv;

#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// `--sha256 HEX`: wins over any checksum file.
    pub sha256: Option<String>,
    /// `--checksum-url URL`: a SHA256SUMS/SHA512SUMS/CHECKSUM file listing
    /// the image's file name (for URL pulls).
    pub checksum_url: Option<String>,
    /// `--name`: what a URL pull is called (default: from its file name).
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Pulled {
    pub name: String,
    pub sha256: String,
    pub format: String,
    pub virtual_size: u64,
    pub size: u64,
    pub cache_path: String,
    pub url: Option<String>,
    /// False when the image was already in the cache.
    pub downloaded: bool,
    pub login_user: Option<String>,
}

impl Pulled {
    /// What a pull or an import (`url` None: the cache's record) reports.
    pub(crate) fn new(
        name: &str,
        image: &CachedImage,
        url: Option<&str>,
        downloaded: bool,
        login_user: Option<&str>,
    ) -> Pulled {
        let meta = image.meta.as_ref();
        Pulled {
            name: name.to_string(),
            sha256: image.sha256.clone(),
            format: image.format().to_string(),
            virtual_size: meta.map(|m| m.virtual_size).unwrap_or(image.size),
            size: image.size,
            cache_path: image.path.display().to_string(),
            url: url
                .map(str::to_string)
                .or_else(|| meta.and_then(|m| m.url.clone())),
            downloaded,
            login_user: login_user.map(str::to_string),
        }
    }
}

/// What the user asked for.
enum Target {
    Catalog(&'static Entry),
    Url(String),
    Cached(CachedImage),
}

pub fn is_url(s: &str) -> bool {
    s.contains("://")
}

fn check_url(flag: &str, url: &str) -> Result<()> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        Ok(())
    } else {
        Err(Failure::usage(format!(
            "{flag}{url:?} is not an http:// or https:// URL"
        )))
    }
}

/// The message for a name that is neither in the catalogue nor cached.
pub fn unknown_image(name: &str) -> Failure {
    Failure::not_found(format!(
        "unknown image '{name}'; known images: {} (or pass an http(s) URL with --sha256 HEX)",
        catalog::names().join(", ")
    ))
}

/// A name for a URL pull: its file name without the image extension.
fn name_from_url(url: &str) -> Result<String> {
    let file = catalog::file_name(url);
    let stem = [".qcow2", ".img", ".raw"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))
        .unwrap_or(file);
    names::validate("image", stem)
        .map(|()| stem.to_string())
        .map_err(|_| {
            Failure::usage(format!(
                "cannot derive an image name from {url:?}; pass --name NAME"
            ))
        })
}

/// Validates everything the user typed before touching network or disk.
fn resolve(
    cache: &Cache,
    what: &str,
    opts: &PullOptions,
) -> Result<(Target, Option<Expected>, String)> {
    let flag = opts
        .sha256
        .as_deref()
        .map(checksum::parse_sha256_flag)
        .transpose()?;
    if let Some(u) = &opts.checksum_url {
        check_url("--checksum-url ", u)?;
    }
    if let Some(n) = &opts.name {
        names::validate("image", n)?;
    }
    if is_url(what) {
        check_url("", what)?;
        if flag.is_none() && opts.checksum_url.is_none() {
            return Err(Failure::usage(format!(
                "pulling {what} needs its checksum: pass --sha256 HEX (its SHA-256) or --checksum-url URL (a SHA256SUMS/CHECKSUM file that lists '{}')",
                catalog::file_name(what)
            )));
        }
        let name = match &opts.name {
            Some(n) => n.clone(),
            None => name_from_url(what)?,
        };
        return Ok((Target::Url(what.to_string()), flag, name));
    }
    if opts.name.is_some() || opts.checksum_url.is_some() {
        return Err(Failure::usage(
            "--name and --checksum-url apply to URL pulls only; drop them or pass a URL",
        ));
    }
    // An image `image build` made under this name wins over the catalogue's
    // download (it is what the user asked for, and it works offline).
    if let Some(built) = cache.built(what)? {
        if flag.as_ref().is_none_or(|f| f.hex == built.sha256) {
            return Ok((Target::Cached(built), flag, what.to_string()));
        }
    }
    if let Some(entry) = catalog::find(what) {
        return Ok((Target::Catalog(entry), flag, what.to_string()));
    }
    names::validate("image", what).map_err(|_| unknown_image(what))?;
    // An image pulled earlier by URL under this name needs no network.
    let cached = cache.list()?.into_iter().find(|c| c.name() == Some(what));
    match cached {
        Some(c) => {
            if let Some(f) = &flag {
                if f.hex != c.sha256 {
                    return Err(Failure::conflict(format!(
                        "cached image '{what}' has sha256 {}, not {}; pull the URL again with --name to replace it",
                        c.sha256, f.hex
                    )));
                }
            }
            Ok((Target::Cached(c), flag, what.to_string()))
        }
        None => Err(unknown_image(what)),
    }
}

/// Everything `pull` can reject without any network: bad flags, unknown
/// names. Commands call it before connecting to libvirt.
pub fn preflight(env: &ProcessEnv, what: &str, opts: &PullOptions) -> Result<()> {
    resolve(&Cache::of(env)?, what, opts).map(|_| ())
}

/// Pulls `what` (a catalogue name, a URL, or the name of an image cached
/// from a URL) into the cache; does nothing when it is already there.
pub fn pull(out: &Output, env: &ProcessEnv, what: &str, opts: &PullOptions) -> Result<Pulled> {
    let cache = Cache::of(env)?;
    let (target, flag, name) = resolve(&cache, what, opts)?;
    let http = Http::of(env);
    match target {
        Target::Cached(image) => Ok(Pulled::new(&name, &image, None, false, None)),
        Target::Url(url) => {
            let (image, downloaded) = fetch(
                &http,
                &cache,
                out,
                &url,
                opts.checksum_url.as_deref(),
                flag.as_ref(),
                &name,
            )?;
            Ok(Pulled::new(&name, &image, Some(&url), downloaded, None))
        }
        Target::Catalog(entry) => {
            let mut last: Option<Failure> = None;
            for (i, source) in entry.sources.iter().enumerate() {
                match fetch(
                    &http,
                    &cache,
                    out,
                    source.url,
                    Some(source.checksum_url),
                    flag.as_ref(),
                    &name,
                ) {
                    Ok((image, downloaded)) => {
                        if image.format() != entry.format {
                            out.warn(format!(
                                "{} is {}, not {} as the catalogue says",
                                source.url,
                                image.format(),
                                entry.format
                            ));
                        }
                        return Ok(Pulled::new(
                            &name,
                            &image,
                            Some(source.url),
                            downloaded,
                            Some(entry.login_user),
                        ));
                    }
                    // A pruned build: the next source may still serve one.
                    Err(e) if e.exit == Exit::NotFound && i + 1 < entry.sources.len() => {
                        out.detail(format!("{e}; trying the next source"));
                        last = Some(e);
                    }
                    Err(e) => {
                        return Err(offline_hint(
                            e.context(format!("pulling image '{name}'")),
                            &name,
                        ))
                    }
                }
            }
            Err(offline_hint(
                last.unwrap_or_else(|| Failure::failed("the catalogue entry has no source"))
                    .context(format!("pulling image '{name}'")),
                &name,
            ))
        }
    }
}

/// A catalogue image that a recipe can also make says how, in the same line.
fn offline_hint(e: Failure, name: &str) -> Failure {
    match super::build::hint(name) {
        Some(hint) => Failure::new(
            e.exit,
            format!("{}; or {hint} to make it offline", e.message),
        ),
        None => e,
    }
}

/// One source: learn the digest, reuse the cache or download and verify.
fn fetch(
    http: &Http,
    cache: &Cache,
    out: &Output,
    url: &str,
    checksum_url: Option<&str>,
    flag: Option<&Expected>,
    name: &str,
) -> Result<(CachedImage, bool)> {
    let file = catalog::file_name(url);
    let expected = match (flag, checksum_url) {
        (Some(f), _) => f.clone(),
        (None, Some(sums)) => {
            out.detail(format!("reading checksums from {sums}"));
            let text = http.text(sums)?;
            checksum::find_in_checksum_file(&text, file).ok_or_else(|| {
                Failure::failed(format!(
                    "{sums} lists no checksum for '{file}'; pass --sha256 HEX"
                ))
            })?
        }
        (None, None) => {
            return Err(Failure::usage(format!(
                "pulling {url} needs --sha256 HEX or --checksum-url URL"
            )))
        }
    };
    out.detail(format!("expecting {expected}"));
    if let Some(hit) = cache.lookup(&expected)? {
        out.detail(format!("already cached: {}", hit.path.display()));
        return Ok((hit, false));
    }
    let _lock = cache.lock(&expected, || {
        out.note(format!(
            "waiting for another boxvirt that is downloading {file}"
        ))
    })?;
    // It may have finished while we waited.
    if let Some(hit) = cache.lookup(&expected)? {
        return Ok((hit, false));
    }
    let part = cache.part_path(&expected);
    let transfer = Transfer::new(out);
    let digests = http.download(url, &part, &expected, &transfer)?;
    transfer.finish();
    out.detail(format!("verified {expected}"));
    let info = qcow2::probe(&part)?;
    let image = cache.store(&part, &digests, &info, Some(name), url)?;
    Ok((image, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_url_file_names() {
        assert_eq!(
            name_from_url("http://h/d/Rocky-9-GenericCloud-Base-9.6-20250531.0.x86_64.qcow2")
                .unwrap(),
            "Rocky-9-GenericCloud-Base-9.6-20250531.0.x86_64"
        );
        assert_eq!(name_from_url("http://h/x.img?sig=1").unwrap(), "x");
        assert_eq!(name_from_url("http://h/").unwrap_err().exit, Exit::Usage);
    }

    #[test]
    fn usage_errors_come_before_any_io() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path());
        let bad_hex = PullOptions {
            sha256: Some("xyz".into()),
            ..Default::default()
        };
        assert_eq!(
            resolve(&cache, "rocky9", &bad_hex).err().unwrap().exit,
            Exit::Usage
        );
        let e = resolve(
            &cache,
            "http://127.0.0.1:1/x.qcow2",
            &PullOptions::default(),
        )
        .err()
        .unwrap();
        assert_eq!(e.exit, Exit::Usage);
        assert!(
            e.message.contains("--sha256") && e.message.contains("--checksum-url"),
            "{}",
            e.message
        );
        let e = resolve(
            &cache,
            "ftp://h/x.qcow2",
            &PullOptions {
                sha256: Some("a".repeat(64)),
                ..Default::default()
            },
        )
        .err()
        .unwrap();
        assert_eq!(e.exit, Exit::Usage);
        let e = resolve(&cache, "nosuch", &PullOptions::default())
            .err()
            .unwrap();
        assert_eq!(e.exit, Exit::NotFound);
        assert!(
            e.message.contains("rocky9, ubuntu24, debian12"),
            "{}",
            e.message
        );
        assert!(matches!(
            resolve(&cache, "debian12", &PullOptions::default())
                .unwrap()
                .0,
            Target::Catalog(_)
        ));
    }
}
