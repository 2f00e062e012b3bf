//! Files that several boxvirt processes may write at once (keys, known_hosts
//! in the data dir): written whole through a rename, and read-modify-write
//! under a lock, so no reader sees a part and no writer loses another's line.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// `path` with a suffix unique to this process and moment, in the same dir.
pub fn sibling(path: &Path, what: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{what}.{}.{nanos}", std::process::id()));
    path.with_file_name(name)
}

/// Writes `bytes` to a fresh temporary file and renames it over `path`, so
/// a reader sees the old file or the whole new one, never a part.
pub fn write_whole(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = sibling(path, "tmp");
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)))
        .and_then(|()| fs::rename(&tmp, path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Runs `f` while holding an exclusive lock on `path` + ".lock" (released
/// by the kernel even when the process is killed).
pub fn locked<T>(path: &Path, f: impl FnOnce() -> T) -> std::io::Result<T> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    let lock = File::create(path.with_file_name(name))?;
    lock.lock()?;
    Ok(f())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_read_modify_writes_lose_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known");
        let writers: Vec<_> = (0..16)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    locked(&path, || {
                        let mut text = fs::read_to_string(&path).unwrap_or_default();
                        text.push_str(&format!("line {i}\n"));
                        write_whole(&path, text.as_bytes(), 0o644).unwrap();
                    })
                    .unwrap();
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 16, "{text}");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }
}
