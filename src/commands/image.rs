//! `boxvirt image pull|build|import|list|rm`: the local image cache and the
//! base volumes in pool 'default' of the connected libvirt (`-c URI` as
//! everywhere). `pull`, `build` and `import` cache and upload (unless
//! `--no-upload`); `list` and `rm` cover both places (unless `--cache-only`),
//! kernel images (`<image>-<hex>.vmlinuz|.initrd`) included.

use serde::Serialize;
use tabled::Tabled;

use crate::cli::ImageCommand;
use crate::confirm::confirm;
use crate::context::Ctx;
use crate::error::{Exit, Failure, Result};
use crate::image::base::{self, BASE_POOL};
use crate::image::build;
use crate::image::cache::{Cache, CachedImage};
use crate::image::{catalog, import, kernel, preflight, pull, PullOptions};
use crate::libvirt::{Libvirt, VolumeSummary};

pub fn run(ctx: &Ctx, cmd: ImageCommand) -> Result<Exit> {
    match cmd {
        ImageCommand::Pull {
            image,
            sha256,
            checksum_url,
            name,
            no_upload,
        } => pull_image(
            ctx,
            &image,
            &PullOptions {
                sha256,
                checksum_url,
                name,
            },
            no_upload,
        ),
        ImageCommand::Import {
            path,
            name,
            no_upload,
        } => import_image(ctx, &path, name.as_deref(), no_upload),
        ImageCommand::ImportKernel {
            name,
            kernel,
            initrd,
        } => import_kernel(ctx, &name, &kernel, &initrd),
        ImageCommand::Build {
            name,
            rebuild,
            no_upload,
        } => build_image(ctx, &name, rebuild, no_upload),
        ImageCommand::List { cache_only } => list(ctx, cache_only),
        ImageCommand::Rm { image, cache_only } => remove(ctx, &image, cache_only),
    }
}

fn pull_image(ctx: &Ctx, what: &str, opts: &PullOptions, no_upload: bool) -> Result<Exit> {
    preflight(&ctx.settings.process, what, opts)?;
    // Connect before downloading: an unreachable libvirt should not cost a download.
    let conn = if no_upload {
        None
    } else {
        Some(ctx.libvirt()?)
    };
    let pulled = pull(&ctx.out, &ctx.settings.process, what, opts)?;
    let volume = match &conn {
        Some(conn) => Some(base::upload(conn, &ctx.catalog, &ctx.out, &pulled)?),
        None => None,
    };
    if ctx.out.is_json() {
        #[derive(Serialize)]
        struct Report<'a> {
            image: &'a crate::image::Pulled,
            volume: Option<&'a crate::image::BaseVolume>,
        }
        ctx.out.json(&Report {
            image: &pulled,
            volume: volume.as_ref(),
        })?;
        return Ok(Exit::Ok);
    }
    let how = if pulled.downloaded {
        "downloaded and verified"
    } else {
        "already cached"
    };
    crate::outln!(
        "image '{}' sha256:{} {how}: {}",
        pulled.name,
        pulled.sha256,
        pulled.cache_path
    );
    if let (Some(v), Some(conn)) = (&volume, &conn) {
        say_base_volume(conn, v);
    }
    Ok(Exit::Ok)
}

fn import_image(
    ctx: &Ctx,
    path: &std::path::Path,
    name: Option<&str>,
    no_upload: bool,
) -> Result<Exit> {
    let checked = import::preflight(path, name)?;
    // Connect before hashing: an unreachable libvirt should not cost a copy.
    let conn = if no_upload {
        None
    } else {
        Some(ctx.libvirt()?)
    };
    let done = import::import(
        conn.as_ref(),
        &ctx.catalog,
        &ctx.out,
        &ctx.settings.process,
        &checked,
    )?;
    if ctx.out.is_json() {
        #[derive(Serialize)]
        struct Report<'a> {
            image: &'a crate::image::Pulled,
            volume: Option<&'a crate::image::BaseVolume>,
        }
        ctx.out.json(&Report {
            image: &done.image,
            volume: done.volume.as_ref(),
        })?;
        return Ok(Exit::Ok);
    }
    let image = &done.image;
    let how = if image.downloaded {
        "imported"
    } else {
        "already cached"
    };
    crate::outln!(
        "image '{}' ({}) sha256:{} {how}: {}",
        image.name,
        image.format,
        image.sha256,
        image.cache_path
    );
    if let (Some(v), Some(conn)) = (&done.volume, &conn) {
        say_base_volume(conn, v);
    }
    Ok(Exit::Ok)
}

