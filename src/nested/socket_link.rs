//! A short link to a deep socket. A unix socket address holds at most
//! [`SUN_PATH_MAX`] bytes; when `DATA/libvirt-run/libvirt-sock` is longer,
//! clients connect through `<runtime dir>/<hash of the data dir>`, a link to
//! `DATA/libvirt-run` that boxvirt keeps in the user's runtime directory
//! (`$XDG_RUNTIME_DIR/boxvirt`, `/run/user/UID/boxvirt` or
//! `/tmp/boxvirt-UID`, made 0700). See [`Settings::socket_link`].

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

use crate::error::{Failure, Result};
use crate::settings::{Settings, SUN_PATH_MAX};

/// Makes (or re-points) the link when the socket path needs one. Fails with
/// one line naming the limit and the fix when no usable link can be made.
pub fn ensure(settings: &Settings) -> Result<()> {
    let Some(link) = settings.socket_link() else {
        return Ok(());
    };
    let socket = settings.socket_path();
    let refuse = |why: String| {
        Failure::usage(format!(
            "the libvirt socket path {} is {} bytes, longer than the {SUN_PATH_MAX} bytes a unix socket address holds, and {why}; pass a shorter --data-dir (or BOXMAN_DATA_DIR)",
            socket.display(),
            socket.as_os_str().len()
        ))
    };
    let connect = settings.socket_connect_path();
    if connect.as_os_str().len() > SUN_PATH_MAX {
        return Err(refuse(format!(
            "the short link {} would be too long as well",
            connect.display()
        )));
    }
    let dir = link.parent().unwrap_or(Path::new("/"));
    private_dir(dir).map_err(|e| {
        refuse(format!(
            "no short link can be kept in {} ({e})",
            dir.display()
        ))
    })?;
    let target = settings.data_dir.join("libvirt-run");
    if fs::read_link(&link).is_ok_and(|t| t == target) {
        return Ok(());
    }
    // Made beside it and renamed over it: a concurrent client sees the old
    // link or the new one, never none.
    let tmp = dir.join(format!(".link-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&target, &tmp)
        .and_then(|_| fs::rename(&tmp, &link))
        .map_err(|e| {
            let _ = fs::remove_file(&tmp);
            refuse(format!(
                "the short link {} cannot be made ({e})",
                link.display()
            ))
        })
}

/// Removes the link of a data dir that is going away (only if it is ours:
/// a link pointing at this data dir's socket directory).
pub fn remove(settings: &Settings) {
    if let Some(link) = settings.socket_link() {
        if fs::read_link(&link).is_ok_and(|t| t == settings.data_dir.join("libvirt-run")) {
            let _ = fs::remove_file(&link);
        }
    }
}

/// `dir` exists, is a directory of ours and nobody else can write into it
/// (a link someone else could re-point would redirect our connections).
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let m = fs::symlink_metadata(dir)?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if !m.is_dir() {
        return Err(Error::other("not a directory"));
    }
    if m.uid() != me {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!("owned by uid {}, not by you (uid {me})", m.uid()),
        ));
    }
    if m.mode() & 0o022 != 0 {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!("writable by others (mode {:04o})", m.mode() & 0o7777),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::GlobalArgs;
    use crate::settings::Sources;

    fn deep(runtime: &Path, data: &Path) -> Settings {
        let src = Sources {
            env: [("XDG_RUNTIME_DIR".to_string(), runtime.display().to_string())]
                .into_iter()
                .collect(),
            cwd: "/".into(),
            ..Default::default()
        };
        let flags = GlobalArgs {
            data_dir: Some(data.to_path_buf()),
            ..Default::default()
        };
        Settings::resolve(&flags, &src).unwrap()
    }

    #[test]
    fn a_deep_socket_gets_a_private_short_link() {
        let t = tempfile::tempdir().unwrap();
        let data = t.path().join("d".repeat(120));
        let s = deep(&t.path().join("run"), &data);
        ensure(&s).unwrap();
        let link = s.socket_link().unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), data.join("libvirt-run"));
        let mode = fs::metadata(link.parent().unwrap()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // Again: a no-op; a link pointing elsewhere is re-pointed.
        ensure(&s).unwrap();
        fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink("/elsewhere", &link).unwrap();
        ensure(&s).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), data.join("libvirt-run"));
        remove(&s);
        assert!(fs::symlink_metadata(&link).is_err());
    }

    #[test]
    fn no_usable_runtime_dir_is_a_one_line_refusal() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("file");
        fs::write(&file, "").unwrap();
        let s = deep(&file, &t.path().join("d".repeat(120)));
        let e = ensure(&s).unwrap_err();
        assert_eq!(e.exit, crate::error::Exit::Usage);
        assert!(e.message.contains("107 bytes"), "{}", e.message);
        assert!(e.message.contains("shorter --data-dir"), "{}", e.message);
        // A group-writable dir is not used.
        let open = t.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let s = deep(&open.join(".."), &t.path().join("e".repeat(120)));
        let s = Settings {
            link_dir: open.clone(),
            ..s
        };
        assert!(ensure(&s)
            .unwrap_err()
            .message
            .contains("writable by others"));
    }
}
