//! `image import PATH`: a local qcow2 or raw file (a golden image, an
//! air-gapped download) becomes a cached image exactly like a pulled one:
//! checked ([`detect`]), hashed, copied into the cache by digest, and
//! uploaded as a base volume. A refusal writes nothing; a failed or
//! interrupted copy or upload removes what this run made.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::base::{self, BaseVolume};
use super::cache::Cache;
use super::checksum::{Algo, Digests, Expected};
use super::detect;
use super::pull::Pulled;
use super::qcow2::ImageInfo;
use crate::error::{Failure, Result};
use crate::interrupt;
use crate::libvirt::Libvirt;
use crate::names;
use crate::output::Output;
use crate::progress::Transfer;
use crate::settings::ProcessEnv;
use crate::template::Catalog;

const CHUNK: usize = 1 << 20;

/// A file that passed every check, and the name it will be cached under.
#[derive(Debug, Clone)]
pub struct Checked {
    pub path: PathBuf,
    pub name: String,
    pub info: ImageInfo,
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct Imported {
    /// `downloaded` is true when this run copied the file into the cache.
    pub image: Pulled,
    pub volume: Option<BaseVolume>,
}

/// The image name a file gets without `--name`: its stem.
fn name_from_path(path: &Path) -> Result<String> {
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
    let stem = [".qcow2", ".qcow", ".img", ".raw"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))
        .unwrap_or(file);
    names::validate("image", stem)
        .map(|()| stem.to_string())
        .map_err(|_| {
            Failure::usage(format!(
                "cannot derive an image name from {}; pass --name NAME",
                path.display()
            ))
        })
}

/// Everything that can be refused without writing anything: the name and
/// the file's format.
pub fn preflight(path: &Path, name: Option<&str>) -> Result<Checked> {
    if let Some(n) = name {
        names::validate("image", n)?;
    }
    let info = detect::check(path)?;
    let name = match name {
        Some(n) => n.to_string(),
        None => name_from_path(path)?,
    };
    let path = std::fs::canonicalize(path)
        .map_err(|e| Failure::failed(format!("reading {}: {e}", path.display())))?;
    Ok(Checked { path, name, info })
}

