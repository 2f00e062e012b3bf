//! The debian12 base both contenders boot, and how long `image build
//! debian12` takes: cold (in a cache of this run's own, so the tests' cache
//! is never rebuilt or replaced) and cached.

use std::path::Path;

use crate::process;
use crate::Config;

/// Rounds of each cached build .
const CACHED_ROUNDS: usize = 3;

/// The base volume in pool 'default'.
pub struct Base {
    pub path: String,
}

/// `image build debian12` with the shared cache (a cached build unless the
/// inputs changed), uploaded into pool 'default' unless already there, and
/// `net ensure default`: what both contenders need, untimed.
pub fn base_volume(cfg: &Config) -> Result<Base, String> {
    let mut cmd = cfg.boxvirt_cmd(&cfg.cache, false);
    cmd.args(["-o", "json", "image", "build", "debian12"]);
    let out = process::run(&mut cmd)?;
    let v: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("image build -o json: {e}: {out}"))?;
    let path = v["volume"]["path"]
        .as_str()
        .ok_or_else(|| format!("image build debian12 made no volume: {out}"))?
        .to_string();
    let mut cmd = cfg.boxvirt_cmd(&cfg.cache, false);
    cmd.args(["net", "ensure", "default"]);
    process::run(&mut cmd)?;
    Ok(Base { path })
}

/// What the build measurements found.
pub struct BuildTimes {
    /// `--rebuild --no-upload` into an empty cache; None when skipped
    /// (BOXVIRT_BENCH_GUEST_COLD=0).
    pub cold: Option<Result<f64, String>>,
    /// `--no-upload` with the build cached.
    pub cached: Vec<f64>,
    /// Without `--no-upload`, cached and already in the pool: what a user
    /// who runs the command again waits for.
    pub cached_in_pool: Vec<f64>,
}

pub fn measure(cfg: &Config) -> Result<BuildTimes, String> {
    let own_cache = cfg.work.join("cold-cache");
    let cold = cfg.cold.then(|| cold_build(cfg, &own_cache));
    crate::check_stop()?;
    // Cached: in the cache the cold build just filled, else the shared one.
    let cached_dir = match &cold {
        Some(Ok(_)) => own_cache,
        _ => cfg.cache.clone(),
    };
    let cached = repeat(cfg, &cached_dir, &["--no-upload"])?;
    let cached_in_pool = repeat(cfg, &cfg.cache, &[])?;
    Ok(BuildTimes {
        cold,
        cached,
        cached_in_pool,
    })
}

// The cache lives in the run's directory, removed with it.
fn cold_build(cfg: &Config, cache: &Path) -> Result<f64, String> {
    eprintln!("guest: cold build: image build debian12 --rebuild --no-upload (several minutes)");
    let mut cmd = cfg.boxvirt_cmd(cache, false);
    cmd.args(["image", "build", "debian12", "--rebuild", "--no-upload"]);
    let t = process::timed(&mut cmd)?;
    if t.ok() {
        eprintln!("guest:   built in {:.1} s", t.wall);
        Ok(t.wall)
    } else {
        eprintln!("guest:   cold build FAILED: {}", t.why());
        Err(t.why())
    }
}

fn repeat(cfg: &Config, cache: &Path, extra: &[&str]) -> Result<Vec<f64>, String> {
    let mut walls = Vec::new();
    for _ in 0..CACHED_ROUNDS {
        crate::check_stop()?;
        let mut cmd = cfg.boxvirt_cmd(cache, false);
        cmd.args(["image", "build", "debian12"]).args(extra);
        let t = process::timed(&mut cmd)?;
        if !t.ok() {
            return Err(format!("cached image build debian12: {}", t.why()));
        }
        walls.push(t.wall);
    }
    Ok(walls)
}
