//! `boxvirt clean data|volumes|images|containers|all|dangling`.
//!
//! Asks y/N on a terminal unless --yes; refuses without --yes when stdin is
//! not a terminal. Scope:
//!   containers  this instance's container
//!   volumes     volumes labelled for this instance (or its old compose project)
//!   images      boxvirt/nested-host:debian and :rocky9 (the tags boxvirt and
//!               the compose file build); one still used by another instance's
//!               container is kept (the image is shared by all instances of a
//!               base, so it is not per instance)
//!   data        this instance's data dir; files the container's root left
//!               are removed from a throwaway container (no sudo)
//!   all         containers + volumes + images + data + the ssh link
//!   dangling    `docker image prune` + `docker volume prune`, system-wide

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use crate::cli::{CleanArgs, CleanTarget};
use crate::context::Ctx;
use crate::error::{Exit, Failure, Result};
use crate::nested::container::BINDS;
use crate::nested::{build_context, lock, socket_link, ssh_config, Engine, LABEL_INSTANCE};

pub fn run(ctx: &Ctx, a: &CleanArgs) -> Result<Exit> {
    let s = &ctx.settings;
    let what = match a.what {
        CleanTarget::Data => format!("the data dir {}", s.data_dir.display()),
        CleanTarget::Volumes => format!("the Docker volumes of instance '{}'", s.instance),
        CleanTarget::Images => format!("the {}:debian* and :rocky9* images", build_context::IMAGE_REPO),
        CleanTarget::Containers => format!("the container {}", s.container_name()),
        CleanTarget::All => format!(
            "instance '{}' entirely (container, volumes, {}:debian*/:rocky9* images, data dir {}, ssh link)",
            s.instance,
            build_context::IMAGE_REPO,
            s.data_dir.display()
        ),
        CleanTarget::Dangling => "all dangling Docker images and unused volumes (system-wide)".to_string(),
    };
    confirm(ctx, &what)?;
    let engine = Engine::connect()?;
    let _lock = lock_for(ctx, a.what)?;
    match a.what {
        CleanTarget::Containers => containers(ctx, &engine)?,
        CleanTarget::Volumes => volumes(ctx, &engine)?,
        CleanTarget::Images => images(ctx, &engine)?,
        CleanTarget::Data => data(ctx, &engine)?,
        CleanTarget::Dangling => {
            let (images, volumes, bytes) = engine.prune_dangling()?;
            ctx.out.note(format!(
                "pruned {images} images and {volumes} volumes ({} MB)",
                bytes / 1_000_000
            ));
        }
        CleanTarget::All => {
            containers(ctx, &engine)?;
            volumes(ctx, &engine)?;
            images(ctx, &engine)?;
            data(ctx, &engine)?;
            if ssh_config::unlink(s)? {
                ctx.out.note("removed the ssh config link");
            }
        }
    }
    Ok(Exit::Ok)
}

/// Removing the data dir is refused while another boxvirt works on the
/// instance; removing its container or volumes waits for it.
fn lock_for(ctx: &Ctx, what: CleanTarget) -> Result<Option<lock::InstanceLock>> {
    let s = &ctx.settings;
    if !s.data_dir.is_dir() {
        return Ok(None);
    }
    match what {
        CleanTarget::Data | CleanTarget::All => match lock::try_acquire(s)? {
            Ok(l) => Ok(Some(l)),
            Err(holder) => Err(Failure::conflict(format!(
                "instance '{}' is in use: {} is working on it; not removing {} (retry when it is done)",
                s.instance,
                holder.describe(),
                s.data_dir.display()
            ))),
        },
        CleanTarget::Containers | CleanTarget::Volumes => {
            lock::acquire(s, &ctx.out).map(Some)
        }
        CleanTarget::Images | CleanTarget::Dangling => Ok(None),
    }
}

fn confirm(ctx: &Ctx, what: &str) -> Result<()> {
    if ctx.settings.yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(format!(
            "refusing to remove {what} without --yes (stdin is not a terminal)"
        )));
    }
    eprint!("remove {what}? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(Failure::failed("cancelled; nothing removed"))
    }
}

fn containers(ctx: &Ctx, engine: &Engine) -> Result<()> {
    let name = ctx.settings.container_name();
    if engine.container(&name)?.is_some() {
        engine.stop_and_remove(&name)?;
        ctx.out.note(format!("removed container {name}"));
    } else {
        ctx.out.note(format!("no container {name}"));
    }
    Ok(())
}

fn volumes(ctx: &Ctx, engine: &Engine) -> Result<()> {
    let names = engine.instance_volumes(&ctx.settings.instance)?;
    if names.is_empty() {
        ctx.out.note(format!(
            "no volumes for instance '{}'",
            ctx.settings.instance
        ));
    }
    for v in names {
        engine.remove_volume(&v)?;
        ctx.out.note(format!("removed volume {v}"));
    }
    Ok(())
}

