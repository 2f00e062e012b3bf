//! The local image cache, keyed by content: `<cache>/images/sha256/<hex>.<format>`
//! holds only verified images (a download lands there by rename after its
//! digest matched), with a `<hex>.json` note of where it came from. Partial
//! downloads live in `<cache>/images/partial/`, named by the digest they
//! must reach, so a resumed download can only ever complete the same bytes.
//!
//! Location: `BOXVIRT_CACHE_DIR`, else `$XDG_CACHE_HOME/boxvirt`, else
//! `~/.cache/boxvirt`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::checksum::{Algo, Digests, Expected};
use super::qcow2::ImageInfo;
use crate::error::{Failure, Result};
use crate::settings::ProcessEnv;

/// Where a cached image came from (the `<hex>.json` beside it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Meta {
    pub name: Option<String>,
    pub url: Option<String>,
    pub sha256: String,
    pub sha512: Option<String>,
    pub format: String,
    pub virtual_size: u64,
    pub size: u64,
    pub pulled_at_unix: u64,
    /// The build key when `image build` made the image (else it was pulled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub built_from: Option<String>,
}

impl Meta {
    fn new(sha256: &str, info: &ImageInfo, name: Option<&str>) -> Meta {
        Meta {
            name: name.map(str::to_string),
            url: None,
            sha256: sha256.to_string(),
            sha512: None,
            format: info.format.to_string(),
            virtual_size: info.virtual_size,
            size: info.file_size,
            pulled_at_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            built_from: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CachedImage {
    pub sha256: String,
    pub path: PathBuf,
    pub size: u64,
    /// Missing when the note was deleted or unreadable; the image is still good.
    pub meta: Option<Meta>,
}

impl CachedImage {
    pub fn name(&self) -> Option<&str> {
        self.meta.as_ref().and_then(|m| m.name.as_deref())
    }

    pub fn format(&self) -> &str {
        match self.path.extension().and_then(|e| e.to_str()) {
            Some("qcow2") => "qcow2",
            _ => "raw",
        }
    }
}

pub struct Cache {
    root: PathBuf,
}

/// Holds an exclusive lock on one partial download until dropped.
pub struct Lock {
    _file: File,
}

fn io_fail(what: &str, path: &Path, e: std::io::Error) -> Failure {
    Failure::failed(format!("{what} {}: {e}", path.display()))
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

impl Cache {
    pub fn at(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }

    /// The cache the environment names (see the module docs; resolved in
    /// settings.rs).
    pub fn of(env: &ProcessEnv) -> Result<Cache> {
        match &env.cache_dir {
            Some(dir) => Ok(Cache::at(dir)),
            None => Err(Failure::usage(
                "no cache directory: set BOXVIRT_CACHE_DIR (or HOME or XDG_CACHE_HOME)",
            )),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn verified_dir(&self) -> PathBuf {
        self.root.join("images").join("sha256")
    }

    fn partial_dir(&self) -> PathBuf {
        self.root.join("images").join("partial")
    }

    /// Where the download that must reach `expected` accumulates.
    pub fn part_path(&self, expected: &Expected) -> PathBuf {
        self.partial_dir()
            .join(format!("{}-{}.part", expected.algo.as_str(), expected.hex))
    }

    /// Only one process may write a given partial download; others wait.
    pub fn lock(&self, expected: &Expected, on_wait: impl FnOnce()) -> Result<Lock> {
        let dir = self.partial_dir();
        std::fs::create_dir_all(&dir).map_err(|e| io_fail("creating cache directory", &dir, e))?;
        let path = dir.join(format!("{}-{}.lock", expected.algo.as_str(), expected.hex));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_fail("opening lock file", &path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                on_wait();
                file.lock().map_err(|e| io_fail("locking", &path, e))?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_fail("locking", &path, e)),
        }
        Ok(Lock { _file: file })
    }

    fn image_at(&self, sha256: &str) -> Option<PathBuf> {
        ["qcow2", "raw"]
            .iter()
            .map(|ext| self.verified_dir().join(format!("{sha256}.{ext}")))
            .find(|p| p.is_file())
    }

    fn meta_path(&self, sha256: &str) -> PathBuf {
        self.verified_dir().join(format!("{sha256}.json"))
    }

    fn load(&self, sha256: &str, path: PathBuf) -> Result<CachedImage> {
        let size = std::fs::metadata(&path)
            .map_err(|e| io_fail("reading", &path, e))?
            .len();
        let meta = std::fs::read_to_string(self.meta_path(sha256))
            .ok()
            .and_then(|t| serde_json::from_str::<Meta>(&t).ok());
        Ok(CachedImage {
            sha256: sha256.to_string(),
            path,
            size,
            meta,
        })
    }

    pub fn get_sha256(&self, sha256: &str) -> Result<Option<CachedImage>> {
        match self.image_at(sha256) {
            Some(path) => self.load(sha256, path).map(Some),
            None => Ok(None),
        }
    }

    /// The verified image with this digest, if cached (SHA-512 through the notes).
    pub fn lookup(&self, expected: &Expected) -> Result<Option<CachedImage>> {
        match expected.algo {
            Algo::Sha256 => self.get_sha256(&expected.hex),
            Algo::Sha512 => Ok(self.list()?.into_iter().find(|c| {
                c.meta.as_ref().and_then(|m| m.sha512.as_deref()) == Some(expected.hex.as_str())
            })),
        }
    }

    /// Every verified image, sorted by name then digest.
    pub fn list(&self) -> Result<Vec<CachedImage>> {
        let dir = self.verified_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_fail("reading cache directory", &dir, e)),
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let (Some(stem), Some(ext)) = (
                path.file_stem().and_then(|s| s.to_str()),
                path.extension().and_then(|s| s.to_str()),
            ) else {
                continue;
            };
            if is_sha256_hex(stem) && matches!(ext, "qcow2" | "raw") {
                found.push(self.load(stem, path.clone())?);
            }
        }
        found.sort_by(|a, b| (a.name(), &a.sha256).cmp(&(b.name(), &b.sha256)));
        Ok(found)
    }

    /// Moves a verified download into the cache and writes its note.
    pub fn store(
        &self,
        part: &Path,
        digests: &Digests,
        info: &ImageInfo,
        name: Option<&str>,
        url: &str,
    ) -> Result<CachedImage> {
        let mut meta = Meta::new(&digests.sha256, info, name);
        meta.url = Some(url.to_string());
        meta.sha512 = digests.sha512.clone();
        self.store_with(part, meta, info)
    }

    /// Moves an image made by `image build` (recipe key `key`) into the cache.
    pub fn store_built(
        &self,
        part: &Path,
        sha256: &str,
        info: &ImageInfo,
        name: &str,
        key: &str,
    ) -> Result<CachedImage> {
        let mut meta = Meta::new(sha256, info, Some(name));
        meta.built_from = Some(key.to_string());
        self.store_with(part, meta, info)
    }

    /// The newest image `image build` made under `name`, if cached.
    pub fn built(&self, name: &str) -> Result<Option<CachedImage>> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|c| {
                c.name() == Some(name) && c.meta.as_ref().is_some_and(|m| m.built_from.is_some())
            })
            .max_by_key(|c| c.meta.as_ref().map_or(0, |m| m.pulled_at_unix)))
    }