fn build_image(ctx: &Ctx, name: &str, rebuild: bool, no_upload: bool) -> Result<Exit> {
    build::recipe(name)?; // an unknown name is a usage error before anything else
                          // Connect before building: an unreachable libvirt should not cost a build.
    let conn = if no_upload {
        None
    } else {
        Some(ctx.libvirt()?)
    };
    let built = build::build(
        &ctx.out,
        &ctx.settings.process,
        name,
        build::BuildOptions { rebuild },
    )?;
    // A disk image becomes a base volume; a kernel + initramfs pair (tiny)
    // becomes the two volumes direct-boot templates boot from.
    let (mut volume, mut kernel_volumes) = (None, None);
    if let Some(conn) = &conn {
        if let Some(pulled) = built.as_pulled()? {
            volume = Some(base::upload(conn, &ctx.catalog, &ctx.out, &pulled)?);
        } else if let (Some(k), Some(i)) = (built.file("kernel"), built.file("initrd")) {
            kernel_volumes = Some(kernel::upload(
                conn,
                &ctx.catalog,
                &ctx.out,
                &built.name,
                &k.path,
                &i.path,
            )?);
        }
    }
    if ctx.out.is_json() {
        #[derive(Serialize)]
        struct Report<'a> {
            image: &'a build::Built,
            volume: Option<&'a crate::image::BaseVolume>,
            kernel: Option<&'a kernel::KernelVolumes>,
        }
        ctx.out.json(&Report {
            image: &built,
            volume: volume.as_ref(),
            kernel: kernel_volumes.as_ref(),
        })?;
        return Ok(Exit::Ok);
    }
    let how = if built.cached { "cached" } else { "built" };
    for f in &built.files {
        crate::outln!(
            "image '{}' {} {how}: {} (sha256:{})",
            built.name,
            f.role,
            f.path.display(),
            f.sha256
        );
    }
    if let Some(conn) = &conn {
        if let Some(v) = &volume {
            say_base_volume(conn, v);
        }
        if let Some(k) = &kernel_volumes {
            say_kernel_volumes(conn, k);
        }
    }
    Ok(Exit::Ok)
}

fn uploaded(yes: bool) -> &'static str {
    if yes {
        "uploaded"
    } else {
        "already there"
    }
}

fn say_base_volume(conn: &Libvirt, v: &crate::image::BaseVolume) {
    crate::outln!(
        "base volume '{}' in pool '{}' at {} {}: {}",
        v.name,
        v.pool,
        conn.uri(),
        uploaded(v.uploaded),
        v.path
    );
}

fn say_kernel_volumes(conn: &Libvirt, k: &kernel::KernelVolumes) {
    crate::outln!(
        "kernel image '{}' in pool '{}' at {} {}: {}, {}",
        k.image,
        k.pool,
        conn.uri(),
        uploaded(k.uploaded),
        k.kernel,
        k.initrd
    );
}

/// Hidden: the kernel-pair upload `image build tiny` ends with, for tests
/// and hand-built kernels ([`kernel::upload`]).
fn import_kernel(
    ctx: &Ctx,
    name: &str,
    kernel_file: &std::path::Path,
    initrd_file: &std::path::Path,
) -> Result<Exit> {
    let conn = ctx.libvirt()?;
    let k = kernel::upload(
        &conn,
        &ctx.catalog,
        &ctx.out,
        name,
        kernel_file,
        initrd_file,
    )?;
    if ctx.out.is_json() {
        ctx.out.json(&k)?;
        return Ok(Exit::Ok);
    }
    say_kernel_volumes(&conn, &k);
    Ok(Exit::Ok)
}