/// Reads `path` to the end, feeding the hasher and `sink`; stops early on
/// Ctrl-C.
fn stream(
    path: &Path,
    transfer: &Transfer,
    step: &str,
    sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<String> {
    let fail = |e: std::io::Error| Failure::failed(format!("reading {}: {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(fail)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(fail)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        sink(&buf[..n]).map_err(|e| Failure::failed(format!("copying into the cache: {e}")))?;
        done += n as u64;
        transfer.set_position(done);
        interrupt::check(step)?;
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Refuses a name that already means other bytes in the cache.
fn check_name(cache: &Cache, name: &str, sha256: &str) -> Result<()> {
    let taken = cache
        .list()?
        .into_iter()
        .find(|c| c.name() == Some(name) && c.sha256 != sha256);
    match taken {
        Some(other) => Err(Failure::conflict(format!(
            "image '{name}' is already cached with other content (sha256 {}); pass another --name or run 'boxvirt image rm {name}' first",
            &other.sha256[..12]
        ))),
        None => Ok(()),
    }
}

/// Hashes the file and copies it into the cache unless its digest is
/// there already. The copy is hashed again, so a file that changed
/// meanwhile is refused rather than cached under the wrong digest.
pub fn to_cache(out: &Output, env: &ProcessEnv, checked: &Checked) -> Result<Pulled> {
    let cache = Cache::of(env)?;
    let transfer = Transfer::new(out);
    transfer.set_total(Some(checked.info.file_size));
    transfer.stage(format!("hashing {}", checked.path.display()));
    let sha256 = stream(&checked.path, &transfer, "hashing", &mut |_| Ok(()))?;
    transfer.finish();
    check_name(&cache, &checked.name, &sha256)?;
    let expected = Expected {
        algo: Algo::Sha256,
        hex: sha256.clone(),
    };
    if let Some(hit) = cache.get_sha256(&sha256)? {
        if let Some(other) = hit.name().filter(|n| *n != checked.name) {
            return Err(Failure::conflict(format!(
                "{} is already cached as image '{other}' (sha256 {}); use that name",
                checked.path.display(),
                &sha256[..12]
            )));
        }
        return Ok(Pulled::new(&checked.name, &hit, None, false, None));
    }
    let _lock = cache.lock(&expected, || {
        out.note("waiting for another boxvirt that is caching the same image")
    })?;
    if let Some(hit) = cache.get_sha256(&sha256)? {
        return Ok(Pulled::new(&checked.name, &hit, None, false, None));
    }
    let part = cache.part_path(&expected);
    let result = copy_and_store(out, &cache, checked, &part, &sha256);
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result
}

fn copy_and_store(
    out: &Output,
    cache: &Cache,
    checked: &Checked,
    part: &Path,
    sha256: &str,
) -> Result<Pulled> {
    let fail = |e: std::io::Error| Failure::failed(format!("writing {}: {e}", part.display()));
    let mut dest = std::fs::File::create(part).map_err(fail)?;
    let transfer = Transfer::new(out);
    transfer.set_total(Some(checked.info.file_size));
    transfer.stage(format!("copying {} into the cache", checked.path.display()));
    let copied = stream(&checked.path, &transfer, "copying", &mut |b| {
        dest.write_all(b)
    })?;
    dest.sync_all().map_err(fail)?;
    transfer.finish();
    if copied != sha256 {
        return Err(Failure::failed(format!(
            "{} changed while it was imported; try again when nothing writes to it",
            checked.path.display()
        )));
    }
    // The copy is what gets uploaded: check it, not the source.
    let info = detect::check(part)?;
    let url = format!("file://{}", checked.path.display());
    let digests = Digests {
        sha256: sha256.to_string(),
        sha512: None,
    };
    let image = cache.store(part, &digests, &info, Some(&checked.name), &url)?;
    Ok(Pulled::new(&checked.name, &image, None, true, None))
}

/// Removes the cache entry this run made (after a failed upload).
fn forget(env: &ProcessEnv, pulled: &Pulled) {
    if !pulled.downloaded {
        return;
    }
    if let Ok(cache) = Cache::of(env) {
        if let Ok(Some(image)) = cache.get_sha256(&pulled.sha256) {
            let _ = cache.remove(&image);
        }
    }
}

/// The whole import: cache, then (with a connection) upload. Ctrl-C or a
/// failed upload removes the cache entry and volume this run made.
pub fn import(
    conn: Option<&Libvirt>,
    templates: &Catalog,
    out: &Output,
    env: &ProcessEnv,
    checked: &Checked,
) -> Result<Imported> {
    let _signals = interrupt::Deferred::new();
    let image = to_cache(out, env, checked)?;
    let Some(conn) = conn else {
        return Ok(Imported {
            image,
            volume: None,
        });
    };
    let uploaded = base::upload(conn, templates, out, &image).and_then(|v| {
        // Ctrl-C during the upload: the volume goes too.
        interrupt::check("upload").inspect_err(|_| undo_volume(conn, &v))?;
        Ok(v)
    });
    match uploaded {
        Ok(v) => Ok(Imported {
            image,
            volume: Some(v),
        }),
        Err(e) => {
            forget(env, &image);
            Err(e.context(format!("importing image '{}'", checked.name)))
        }
    }
}

/// Deletes the volume if this run uploaded it.
fn undo_volume(conn: &Libvirt, v: &BaseVolume) {
    if v.uploaded {
        let _ = conn.delete_volume(&v.pool, &v.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Exit;

    #[test]
    fn names_come_from_the_file_stem_or_the_flag() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("golden-v2.qcow2");
        let mut disk = vec![0u8; 4096];
        disk[510] = 0x55;
        std::fs::write(&p, &disk).unwrap();
        assert_eq!(preflight(&p, None).unwrap().name, "golden-v2");
        assert_eq!(preflight(&p, Some("gold")).unwrap().name, "gold");
        assert_eq!(preflight(&p, Some("a/b")).unwrap_err().exit, Exit::Usage);
        let odd = d.path().join("my image.raw");
        std::fs::write(&odd, &disk).unwrap();
        let e = preflight(&odd, None).unwrap_err();
        assert!(e.message.contains("--name"), "{}", e.message);
        assert_eq!(preflight(&odd, Some("mine")).unwrap().name, "mine");
    }
}
