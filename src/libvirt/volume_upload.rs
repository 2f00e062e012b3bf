//! Moving bytes into and out of volumes through libvirt streams
//! (`virStorageVolUpload`/`Download`): the same over a local socket and over
//! qemu+ssh, with no assumption that libvirtd sees our files. Plus the
//! question a base volume must answer before it is deleted: who uses it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use virt::error::ErrorNumber;
use virt::storage_vol::StorageVol;
use virt::stream::Stream;

use super::errors::{self, failure};
use super::storage::path_of;
use super::Libvirt;
use crate::error::{Failure, Result};

const CHUNK: usize = 256 * 1024;
/// Written last, so that a volume whose upload was cut off (even by a
/// killed process that could not clean up) is recognisable: its head is
/// still the placeholder's zeros, not the image's header.
pub const HEAD_LEN: u64 = 64 * 1024;

impl Libvirt {
    fn existing_volume(&self, pool: &str, name: &str) -> Result<StorageVol> {
        self.find_volume(pool, name)?.ok_or_else(|| {
            Failure::not_found(format!(
                "volume '{name}' not found in pool '{pool}' at {}",
                self.uri()
            ))
        })
    }

    /// The volume's path on the libvirt host, if the volume exists.
    pub fn volume_path(&self, pool: &str, name: &str) -> Result<Option<String>> {
        self.find_volume(pool, name)?
            .map(|v| path_of(&v, name))
            .transpose()
    }

