//! Kernel images: a (vmlinuz, initramfs) pair for direct kernel boot, kept
//! as two volumes in pool 'default' so that any libvirt host (a fresh
//! nested one, a remote one over qemu+ssh) has them without files staged
//! by hand. Names: `<image>-<12 hex>.vmlinuz` and `<image>-<12 hex>.initrd`,
//! the hex being the start of the pair's digest (sha256 over both files'
//! sha256), so the same pair is uploaded once and `image list`/`image rm`
//! treat the two as one image. A template asks for a pair with
//! `kernel="IMAGE"` in its `<boxvirt:vm>` metadata; `vm create` then points
//! `<kernel>`/`<initrd>` at these volumes ([`find`]).

use std::io::Read;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::base::BASE_POOL;
use crate::error::{Failure, Result};
use crate::interrupt;
use crate::libvirt::{Libvirt, VolumeSummary, UPLOAD_HEAD_LEN};
use crate::names;
use crate::output::Output;
use crate::progress::Transfer;
use crate::template::{Catalog, Kind};

const DIGEST_PREFIX: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    Kernel,
    Initrd,
}

impl Part {
    const ALL: [Part; 2] = [Part::Kernel, Part::Initrd];

    fn suffix(self) -> &'static str {
        match self {
            Part::Kernel => ".vmlinuz",
            Part::Initrd => ".initrd",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Part::Kernel => "kernel",
            Part::Initrd => "initrd",
        }
    }
}

/// A kernel image in the pool.
#[derive(Debug, Clone, Serialize)]
pub struct KernelVolumes {
    pub pool: String,
    pub image: String,
    pub digest: String,
    pub kernel: String,
    pub kernel_path: String,
    pub initrd: String,
    pub initrd_path: String,
    /// False when both volumes were already there.
    pub uploaded: bool,
}

pub fn volume_name(image: &str, digest: &str, part: Part) -> String {
    format!(
        "{image}-{}{}",
        &digest[..DIGEST_PREFIX.min(digest.len())],
        part.suffix()
    )
}

/// `<image>-<12 hex>.vmlinuz|.initrd` -> (image, 12 hex, part).
pub fn parse_volume_name(vol: &str) -> Option<(&str, &str, Part)> {
    let (stem, part) = Part::ALL
        .iter()
        .find_map(|p| vol.strip_suffix(p.suffix()).map(|s| (s, *p)))?;
    let (image, hex) = stem.rsplit_once('-')?;
    let ok = !image.is_empty()
        && hex.len() == DIGEST_PREFIX
        && hex
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    ok.then_some((image, hex, part))
}

/// What `vm create` says when a template's kernel image is not uploaded.
pub fn missing(image: &str) -> Failure {
    Failure::not_found(format!(
        "image '{image}' is not in pool '{BASE_POOL}'; run 'boxvirt image build {image}'"
    ))
}

fn read_fail(path: &Path, e: std::io::Error) -> Failure {
    Failure::failed(format!("reading {}: {e}", path.display()))
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| read_fail(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf).map_err(|e| read_fail(path, e))? {
            0 => return Ok(hex::encode(hasher.finalize())),
            n => hasher.update(&buf[..n]),
        }
    }
}

/// The pair's identity: one digest over both files' digests.
pub fn pair_digest(kernel: &Path, initrd: &Path) -> Result<String> {
    let both = format!("{}\n{}\n", sha256_file(kernel)?, sha256_file(initrd)?);
    Ok(hex::encode(Sha256::digest(both.as_bytes())))
}

/// Cheap sanity checks, so that two swapped or wrong files are refused
/// before anything is uploaded: a bzImage has "HdrS" at 0x202; an
/// initramfs is a cpio archive, plain or compressed.
fn check_file(path: &Path, part: Part) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Failure::not_found(format!(
                "{} file {} not found",
                part.as_str(),
                path.display()
            ))
        } else {
            read_fail(path, e)
        }
    })?;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(0x206).read_to_end(&mut head))
        .map_err(|e| read_fail(path, e))?;
    let ok = match part {
        Part::Kernel => head.get(0x202..0x206) == Some(b"HdrS".as_slice()),
        Part::Initrd => [
            b"070701".as_slice(),
            b"070702",
            b"\x1f\x8b",
            b"\x28\xb5\x2f\xfd",
            b"\xfd7zXZ\0",
            b"\x02\x21\x4c\x18",
            b"BZh",
            b"\x89LZO",
        ]
        .iter()
        .any(|m| head.starts_with(m)),
    };
    if !meta.is_file() || !ok {
        let want = match part {
            Part::Kernel => "a Linux kernel (bzImage)",
            Part::Initrd => "an initramfs (cpio, plain or compressed)",
        };
        return Err(Failure::usage(format!(
            "{} is not {want}; pass the right file to --{}",
            path.display(),
            part.as_str()
        )));
    }
    Ok(meta.len())
}

