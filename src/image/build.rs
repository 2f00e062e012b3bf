//! `image build NAME`: bootable images made offline by a recipe
//! (docker/image-build/NAME.sh) in a throwaway container of the nested-host
//! image, cached by their build inputs: the recipe's files, its name and the
//! nested-host image's build context. A cached build is reused without
//! Docker. A disk image goes into the content cache (like a pulled image,
//! under the recipe's name); other outputs (the tiny guest's kernel and
//! initramfs) stay in `<cache>/builds/NAME/<key>/`. A failed or interrupted
//! build leaves nothing: it runs in a temporary directory that is renamed
//! into place at the end.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cache::Cache;
use super::pull::Pulled;
use super::qcow2;
use crate::cli::Base;
use crate::error::{Failure, Result};
use crate::interrupt;
use crate::nested::build_context::{self, Asset};
use crate::nested::image::needs_build;
use crate::nested::image_builder::{self, Line, RecipeRun};
use crate::nested::Engine;
use crate::output::Output;
use crate::progress::Spinner;
use crate::settings::ProcessEnv;

/// What a recipe makes: (role, file name in its output directory).
#[derive(Debug, Clone, Copy)]
pub struct Recipe {
    pub name: &'static str,
    pub description: &'static str,
    pub outputs: &'static [(&'static str, &'static str)],
}

/// The role of a disk image output (goes into the content cache and pool).
pub const ROLE_DISK: &str = "disk";

pub const RECIPES: &[Recipe] = &[
    Recipe {
        name: "debian12",
        description:
            "Debian 12 cloud image: GPT, UEFI (systemd-boot), cloud-init, openssh, qemu-guest-agent",
        outputs: &[(ROLE_DISK, "debian12.qcow2")],
    },
    Recipe {
        name: "tiny",
        description: "the tiny test guest: Debian's cloud kernel and a busybox+dropbear initramfs",
        outputs: &[("kernel", "vmlinuz"), ("initrd", "initrd.img")],
    },
];

/// The nested-host base whose image runs the recipes (it has debootstrap
/// and a Debian mirror; the Rocky image has neither).
const BUILDER_BASE: Base = Base::Debian;
/// Log lines kept to show when a build fails.
const TAIL: usize = 15;

pub fn names() -> Vec<&'static str> {
    RECIPES.iter().map(|r| r.name).collect()
}

/// The recipe called `name`, or a usage error listing the known ones.
pub fn recipe(name: &str) -> Result<&'static Recipe> {
    RECIPES.iter().find(|r| r.name == name).ok_or_else(|| {
        Failure::usage(format!(
            "no image recipe '{name}'; known: {}",
            names().join(", ")
        ))
    })
}

/// The command that makes image `name` offline, when a recipe exists.
pub fn hint(name: &str) -> Option<String> {
    recipe(name)
        .ok()
        .map(|r| format!("run 'boxvirt image build {}'", r.name))
}

/// One file a build made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BuiltFile {
    pub role: String,
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
}

/// A finished build (also its manifest, `<cache>/builds/NAME/<key>.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Built {
    pub name: String,
    /// sha256 of the build inputs (see [`cache_key`]).
    pub key: String,
    pub files: Vec<BuiltFile>,
    /// True when this call reused an earlier build.
    #[serde(skip_deserializing)]
    pub cached: bool,
}

impl Built {
    pub fn file(&self, role: &str) -> Option<&BuiltFile> {
        self.files.iter().find(|f| f.role == role)
    }

    /// The disk image as a pulled one, for [`super::base::upload`].
    pub fn as_pulled(&self) -> Result<Option<Pulled>> {
        let Some(disk) = self.file(ROLE_DISK) else {
            return Ok(None);
        };
        let info = qcow2::probe(&disk.path)?;
        Ok(Some(Pulled {
            name: self.name.clone(),
            sha256: disk.sha256.clone(),
            format: info.format.to_string(),
            virtual_size: info.virtual_size,
            size: disk.size,
            cache_path: disk.path.display().to_string(),
            url: None,
            downloaded: !self.cached,
            login_user: None,
        }))
    }
}

/// The files of one recipe: `image-build/NAME.sh` and `image-build/NAME/*`.
pub fn recipe_inputs(all: &[Asset], name: &str) -> Vec<Asset> {
    let script = format!("image-build/{name}.sh");
    let dir = format!("image-build/{name}/");
    all.iter()
        .filter(|a| a.path == script || a.path.starts_with(&dir))
        .cloned()
        .collect()
}