fn images(ctx: &Ctx, engine: &Engine) -> Result<()> {
    // Only the tags boxvirt (any version) and the compose file build, not
    // hand-made ones.
    let images: Vec<(String, String)> = engine
        .nested_images()?
        .into_iter()
        .filter(|(tag, _)| build_context::is_boxvirt_tag(tag))
        .collect();
    if images.is_empty() {
        ctx.out
            .note(format!("no {}:* images", build_context::IMAGE_REPO));
    }
    let users = engine.containers_with(&[("label", LABEL_INSTANCE.to_string())])?;
    for (tag, id) in images {
        if let Some((user, _)) = users.iter().find(|(_, image)| *image == id) {
            ctx.out.warn(format!(
                "keeping {tag}: container {user} uses it ('boxvirt --instance ... down' it first)"
            ));
            continue;
        }
        match engine.remove_image(&tag) {
            Ok(()) => ctx.out.note(format!("removed image {tag}")),
            // Used by a container boxvirt did not make (e.g. compose).
            Err(e) if e.exit == Exit::Conflict => {
                ctx.out.warn(format!("keeping {tag}: {}", e.message))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn data(ctx: &Ctx, engine: &Engine) -> Result<()> {
    let s = &ctx.settings;
    let dir = &s.data_dir;
    if !dir.exists() {
        ctx.out.note(format!("no data dir {}", dir.display()));
        return Ok(());
    }
    check_looks_like_data_dir(dir, s.process.home.as_deref())?;
    let name = s.container_name();
    match engine.container(&name)? {
        Some(c) if c.running => {
            return Err(Failure::conflict(format!(
                "instance '{}' is up and uses {}; run 'boxvirt down' first",
                s.instance,
                dir.display()
            )))
        }
        // Stopped by `down`: it binds these dirs and could not start
        // without them, so it goes with them.
        Some(_) => {
            engine.remove(&name)?;
            ctx.out.note(format!("removed stopped container {name}"));
        }
        None => {}
    }
    if let Err(e) = std::fs::remove_dir_all(dir) {
        // Files created by root inside the container: remove them as root
        // there instead of asking for sudo here.
        ctx.out.detail(format!(
            "cannot remove {} directly ({e}); emptying it from a container",
            dir.display()
        ));
        let image = engine
            .nested_images()?
            .into_iter()
            .map(|(tag, _)| tag)
            .min_by_key(|t| !t.ends_with(":debian"))
            .ok_or_else(|| {
                Failure::failed(format!(
                    "cannot remove {} ({e}) and there is no {}:* image to remove it from a container; run 'boxvirt build' first",
                    dir.display(),
                    build_context::IMAGE_REPO
                ))
            })?;
        engine.empty_dir_in_container(&image, dir, &s.instance)?;
        std::fs::remove_dir_all(dir)
            .map_err(|e| Failure::failed(format!("cannot remove {}: {e}", dir.display())))?;
    }
    socket_link::remove(s);
    ctx.out.note(format!("removed {}", dir.display()));
    Ok(())
}

/// A mistyped --data-dir must not wipe a home directory: only a dir that is
/// empty or holds one of the instance's bind-mount dirs is removed.
fn check_looks_like_data_dir(dir: &Path, home: Option<&Path>) -> Result<()> {
    if dir.parent().is_none() || home == Some(dir) {
        return Err(Failure::usage(format!(
            "refusing to remove {}",
            dir.display()
        )));
    }
    // Our own lock file alone still counts as empty.
    let empty = std::fs::read_dir(dir)
        .map(|d| d.flatten().all(|e| e.file_name() == lock::LOCK_FILE))
        .unwrap_or(false);
    if empty || BINDS.iter().any(|(sub, _)| dir.join(sub).is_dir()) {
        return Ok(());
    }
    Err(Failure::usage(format!(
        "{} does not look like a boxvirt data dir (none of ssh/, libvirt-run/, images/ ...); not removing it",
        dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_data_dirs_are_removed() {
        let d = tempfile::tempdir().unwrap();
        check_looks_like_data_dir(d.path(), None).unwrap();
        std::fs::write(d.path().join("thesis.tex"), "x").unwrap();
        assert!(check_looks_like_data_dir(d.path(), None).is_err());
        std::fs::create_dir(d.path().join("ssh")).unwrap();
        check_looks_like_data_dir(d.path(), None).unwrap();
        // Never the home directory, even when it looks like one.
        assert!(check_looks_like_data_dir(d.path(), Some(d.path())).is_err());
        assert!(check_looks_like_data_dir(Path::new("/"), None).is_err());
    }
}