    /// Creates volume `pool/name` holding exactly the bytes of `local` and
    /// returns its path on the libvirt host. `progress` gets the bytes sent
    /// so far. On any failure the volume is deleted again.
    pub fn upload_volume(
        &self,
        pool: &str,
        name: &str,
        local: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<String> {
        let what = format!(
            "uploading {} to volume '{name}' in pool '{pool}' at {}",
            local.display(),
            self.uri()
        );
        let mut file = File::open(local).map_err(|e| Failure::failed(format!("{what}: {e}")))?;
        let len = file
            .metadata()
            .map_err(|e| Failure::failed(format!("{what}: {e}")))?
            .len();
        if len == 0 {
            return Err(Failure::failed(format!("{what}: the file is empty")));
        }
        let p = self.existing_pool(pool)?;
        // A sparse raw placeholder of exactly the file's length: the upload
        // then overwrites every byte (a qcow2 placeholder would leave its own
        // tail behind a shorter image). A pool refresh afterwards
        // (refresh_pool) makes libvirt probe the real format and size.
        let xml = format!(
            "<volume><name>{}</name><capacity unit='bytes'>{len}</capacity><allocation unit='bytes'>0</allocation><target><format type='raw'/></target></volume>",
            quick_xml::escape::escape(name)
        );
        let vol = StorageVol::create_xml(&p, &xml, 0).map_err(|e| {
            if errors::is_code(&e, ErrorNumber::StorageVolExist) {
                Failure::conflict(format!(
                    "volume '{name}' already exists in pool '{pool}' at {}",
                    self.uri()
                ))
            } else {
                failure(e, &format!("creating volume '{name}' in pool '{pool}'"))
            }
        })?;
        let head = HEAD_LEN.min(len);
        let sent = self
            .send_range(&vol, &mut file, head, len - head, 0, progress)
            .and_then(|()| self.send_range(&vol, &mut file, 0, head, len - head, progress));
        if let Err(err) = sent {
            let _ = vol.delete(0);
            return Err(err.context(format!("{what} (the volume was removed again)")));
        }
        path_of(&vol, name)
    }

    /// Makes libvirt re-read the pool's volumes, e.g. so that an uploaded
    /// qcow2 image shows as qcow2 with its virtual size. libvirt's own
    /// refresh after an upload runs in a background thread and is skipped
    /// while another volume in the pool is being built; a busy pool refuses
    /// refreshes, so this retries for a few seconds and then gives up
    /// quietly (the bytes are right either way, and boxvirt names the
    /// backing format itself).
    pub fn refresh_pool(&self, pool: &str) -> Result<()> {
        let p = self.existing_pool(pool)?;
        for _ in 0..50 {
            if p.refresh(0).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Ok(())
    }

    /// One stream carrying `len` bytes of `file` from `offset` to the same
    /// offset of the volume; aborted on any error so libvirt drops it.
    fn send_range(
        &self,
        vol: &StorageVol,
        file: &mut File,
        offset: u64,
        len: u64,
        done: u64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let stream =
            Stream::new(&self.conn, 0).map_err(|e| failure(e, "opening a libvirt stream"))?;
        if let Err(e) = vol.upload(&stream, offset, len, 0) {
            let _ = stream.abort();
            return Err(failure(e, "starting the upload"));
        }
        let result = (|| -> Result<()> {
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| Failure::failed(format!("reading the image: {e}")))?;
            let mut buf = vec![0u8; CHUNK];
            let mut left = len;
            while left > 0 {
                let want = (buf.len() as u64).min(left) as usize;
                let n = match file.read(&mut buf[..want]) {
                    Ok(0) => {
                        return Err(Failure::failed(
                            "the image file shrank while it was uploaded",
                        ))
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Failure::failed(format!("reading the image: {e}"))),
                };
                // send() may take fewer bytes than offered.
                let mut off = 0;
                while off < n {
                    let sent = stream
                        .send(&buf[off..n])
                        .map_err(|e| failure(e, "sending to the libvirt stream"))?;
                    if sent <= 0 {
                        return Err(Failure::failed("the libvirt stream accepted no data"));
                    }
                    off += sent as usize;
                }
                left -= n as u64;
                progress(done + (len - left));
            }
            Ok(())
        })();
        match result {
            Ok(()) => stream
                .finish()
                .map_err(|e| failure(e, "finishing the upload")),
            Err(e) => {
                let _ = stream.abort();
                Err(e)
            }
        }
    }

    /// Up to `n` bytes from the start of a volume.
    pub fn volume_head(&self, pool: &str, name: &str, n: u64) -> Result<Vec<u8>> {
        let mut head = Vec::new();
        self.download_range(pool, name, 0, n, &mut head)?;
        Ok(head)
    }

    /// The whole volume's bytes into `dest`; returns how many.
    pub fn download_volume(&self, pool: &str, name: &str, dest: &mut dyn Write) -> Result<u64> {
        // Length 0 means "to the end".
        self.download_range(pool, name, 0, 0, dest)
    }

    fn download_range(
        &self,
        pool: &str,
        name: &str,
        offset: u64,
        len: u64,
        dest: &mut dyn Write,
    ) -> Result<u64> {
        let vol = self.existing_volume(pool, name)?;
        let what = format!("downloading volume '{name}' from pool '{pool}'");
        let stream =
            Stream::new(&self.conn, 0).map_err(|e| failure(e, "opening a libvirt stream"))?;
        if let Err(e) = vol.download(&stream, offset, len, 0) {
            let _ = stream.abort();
            return Err(failure(e, &what));
        }
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0u64;
        let result = loop {
            let want = if len == 0 {
                buf.len()
            } else {
                (buf.len() as u64).min(len - got) as usize
            };
            if want == 0 {
                break Ok(());
            }
            match stream.recv(&mut buf[..want]) {
                Ok(0) => break Ok(()),
                Ok(n) if n > 0 => {
                    let n = n as usize;
                    if let Err(e) = dest.write_all(&buf[..n]) {
                        break Err(Failure::failed(format!("{what}: {e}")));
                    }
                    got += n as u64;
                }
                Ok(_) => {
                    break Err(Failure::failed(format!(
                        "{what}: the stream returned no data"
                    )))
                }
                Err(e) => break Err(failure(e, &what)),
            }
        };
        match result {
            // A range shorter than the volume leaves data in the stream: abort.
            Ok(()) if len != 0 && got == len => {
                let _ = stream.abort();
                Ok(got)
            }
            Ok(()) => stream.finish().map(|()| got).map_err(|e| failure(e, &what)),
            Err(e) => {
                let _ = stream.abort();
                Err(e)
            }
        }
    }

    /// What refers to the file `path` on the libvirt host: volumes in active
    /// pools with it as backing store (overlays), and domains with it as a
    /// disk or a disk's backing store. Each is described for messages.
    pub fn volume_users(&self, path: &str) -> Result<Vec<String>> {
        let mut users = Vec::new();
        let pools = self
            .conn
            .list_all_storage_pools(virt::sys::VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)
            .map_err(|e| failure(e, "listing storage pools"))?;
        for pool in &pools {
            // Sees overlays made behind libvirt's back too; a pool busy with
            // an upload refuses, and its list is then as good as it gets.
            let _ = pool.refresh(0);
            let pool_name = pool.name().map_err(|e| failure(e, "reading a pool name"))?;
            let vols = match pool.list_all_volumes(0) {
                Ok(v) => v,
                Err(e) => {
                    return Err(failure(
                        e,
                        &format!("listing volumes of pool '{pool_name}'"),
                    ))
                }
            };
            for vol in &vols {
                let Ok(xml) = vol.xml_desc(0) else { continue }; // deleted meanwhile
                if crate::xml::find_all(&xml, &["volume", "backingStore", "path"])
                    .iter()
                    .any(|e| e.text == path)
                {
                    let name = vol.name().unwrap_or_default();
                    users.push(format!("volume '{name}' in pool '{pool_name}'"));
                }
            }
        }
        let uses_path = |xml: &str| {
            let disk = crate::xml::find_all(xml, &["domain", "devices", "disk", "source"]);
            let backing = crate::xml::find_all(
                xml,
                &["domain", "devices", "disk", "backingStore", "source"],
            );
            // A direct-boot kernel or initramfs volume is used too.
            let boot = ["kernel", "initrd"].iter().any(|t| {
                crate::xml::find_all(xml, &["domain", "os", t])
                    .iter()
                    .any(|e| e.text == path)
            });
            boot || disk
                .iter()
                .chain(backing.iter())
                .any(|e| e.attr("file") == Some(path))
        };
        for dom in self.domains_whose_xml(uses_path)? {
            users.push(format!("vm '{}'", dom.name().unwrap_or_default()));
        }
        Ok(users)
    }
}