/// sha256 over the recipe's name, its files (path, mode, bytes) and the
/// digest of the nested-host image's build context it runs in.
pub fn cache_key(name: &str, files: &[Asset], host_context: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"boxvirt-image-build-1\0");
    h.update(name.as_bytes());
    h.update([0]);
    h.update(build_context::assets_hash(files).as_bytes());
    h.update([0]);
    h.update(host_context.as_bytes());
    hex::encode(h.finalize())
}

/// The key of recipe `name` as built by this binary.
pub fn current_key(name: &str) -> Result<String> {
    recipe(name)?;
    let files = recipe_inputs(&image_builder::recipe_files(), name);
    let host = build_context::embedded_hash();
    Ok(cache_key(name, &files, host))
}

/// Options of [`build`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildOptions {
    /// Build even when a build with the same inputs is cached.
    pub rebuild: bool,
}

/// Where the builds of one recipe live.
fn builds_dir(cache: &Cache, name: &str) -> PathBuf {
    cache.root().join("builds").join(name)
}

/// The cached build of `name` with the current inputs, if complete. No Docker.
pub fn cached(env: &ProcessEnv, name: &str) -> Result<Option<Built>> {
    let cache = Cache::of(env)?;
    load(&cache, name, &current_key(name)?)
}

fn load(cache: &Cache, name: &str, key: &str) -> Result<Option<Built>> {
    let path = builds_dir(cache, name).join(format!("{key}.json"));
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let Ok(mut built) = serde_json::from_str::<Built>(&text) else {
        return Ok(None);
    };
    // `image rm` may have removed the disk image since: then build again.
    if built.files.iter().any(|f| !f.path.is_file()) {
        return Ok(None);
    }
    built.cached = true;
    Ok(Some(built))
}

/// Builds image `name` unless a build with the same inputs is cached.
pub fn build(out: &Output, env: &ProcessEnv, name: &str, opts: BuildOptions) -> Result<Built> {
    let recipe = recipe(name)?;
    let cache = Cache::of(env)?;
    let key = current_key(name)?;
    if !opts.rebuild {
        if let Some(built) = load(&cache, name, &key)? {
            out.detail(format!("build {key} of '{name}' is cached"));
            return Ok(built);
        }
    }
    let dir = builds_dir(&cache, name);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::failed(format!("creating {}: {e}", dir.display())))?;
    let _lock = lock(&dir, out, name)?;
    if !opts.rebuild {
        // Another boxvirt may have finished the same build while we waited.
        if let Some(built) = load(&cache, name, &key)? {
            return Ok(built);
        }
    }
    let _signals = interrupt::Deferred::new();
    let tmp = TempDir::new(&dir)?;
    let started = Instant::now();
    run_in_container(out, recipe, &tmp.0)?;
    interrupt::check("image build")?;
    let built = keep(&cache, recipe, &key, &tmp.0, &dir)?;
    remove_older_builds(&cache, &built, &dir);
    out.note(format!(
        "built image '{name}' in {} s",
        started.elapsed().as_secs()
    ));
    Ok(built)
}

/// One build of a recipe at a time (per cache).
fn lock(dir: &Path, out: &Output, name: &str) -> Result<File> {
    let path = dir.join(".lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Failure::failed(format!("opening {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            out.note(format!("waiting for another boxvirt that builds '{name}'"));
            file.lock()
                .map_err(|e| Failure::failed(format!("locking {}: {e}", path.display())))?;
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(Failure::failed(format!("locking {}: {e}", path.display())))
        }
    }
    Ok(file)
}

/// A build directory removed unless it was renamed into place.
struct TempDir(PathBuf);