    fn store_with(&self, part: &Path, meta: Meta, info: &ImageInfo) -> Result<CachedImage> {
        let dir = self.verified_dir();
        std::fs::create_dir_all(&dir).map_err(|e| io_fail("creating cache directory", &dir, e))?;
        let sha256 = meta.sha256.clone();
        // The note first: an image without one is still valid, a note alone is ignored.
        let note = self.meta_path(&sha256);
        let tmp = note.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(&meta)
            .map_err(|e| Failure::failed(format!("encoding {}: {e}", note.display())))?;
        std::fs::write(&tmp, text).map_err(|e| io_fail("writing", &tmp, e))?;
        std::fs::rename(&tmp, &note).map_err(|e| io_fail("writing", &note, e))?;
        let path = dir.join(format!("{sha256}.{}", info.format));
        std::fs::rename(part, &path)
            .map_err(|e| io_fail("moving the verified image to", &path, e))?;
        Ok(CachedImage {
            sha256,
            path,
            size: info.file_size,
            meta: Some(meta),
        })
    }

    /// Deletes a cached image and its note.
    pub fn remove(&self, image: &CachedImage) -> Result<()> {
        std::fs::remove_file(&image.path).map_err(|e| io_fail("removing", &image.path, e))?;
        let note = self.meta_path(&image.sha256);
        match std::fs::remove_file(&note) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io_fail("removing", &note, e))
            }
            _ => Ok(()),
        }
    }

    /// Partial downloads left over (for tests and `image list -v`).
    pub fn partial_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.partial_dir())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "part"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_lookup_list_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path());
        assert!(cache.list().unwrap().is_empty());
        let sha256 = "a".repeat(64);
        let sha512 = "b".repeat(128);
        let exp = Expected {
            algo: Algo::Sha512,
            hex: sha512.clone(),
        };
        let part = cache.part_path(&exp);
        std::fs::create_dir_all(part.parent().unwrap()).unwrap();
        std::fs::write(&part, b"data").unwrap();
        let info = ImageInfo {
            format: "qcow2",
            virtual_size: 10,
            file_size: 4,
        };
        let digests = Digests {
            sha256: sha256.clone(),
            sha512: Some(sha512),
        };
        let stored = cache
            .store(&part, &digests, &info, Some("deb"), "http://x/y.qcow2")
            .unwrap();
        assert!(!part.exists());
        assert_eq!(
            stored.path,
            dir.path().join(format!("images/sha256/{sha256}.qcow2"))
        );
        assert_eq!(cache.lookup(&exp).unwrap().unwrap().name(), Some("deb"));
        let by256 = Expected {
            algo: Algo::Sha256,
            hex: sha256,
        };
        assert_eq!(cache.lookup(&by256).unwrap().unwrap().size, 4);
        assert_eq!(cache.list().unwrap().len(), 1);
        cache.remove(&stored).unwrap();
        assert!(cache.list().unwrap().is_empty());
        assert!(cache.lookup(&by256).unwrap().is_none());
    }
}
