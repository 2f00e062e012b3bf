//! One boxvirt at a time changes an instance: `up`, `restart`, `down` and
//! `clean` hold an exclusive flock(2) on `DATA/.boxvirt.lock` while they
//! work. A second one waits (saying for whom) or, for `clean data`, refuses.
//! The kernel drops the lock when its holder dies, even by SIGKILL, so a
//! killed run never blocks the next; the PID written into the file is only
//! for the message.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Failure, Result};
use crate::output::Output;
use crate::settings::Settings;

pub const LOCK_FILE: &str = ".boxvirt.lock";

/// Held until dropped (closing the file releases the flock).
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

/// Who holds the lock now, as far as the file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder(pub Option<u32>);

impl Holder {
    pub fn describe(self) -> String {
        match self.0 {
            Some(pid) => format!("another boxvirt (pid {pid})"),
            None => "another boxvirt".to_string(),
        }
    }
}

pub fn path(settings: &Settings) -> PathBuf {
    settings.data_dir.join(LOCK_FILE)
}

/// Takes the lock, waiting while another boxvirt holds it. The data dir
/// must exist.
pub fn acquire(settings: &Settings, out: &Output) -> Result<InstanceLock> {
    let mut told = false;
    loop {
        match try_acquire(settings)? {
            Ok(lock) => return Ok(lock),
            Err(holder) if !told => {
                out.note(format!(
                    "waiting for {} working on instance '{}'",
                    holder.describe(),
                    settings.instance
                ));
                told = true;
            }
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Takes the lock if nobody holds it; else says who does.
pub fn try_acquire(settings: &Settings) -> Result<std::result::Result<InstanceLock, Holder>> {
    let path = path(settings);
    let fail = |e: std::io::Error| Failure::failed(format!("cannot lock {}: {e}", path.display()));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(fail)?;
    // SAFETY: flock on a descriptor we own; no memory is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Ok(Err(holder(&mut file)));
        }
        return Err(fail(e));
    }
    // `clean data` may have removed the file we locked; lock the new one.
    if !same_file(&file, &path) {
        drop(file);
        return try_acquire(settings);
    }
    file.set_len(0)
        .and_then(|_| file.seek(SeekFrom::Start(0)))
        .and_then(|_| write!(file, "{}", std::process::id()))
        .map_err(fail)?;
    Ok(Ok(InstanceLock { _file: file }))
}

fn holder(file: &mut File) -> Holder {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    Holder(text.trim().parse().ok())
}

fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::GlobalArgs;
    use crate::settings::Sources;

    fn settings(dir: &Path) -> Settings {
        let flags = GlobalArgs {
            data_dir: Some(dir.to_path_buf()),
            ..Default::default()
        };
        Settings::resolve(&flags, &Sources::default()).unwrap()
    }

    #[test]
    fn second_holder_is_told_who_holds_it_and_gets_it_after_release() {
        let d = tempfile::tempdir().unwrap();
        let s = settings(d.path());
        let first = try_acquire(&s).unwrap().unwrap();
        // flock locks belong to the open file: a second open in the same
        // process conflicts like another process would.
        let held = try_acquire(&s).unwrap().unwrap_err();
        assert_eq!(held, Holder(Some(std::process::id())));
        drop(first);
        let again = try_acquire(&s).unwrap();
        assert!(again.is_ok());
    }

    #[test]
    fn a_removed_lock_file_is_not_a_lock() {
        let d = tempfile::tempdir().unwrap();
        let s = settings(d.path());
        let first = try_acquire(&s).unwrap().unwrap();
        std::fs::remove_file(path(&s)).unwrap();
        // The old file is still locked, but it is no longer the lock.
        assert!(try_acquire(&s).unwrap().is_ok());
        drop(first);
    }
}