impl TempDir {
    fn new(parent: &Path) -> Result<TempDir> {
        let path = parent.join(format!(".tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .map_err(|e| Failure::failed(format!("creating {}: {e}", path.display())))?;
        // Docker needs an absolute path to bind-mount.
        let path = path
            .canonicalize()
            .map_err(|e| Failure::failed(format!("resolving {}: {e}", path.display())))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the recipe with its stages on the spinner; the full log with -v,
/// the last lines when it fails.
fn run_in_container(out: &Output, recipe: &Recipe, out_dir: &Path) -> Result<()> {
    let engine = Engine::connect()?;
    let tag = build_context::image_tag(BUILDER_BASE);
    let host = build_context::embedded_hash();
    // By id: the tag may be moved by another build meanwhile.
    let image_id = match engine.image(&tag)? {
        Some(img) if !needs_build(Some(&img), host) => img.id,
        _ => {
            out.note(format!("building {tag} first: the recipes run in it"));
            engine.build_image(BUILDER_BASE, false, out)?
        }
    };
    let files = image_builder::recipe_files();
    let run = RecipeRun {
        recipe: recipe.name,
        image: &image_id,
        files: &files,
        out_dir,
        // SAFETY: geteuid/getegid cannot fail.
        owner: unsafe { (libc::geteuid(), libc::getegid()) },
    };
    let progress = Spinner::new(out);
    progress.stage(format!("building image '{}'", recipe.name));
    let mut tail: Vec<String> = Vec::new();
    let result = engine.run_recipe(&run, &mut |line| match line {
        Line::Stage(stage) => {
            progress.stage(format!("building image '{}': {stage}", recipe.name));
            remember(&mut tail, format!("==> {stage}"));
        }
        Line::Log(text) => {
            if out.verbose > 0 {
                progress.line(&text);
            }
            remember(&mut tail, text);
        }
    });
    progress.finish();
    result.map_err(|e| {
        let interrupted = interrupt::check("").is_err();
        if interrupted {
            return e.context(format!("building image '{}'", recipe.name));
        }
        if out.verbose == 0 {
            for line in &tail {
                eprintln!("  | {line}");
            }
        }
        Failure::new(
            e.exit,
            format!(
                "building image '{}': {}; rerun with -v for the full log",
                recipe.name, e.message
            ),
        )
    })
}

fn remember(tail: &mut Vec<String>, line: String) {
    tail.push(line);
    if tail.len() > TAIL {
        tail.remove(0);
    }
}

/// Moves the outputs into place and writes the manifest (last: a build
/// without one is not cached).
fn keep(cache: &Cache, recipe: &Recipe, key: &str, tmp: &Path, dir: &Path) -> Result<Built> {
    let final_dir = dir.join(key);
    let mut files = Vec::new();
    for (role, file) in recipe.outputs {
        let path = tmp.join(file);
        let (sha256, size) = hash_file(&path).map_err(|e| {
            Failure::failed(format!(
                "the {} recipe did not make {file}: {e}",
                recipe.name
            ))
        })?;
        if size == 0 {
            return Err(Failure::failed(format!(
                "the {} recipe made an empty {file}",
                recipe.name
            )));
        }
        files.push(BuiltFile {
            role: role.to_string(),
            path: final_dir.join(file),
            sha256,
            size,
        });
    }
    // Disk images go into the content cache, next to pulled ones.
    for f in files.iter_mut().filter(|f| f.role == ROLE_DISK) {
        let part = tmp.join(f.path.file_name().unwrap_or_default());
        let info = qcow2::probe(&part)?;
        f.path = cache
            .store_built(&part, &f.sha256, &info, recipe.name, key)?
            .path;
    }
    let _ = std::fs::remove_dir_all(&final_dir);
    std::fs::rename(tmp, &final_dir).map_err(|e| {
        Failure::failed(format!("moving the build to {}: {e}", final_dir.display()))
    })?;
    let built = Built {
        name: recipe.name.to_string(),
        key: key.to_string(),
        files,
        cached: false,
    };
    let manifest = dir.join(format!("{key}.json"));
    let text = serde_json::to_string_pretty(&built)
        .map_err(|e| Failure::failed(format!("encoding {}: {e}", manifest.display())))?;
    let part = manifest.with_extension("json.tmp");
    std::fs::write(&part, text)
        .and_then(|()| std::fs::rename(&part, &manifest))
        .map_err(|e| Failure::failed(format!("writing {}: {e}", manifest.display())))?;
    Ok(built)
}

/// Builds of this recipe with other inputs, and the disk images they put
/// into the content cache (base volumes already uploaded from them stay
/// until `image rm`: the pool holds its own copy).
fn remove_older_builds(cache: &Cache, built: &Built, dir: &Path) {
    let key = built.key.as_str();
    let older = cache.list().unwrap_or_default().into_iter().filter(|c| {
        c.name() == Some(built.name.as_str())
            && c.meta
                .as_ref()
                .and_then(|m| m.built_from.as_deref())
                .is_some_and(|k| k != key)
    });
    for image in older {
        let _ = cache.remove(&image);
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if stem.len() == 64 && stem != key {
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(h.finalize()), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asset(path: &str, data: &str) -> Asset {
        Asset {
            path: path.into(),
            mode: 0o755,
            data: data.as_bytes().to_vec(),
        }
    }

    #[test]
    fn the_key_follows_the_recipe_its_files_and_the_host_image() {
        let all = vec![
            asset("image-build/tiny.sh", "a"),
            asset("image-build/tiny/init", "b"),
            asset("image-build/debian12.sh", "c"),
            asset("image-build/tinyx.sh", "d"),
        ];
        let tiny = recipe_inputs(&all, "tiny");
        let paths: Vec<&str> = tiny.iter().map(|a| a.path.as_str()).collect();
        assert_eq!(paths, ["image-build/tiny.sh", "image-build/tiny/init"]);
        let key = cache_key("tiny", &tiny, "host1");
        assert_eq!(key.len(), 64);
        assert_eq!(key, cache_key("tiny", &tiny.clone(), "host1"));
        assert_ne!(key, cache_key("tiny", &tiny, "host2"));
        assert_ne!(key, cache_key("debian12", &tiny, "host1"));
        let mut changed = tiny.clone();
        changed[1].data = b"b2".to_vec();
        assert_ne!(key, cache_key("tiny", &changed, "host1"));
        // Another recipe's files do not touch this one's key.
        let mut other = all.clone();
        other[2].data = b"c2".to_vec();
        assert_eq!(
            key,
            cache_key("tiny", &recipe_inputs(&other, "tiny"), "host1")
        );
    }

    #[test]
    fn unknown_recipes_are_usage_errors_that_list_the_known_ones() {
        let e = recipe("fedora").unwrap_err();
        assert_eq!(e.exit, crate::error::Exit::Usage);
        assert!(e.message.contains("debian12, tiny"), "{}", e.message);
        assert_eq!(
            hint("debian12").as_deref(),
            Some("run 'boxvirt image build debian12'")
        );
        assert_eq!(hint("rocky9"), None);
        for r in RECIPES {
            assert!(
                !recipe_inputs(&image_builder::recipe_files(), r.name).is_empty(),
                "{}",
                r.name
            );
        }
    }

    #[test]
    fn a_new_build_replaces_older_builds_of_the_same_name_only() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path());
        let info = qcow2::ImageInfo {
            format: "qcow2",
            virtual_size: 1,
            file_size: 1,
        };
        let store = |name: &str, sha: char, key: &str| {
            let part = dir.path().join("part");
            std::fs::write(&part, b"x").unwrap();
            cache
                .store_built(&part, &sha.to_string().repeat(64), &info, name, key)
                .unwrap()
        };
        store("debian12", 'a', "old");
        let new = store("debian12", 'b', "new");
        store("other", 'c', "old");
        let builds = builds_dir(&cache, "debian12");
        std::fs::create_dir_all(builds.join("o".repeat(64))).unwrap();
        let built = Built {
            name: "debian12".into(),
            key: "new".into(),
            files: vec![],
            cached: false,
        };
        remove_older_builds(&cache, &built, &builds);
        let left: Vec<String> = cache
            .list()
            .unwrap()
            .into_iter()
            .map(|c| c.sha256)
            .collect();
        assert_eq!(left, ["b".repeat(64), "c".repeat(64)]);
        assert_eq!(cache.built("debian12").unwrap().unwrap().path, new.path);
        assert!(!builds.join("o".repeat(64)).exists());
    }

    #[test]
    fn a_manifest_whose_files_are_gone_is_not_a_cached_build() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path());
        let builds = builds_dir(&cache, "tiny");
        let key = "k".repeat(64);
        std::fs::create_dir_all(builds.join(&key)).unwrap();
        let file = builds.join(&key).join("vmlinuz");
        std::fs::write(&file, b"x").unwrap();
        let built = Built {
            name: "tiny".into(),
            key: key.clone(),
            files: vec![BuiltFile {
                role: "kernel".into(),
                path: file.clone(),
                sha256: "0".repeat(64),
                size: 1,
            }],
            cached: false,
        };
        std::fs::write(
            builds.join(format!("{key}.json")),
            serde_json::to_string(&built).unwrap(),
        )
        .unwrap();
        let loaded = load(&cache, "tiny", &key).unwrap().unwrap();
        assert!(loaded.cached);
        assert_eq!(loaded.file("kernel").unwrap().path, file);
        std::fs::remove_file(&file).unwrap();
        assert!(load(&cache, "tiny", &key).unwrap().is_none());
        assert!(load(&cache, "tiny", "other").unwrap().is_none());
    }
}
