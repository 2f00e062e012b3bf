//! Base volumes: a verified image uploaded once into the libvirt pool, named
//! `<image>-<first 12 hex of its sha256>.<format>` so that the same bytes are
//! never uploaded twice and VM overlays can point at a stable path.

use std::io::Read;

use serde::Serialize;

use super::pull::{pull, PullOptions, Pulled};
use crate::error::{Failure, Result};
use crate::libvirt::{Libvirt, UPLOAD_HEAD_LEN};
use crate::output::Output;
use crate::progress::Transfer;
use crate::settings::ProcessEnv;
use crate::template::{Catalog, Kind};

/// The pool base volumes live in (made from `xml-templates/pool/default.xml`).
pub const BASE_POOL: &str = "default";
const DIGEST_PREFIX: usize = 12;

#[derive(Debug, Clone, Serialize)]
pub struct BaseVolume {
    pub pool: String,
    pub name: String,
    /// The volume's path on the libvirt host (for `<disk type='file'>` and
    /// as an overlay's backing store).
    pub path: String,
    /// "qcow2" or "raw": the backing format overlays must name.
    pub format: String,
    pub digest: String,
    pub virtual_size: u64,
    /// The account cloud-init creates on catalogue images.
    pub login_user: Option<String>,
    /// False when the volume was already there.
    pub uploaded: bool,
}

pub fn volume_name(image: &str, sha256: &str, format: &str) -> String {
    let ext = if format == "qcow2" { "qcow2" } else { "img" };
    format!(
        "{image}-{}.{ext}",
        &sha256[..DIGEST_PREFIX.min(sha256.len())]
    )
}

/// `<image>-<12 hex>.<qcow2|img>` -> (image, 12 hex); None for other volumes.
pub fn parse_volume_name(vol: &str) -> Option<(&str, &str)> {
    let stem = vol
        .strip_suffix(".qcow2")
        .or_else(|| vol.strip_suffix(".img"))?;
    let (image, hex) = stem.rsplit_once('-')?;
    let ok = !image.is_empty()
        && hex.len() == DIGEST_PREFIX
        && hex
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    ok.then_some((image, hex))
}

/// What `vm create` calls: the image `name` (catalogue name, URL or cached
/// name) pulled into the cache if needed and uploaded into pool `default`
/// of `conn` if not there yet.
pub fn ensure_base_volume(
    conn: &Libvirt,
    templates: &Catalog,
    out: &Output,
    env: &ProcessEnv,
    name: &str,
    opts: &PullOptions,
) -> Result<BaseVolume> {
    let pulled = pull(out, env, name, opts)?;
    upload(conn, templates, out, &pulled)
}

/// Uploads a pulled image as a base volume unless a complete one exists.
pub fn upload(
    conn: &Libvirt,
    templates: &Catalog,
    out: &Output,
    pulled: &Pulled,
) -> Result<BaseVolume> {
    let changes = conn.ensure_pool(BASE_POOL, || {
        templates.get(Kind::Pool, BASE_POOL)?.render(&[])
    })?;
    if !changes.is_empty() {
        let said: Vec<&str> = changes.iter().map(|c| c.describe()).collect();
        out.note(format!("storage pool '{BASE_POOL}': {}", said.join(", ")));
    }
    let vol = volume_name(&pulled.name, &pulled.sha256, &pulled.format);
    let base = |path: String, uploaded: bool| BaseVolume {
        pool: BASE_POOL.to_string(),
        name: vol.clone(),
        path,
        format: pulled.format.clone(),
        digest: pulled.sha256.clone(),
        virtual_size: pulled.virtual_size,
        login_user: pulled.login_user.clone(),
        uploaded,
    };
    if let Some(path) = conn.volume_path(BASE_POOL, &vol)? {
        if is_complete(conn, &vol, pulled)? {
            out.detail(format!(
                "base volume '{vol}' is already in pool '{BASE_POOL}'"
            ));
            return Ok(base(path, false));
        }
        let users = conn.volume_users(&path)?;
        if !users.is_empty() {
            return Err(Failure::conflict(format!(
                "base volume '{vol}' in pool '{BASE_POOL}' does not match the cached image but is used by {}; remove those first",
                users.join(", ")
            )));
        }
        out.warn(format!(
            "base volume '{vol}' is incomplete (an earlier upload stopped); uploading it again"
        ));
        conn.delete_volume(BASE_POOL, &vol)?;
    }
    let transfer = Transfer::new(out);
    transfer.set_total(Some(pulled.size));
    transfer.stage(format!("uploading {vol} to {}", conn.uri()));
    let path = conn.upload_volume(
        BASE_POOL,
        &vol,
        std::path::Path::new(&pulled.cache_path),
        &mut |sent| transfer.set_position(sent),
    )?;
    transfer.finish();
    // Seeds stay raw and need none; a base image is probed as the qcow2 it is.
    conn.refresh_pool(BASE_POOL)?;
    Ok(base(path, true))
}

/// The upload writes the image's head last, so a volume whose head equals
/// the image's was uploaded to the end.
fn is_complete(conn: &Libvirt, vol: &str, pulled: &Pulled) -> Result<bool> {
    let mut want = Vec::new();
    std::fs::File::open(&pulled.cache_path)
        .and_then(|f| f.take(UPLOAD_HEAD_LEN).read_to_end(&mut want))
        .map_err(|e| Failure::failed(format!("reading {}: {e}", pulled.cache_path)))?;
    let have = conn.volume_head(BASE_POOL, vol, UPLOAD_HEAD_LEN)?;
    Ok(have == want)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_names_round_trip() {
        let sha = "0123456789abcdef".repeat(4);
        let v = volume_name("rocky9", &sha, "qcow2");
        assert_eq!(v, "rocky9-0123456789ab.qcow2");
        assert_eq!(parse_volume_name(&v), Some(("rocky9", "0123456789ab")));
        assert_eq!(
            parse_volume_name(&volume_name("my-img", &sha, "raw")),
            Some(("my-img", "0123456789ab"))
        );
        for other in [
            "vm1.qcow2",
            "tiny-1.qcow2",
            "x-0123456789AB.qcow2",
            "-0123456789ab.qcow2",
            "x-0123456789ab.iso",
        ] {
            assert_eq!(parse_volume_name(other), None, "{other}");
        }
    }
}