/// The volume holds exactly the file: same length and same head (the
/// upload writes the head last).
fn is_complete(conn: &Libvirt, have: &VolumeSummary, file: &Path, len: u64) -> Result<bool> {
    if have.capacity_bytes != len {
        return Ok(false);
    }
    let mut want = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(UPLOAD_HEAD_LEN).read_to_end(&mut want))
        .map_err(|e| read_fail(file, e))?;
    Ok(conn.volume_head(BASE_POOL, &have.name, UPLOAD_HEAD_LEN)? == want)
}

/// Uploads `kernel` and `initrd` as image `image` into pool 'default'
/// unless the same pair is there; replaces a half-uploaded one. Any failure
/// or Ctrl-C removes the volumes this run uploaded. Older pairs of the same
/// image that no VM uses are removed afterwards.
pub fn upload(
    conn: &Libvirt,
    templates: &Catalog,
    out: &Output,
    image: &str,
    kernel: &Path,
    initrd: &Path,
) -> Result<KernelVolumes> {
    names::validate("image", image)?;
    let files = [
        (Part::Kernel, kernel, check_file(kernel, Part::Kernel)?),
        (Part::Initrd, initrd, check_file(initrd, Part::Initrd)?),
    ];
    let digest = pair_digest(kernel, initrd)?;
    let changes = conn.ensure_pool(BASE_POOL, || {
        templates.get(Kind::Pool, BASE_POOL)?.render(&[])
    })?;
    if !changes.is_empty() {
        let said: Vec<&str> = changes.iter().map(|c| c.describe()).collect();
        out.note(format!("storage pool '{BASE_POOL}': {}", said.join(", ")));
    }
    let _signals = interrupt::Deferred::new();
    let mut made: Vec<String> = Vec::new();
    let mut paths = Vec::new();
    let result = (|| -> Result<()> {
        for (part, file, len) in files {
            let vol = volume_name(image, &digest, part);
            paths.push(place(conn, out, &vol, file, len, &mut made)?);
            interrupt::check(&format!("uploading {vol}"))?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        for vol in &made {
            let _ = conn.delete_volume(BASE_POOL, vol);
        }
        return Err(e.context(format!("uploading kernel image '{image}'")));
    }
    remove_stale(conn, out, image, &digest)?;
    Ok(KernelVolumes {
        pool: BASE_POOL.to_string(),
        image: image.to_string(),
        kernel: volume_name(image, &digest, Part::Kernel),
        kernel_path: paths[0].clone(),
        initrd: volume_name(image, &digest, Part::Initrd),
        initrd_path: paths[1].clone(),
        digest,
        uploaded: !made.is_empty(),
    })
}

/// One volume: kept when complete, else (re)uploaded; returns its path.
fn place(
    conn: &Libvirt,
    out: &Output,
    vol: &str,
    file: &Path,
    len: u64,
    made: &mut Vec<String>,
) -> Result<String> {
    let existing = conn
        .list_volumes(BASE_POOL)?
        .into_iter()
        .find(|v| v.name == vol);
    if let Some(have) = existing {
        if is_complete(conn, &have, file, len)? {
            out.detail(format!("volume '{vol}' is already in pool '{BASE_POOL}'"));
            return Ok(have.path);
        }
        let users = conn.volume_users(&have.path)?;
        if !users.is_empty() {
            return Err(Failure::conflict(format!(
                "volume '{vol}' in pool '{BASE_POOL}' does not match {} but is used by {}; remove those first",
                file.display(),
                users.join(", ")
            )));
        }
        out.warn(format!(
            "volume '{vol}' is incomplete (an earlier upload stopped); uploading it again"
        ));
        conn.delete_volume(BASE_POOL, vol)?;
    }
    let transfer = Transfer::new(out);
    transfer.set_total(Some(len));
    transfer.stage(format!("uploading {vol} to {}", conn.uri()));
    let path = conn.upload_volume(BASE_POOL, vol, file, &mut |sent| {
        transfer.set_position(sent)
    })?;
    transfer.finish();
    made.push(vol.to_string());
    Ok(path)
}

/// Every kernel-image volume of `image` in the pool, grouped by digest
/// prefix: (hex, kernel, initrd), either side possibly missing.
type Pair = (String, Option<VolumeSummary>, Option<VolumeSummary>);

fn pairs(conn: &Libvirt, image: &str) -> Result<Vec<Pair>> {
    let active = conn
        .list_pools()?
        .iter()
        .any(|p| p.name == BASE_POOL && p.active);
    if !active {
        return Ok(Vec::new());
    }
    let mut found: Vec<Pair> = Vec::new();
    for v in conn.list_volumes(BASE_POOL)? {
        let Some((name, hex, part)) = parse_volume_name(&v.name) else {
            continue;
        };
        if name != image {
            continue;
        }
        let hex = hex.to_string();
        let i = match found.iter().position(|p| p.0 == hex) {
            Some(i) => i,
            None => {
                found.push((hex, None, None));
                found.len() - 1
            }
        };
        match part {
            Part::Kernel => found[i].1 = Some(v),
            Part::Initrd => found[i].2 = Some(v),
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// Older pairs of `image` (other digests) that no VM uses go: the pool
/// then holds one current pair and `vm create` has no choice to make.
fn remove_stale(conn: &Libvirt, out: &Output, image: &str, digest: &str) -> Result<()> {
    for (hex, k, i) in pairs(conn, image)? {
        if digest.starts_with(&hex) {
            continue;
        }
        let vols: Vec<VolumeSummary> = k.into_iter().chain(i).collect();
        let mut used = false;
        for v in &vols {
            used |= !conn.volume_users(&v.path)?.is_empty();
        }
        if used {
            continue;
        }
        for v in &vols {
            conn.delete_volume(BASE_POOL, &v.name)?;
            out.detail(format!("removed older volume '{}'", v.name));
        }
    }
    Ok(())
}

/// The complete pair of `image` for `vm create`, if uploaded. With several
/// (an older one kept because a VM boots from it), the one no VM uses is
/// the newer upload.
pub fn find(conn: &Libvirt, image: &str) -> Result<Option<KernelVolumes>> {
    let mut complete = Vec::new();
    for (hex, k, i) in pairs(conn, image)? {
        if let (Some(k), Some(i)) = (k, i) {
            complete.push((hex, k, i));
        }
    }
    if complete.is_empty() {
        return Ok(None);
    }
    let mut pick = 0;
    if complete.len() > 1 {
        for (n, (_, k, _)) in complete.iter().enumerate() {
            if conn.volume_users(&k.path)?.is_empty() {
                pick = n;
                break;
            }
        }
    }
    let (hex, k, i) = complete.swap_remove(pick);
    Ok(Some(KernelVolumes {
        pool: BASE_POOL.to_string(),
        image: image.to_string(),
        digest: hex,
        kernel: k.name,
        kernel_path: k.path,
        initrd: i.name,
        initrd_path: i.path,
        uploaded: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Exit;

    #[test]
    fn volume_names_round_trip_and_differ_from_base_volumes() {
        let sha = "0123456789abcdef".repeat(4);
        let k = volume_name("tiny", &sha, Part::Kernel);
        assert_eq!(k, "tiny-0123456789ab.vmlinuz");
        assert_eq!(
            parse_volume_name(&volume_name("my-k", &sha, Part::Initrd)),
            Some(("my-k", "0123456789ab", Part::Initrd))
        );
        assert_eq!(super::super::base::parse_volume_name(&k), None);
        for other in ["tiny-1.qcow2", "tiny.vmlinuz", "x-0123456789AB.initrd"] {
            assert_eq!(parse_volume_name(other), None, "{other}");
        }
    }

    #[test]
    fn wrong_files_are_refused_before_any_upload() {
        let d = tempfile::tempdir().unwrap();
        let mut bz = vec![0u8; 4096];
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        let kernel = d.path().join("vmlinuz");
        std::fs::write(&kernel, &bz).unwrap();
        let initrd = d.path().join("initrd.img");
        std::fs::write(&initrd, b"070701rest-of-cpio").unwrap();
        assert_eq!(check_file(&kernel, Part::Kernel).unwrap(), 4096);
        check_file(&initrd, Part::Initrd).unwrap();
        let e = check_file(&initrd, Part::Kernel).unwrap_err();
        assert_eq!(e.exit, Exit::Usage);
        assert!(e.message.contains("--kernel"), "{}", e.message);
        assert_eq!(
            check_file(&kernel, Part::Initrd).unwrap_err().exit,
            Exit::Usage
        );
        assert_eq!(
            check_file(&d.path().join("nope"), Part::Kernel)
                .unwrap_err()
                .exit,
            Exit::NotFound
        );
        let a = pair_digest(&kernel, &initrd).unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, pair_digest(&initrd, &kernel).unwrap());
    }
}