/// `(image, 12 hex)` of a base volume or a kernel-image volume.
fn parse_volume_name(vol: &str) -> Option<(&str, &str)> {
    base::parse_volume_name(vol)
        .or_else(|| kernel::parse_volume_name(vol).map(|(image, hex, _)| (image, hex)))
}

#[derive(Tabled)]
struct Row {
    #[tabled(rename = "NAME")]
    name: String,
    #[tabled(rename = "SHA256")]
    digest: String,
    #[tabled(rename = "FORMAT")]
    format: String,
    #[tabled(rename = "SIZE")]
    size: String,
    #[tabled(rename = "CACHED")]
    cached: &'static str,
    #[tabled(rename = "BASE VOLUME")]
    volume: String,
}

/// One image in `image list -o json` (README "image list").
#[derive(Debug, Serialize)]
struct Listed {
    name: Option<String>,
    /// Full digest when the image is cached, else null.
    sha256: Option<String>,
    digest_prefix: String,
    format: Option<String>,
    size_bytes: Option<u64>,
    virtual_size_bytes: Option<u64>,
    cache_path: Option<String>,
    url: Option<String>,
    volume: Option<ListedVolume>,
}

#[derive(Debug, Serialize)]
struct ListedVolume {
    pool: String,
    name: String,
    path: String,
    capacity_bytes: u64,
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The base volumes in pool 'default' (none when the pool does not exist).
fn base_volumes(conn: &Libvirt) -> Result<Vec<VolumeSummary>> {
    if !conn
        .list_pools()?
        .iter()
        .any(|p| p.name == BASE_POOL && p.active)
    {
        return Ok(Vec::new());
    }
    Ok(conn
        .list_volumes(BASE_POOL)?
        .into_iter()
        .filter(|v| parse_volume_name(&v.name).is_some())
        .collect())
}

fn listed(image: Option<&CachedImage>, volume: Option<&VolumeSummary>) -> Listed {
    let meta = image.and_then(|i| i.meta.as_ref());
    let from_vol = volume.and_then(|v| parse_volume_name(&v.name));
    Listed {
        name: image
            .and_then(|i| i.name().map(str::to_string))
            .or_else(|| from_vol.map(|(n, _)| n.to_string())),
        sha256: image.map(|i| i.sha256.clone()),
        digest_prefix: image
            .map(|i| i.sha256[..12].to_string())
            .or_else(|| from_vol.map(|(_, h)| h.to_string()))
            .unwrap_or_default(),
        format: image.map(|i| i.format().to_string()).or_else(|| {
            volume
                .and_then(|v| kernel::parse_volume_name(&v.name))
                .map(|(_, _, part)| part.as_str().to_string())
        }),
        size_bytes: image.map(|i| i.size),
        virtual_size_bytes: meta.map(|m| m.virtual_size),
        cache_path: image.map(|i| i.path.display().to_string()),
        url: meta.and_then(|m| m.url.clone()),
        volume: volume.map(|v| ListedVolume {
            pool: BASE_POOL.to_string(),
            name: v.name.clone(),
            path: v.path.clone(),
            capacity_bytes: v.capacity_bytes,
        }),
    }
}

fn list(ctx: &Ctx, cache_only: bool) -> Result<Exit> {
    let cache = Cache::of(&ctx.settings.process)?;
    let images = cache.list()?;
    let volumes = if cache_only {
        Vec::new()
    } else {
        base_volumes(&ctx.libvirt()?)?
    };
    let mut items = Vec::new();
    let mut used = vec![false; volumes.len()];
    for image in &images {
        let mut any = false;
        for (i, v) in volumes.iter().enumerate() {
            if parse_volume_name(&v.name).is_some_and(|(_, h)| image.sha256.starts_with(h)) {
                items.push(listed(Some(image), Some(v)));
                used[i] = true;
                any = true;
            }
        }
        if !any {
            items.push(listed(Some(image), None));
        }
    }
    for (i, v) in volumes.iter().enumerate() {
        if !used[i] {
            items.push(listed(None, Some(v)));
        }
    }
    let rows: Vec<Row> = items
        .iter()
        .map(|l| Row {
            name: l.name.clone().unwrap_or_else(|| "-".into()),
            digest: l.digest_prefix.clone(),
            format: l.format.clone().unwrap_or_else(|| "-".into()),
            size: l.size_bytes.map(human).unwrap_or_else(|| "-".into()),
            cached: if l.cache_path.is_some() { "yes" } else { "no" },
            volume: l
                .volume
                .as_ref()
                .map(|v| v.name.clone())
                .unwrap_or_else(|| "-".into()),
        })
        .collect();
    ctx.out.list("images", &rows, &items)?;
    Ok(Exit::Ok)
}

fn is_digest_prefix(s: &str) -> bool {
    (12..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_hexdigit())
}

fn remove(ctx: &Ctx, what: &str, cache_only: bool) -> Result<Exit> {
    let cache = Cache::of(&ctx.settings.process)?;
    let digest = is_digest_prefix(what).then(|| what.to_ascii_lowercase());
    let cached: Vec<CachedImage> = cache
        .list()?
        .into_iter()
        .filter(|c| {
            c.name() == Some(what) || digest.as_deref().is_some_and(|d| c.sha256.starts_with(d))
        })
        .collect();
    let conn = if cache_only {
        None
    } else {
        Some(ctx.libvirt()?)
    };
    let volumes: Vec<VolumeSummary> = match &conn {
        Some(conn) => base_volumes(conn)?
            .into_iter()
            .filter(|v| {
                parse_volume_name(&v.name).is_some_and(|(n, h)| {
                    n == what
                        || digest
                            .as_deref()
                            .is_some_and(|d| d.starts_with(h) || h.starts_with(d))
                })
            })
            .collect(),
        None => Vec::new(),
    };
    if cached.is_empty() && volumes.is_empty() {
        if catalog::find(what).is_some() || digest.is_some() {
            let mut places = format!("the cache at {}", cache.root().display());
            if let Some(conn) = &conn {
                places.push_str(&format!(" nor pool '{BASE_POOL}' at {}", conn.uri()));
            }
            return Err(Failure::not_found(format!(
                "image '{what}' is not in {places}; see 'boxvirt image list'"
            )));
        }
        return Err(crate::image::pull::unknown_image(what));
    }
    // Refuse before deleting anything: an overlay over a deleted base is a broken VM.
    if let Some(conn) = &conn {
        for v in &volumes {
            let users = conn.volume_users(&v.path)?;
            if !users.is_empty() {
                return Err(Failure::conflict(format!(
                    "volume '{}' in pool '{BASE_POOL}' is used by {}; delete those VMs first ('boxvirt vm delete NAME'), nothing was removed",
                    v.name,
                    users.join(", ")
                )));
            }
        }
    }
    confirm(
        ctx.settings.yes,
        &format!(
            "remove image '{what}' ({} cached file(s), {} base volume(s))",
            cached.len(),
            volumes.len()
        ),
    )?;
    let mut removed_volumes = Vec::new();
    if let Some(conn) = &conn {
        for v in &volumes {
            conn.delete_volume(BASE_POOL, &v.name)?;
            ctx.out.note(format!(
                "removed volume '{}' from pool '{BASE_POOL}' at {}",
                v.name,
                conn.uri()
            ));
            removed_volumes.push(v.name.clone());
        }
    }
    let mut removed_files = Vec::new();
    for c in &cached {
        cache.remove(c)?;
        ctx.out
            .note(format!("removed cached image {}", c.path.display()));
        removed_files.push(c.path.display().to_string());
    }
    if ctx.out.is_json() {
        #[derive(Serialize)]
        struct Removed {
            cache_files: Vec<String>,
            volumes: Vec<String>,
        }
        ctx.out.json(&Removed {
            cache_files: removed_files,
            volumes: removed_volumes,
        })?;
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_ls_h() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(196_616), "192.0 KiB");
        assert_eq!(human(628_555_776), "599.4 MiB");
    }
}
