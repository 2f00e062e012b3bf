//! Is a local file a disk image boxvirt can use as a base? `image import`
//! asks before it hashes or copies anything. qcow2 is told by its magic and
//! checked in Rust (the user's host need not have `qemu-img check`): a
//! header the file cannot hold, an L1/L2 table or data cluster past the
//! end, a backing file or an external data file are refused. Anything else
//! is raw, unless it is empty, not whole 512-byte sectors, text, or another
//! format recognisable from a few magic bytes (ISO 9660, VMDK, VDI, VHD,
//! compressed archives, ...).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::qcow2::ImageInfo;
use crate::error::{Failure, Result};

const QCOW_MAGIC: &[u8; 4] = b"QFI\xfb";
const SECTOR: u64 = 512;
/// Bits 9..55 of an L1/L2 entry: the host offset of the table or cluster.
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const COMPRESSED: u64 = 1 << 62;
/// incompatible_features bits (qcow2 v3).
const EXTERNAL_DATA_FILE: u64 = 1 << 2;
const EXTENDED_L2: u64 = 1 << 4;
/// A bigger L1 table than this is not a header we believe (qemu's own cap).
const MAX_L1_BYTES: u64 = 32 << 20;

/// Why a file is refused: always a usage error naming the file.
fn refuse(path: &Path, why: impl std::fmt::Display) -> Failure {
    refuse_with(path, why, "import a qcow2 or raw disk image")
}

fn refuse_with(path: &Path, why: impl std::fmt::Display, next: &str) -> Failure {
    Failure::usage(format!(
        "{} is not a usable disk image: {why}; {next}",
        path.display()
    ))
}

fn io_fail(path: &Path, e: std::io::Error) -> Failure {
    Failure::failed(format!("reading {}: {e}", path.display()))
}

/// Opens `path` for reading: a missing file is "not found" (exit 3), a
/// directory or other non-file is bad input (exit 2).
pub fn open(path: &Path) -> Result<(File, u64)> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::not_found(format!(
                "file {} not found; pass the path of a qcow2 or raw disk image",
                path.display()
            )))
        }
        Err(e) => return Err(io_fail(path, e)),
    };
    if !meta.is_file() {
        return Err(refuse(path, "it is not a regular file"));
    }
    let file = File::open(path).map_err(|e| io_fail(path, e))?;
    Ok((file, meta.len()))
}

/// Reads up to `len` bytes at `offset` (fewer at the end of the file).
fn read_at(file: &mut File, path: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(len);
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| io_fail(path, e))?;
    file.take(len as u64)
        .read_to_end(&mut buf)
        .map_err(|e| io_fail(path, e))?;
    Ok(buf)
}

fn be32(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(x) as u64
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

/// Checks the file at `path` and says what it is.
pub fn check(path: &Path) -> Result<ImageInfo> {
    let (mut file, size) = open(path)?;
    let head = read_at(&mut file, path, 0, 64 * 1024)?;
    if head.len() >= 4 && &head[..4] == QCOW_MAGIC {
        return check_qcow2(&mut file, path, &head, size);
    }
    check_raw(&mut file, path, &head, size)
}

/// Formats a raw image must not be, by their magic bytes at offset 0.
const OTHER_MAGIC: &[(&[u8], &str)] = &[
    (b"KDMV", "a VMDK image"),
    (b"# Disk DescriptorFile", "a VMDK descriptor"),
    (b"conectix", "a VHD image"),
    (b"vhdxfile", "a VHDX image"),
    (b"QED\0", "a QED image"),
    (b"LUKS\xba\xbe", "a LUKS container"),
    (b"\x1f\x8b", "gzip-compressed (unpack it first)"),
    (b"\xfd7zXZ\0", "xz-compressed (unpack it first)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed (unpack it first)"),
    (b"BZh", "bzip2-compressed (unpack it first)"),
    (b"PK\x03\x04", "a zip archive (unpack it first)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive (unpack it first)"),
    (b"\x7fELF", "an executable"),
];

fn check_raw(file: &mut File, path: &Path, head: &[u8], size: u64) -> Result<ImageInfo> {
    if size == 0 {
        return Err(refuse(path, "it is empty"));
    }
    if let Some((_, what)) = OTHER_MAGIC.iter().find(|(m, _)| head.starts_with(m)) {
        return Err(refuse(path, format!("it is {what}")));
    }
    if head.len() >= 100 && &head[64..68] == b"\x7f\x10\xda\xbe" {
        return Err(refuse(path, "it is a VDI image"));
    }
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        return Err(refuse(path, "it is a tar archive (unpack it first)"));
    }
    // ISO 9660: "CD001" in the first volume descriptor at sector 16 (of 2048).
    let iso = read_at(file, path, 0x8001, 5)?;
    if iso == b"CD001" {
        return Err(refuse(
            path,
            "it is an ISO 9660 image (an installer or CD), not a disk",
        ));
    }
    let sample = &head[..head.len().min(4096)];
    if !sample.contains(&0) && std::str::from_utf8(sample).is_ok() {
        return Err(refuse(path, "it looks like a text file"));
    }
    if !size.is_multiple_of(SECTOR) {
        return Err(refuse(
            path,
            format!(
                "its size {size} is not a multiple of {SECTOR} bytes (a raw disk is whole sectors)"
            ),
        ));
    }
    Ok(ImageInfo {
        format: "raw",
        virtual_size: size,
        file_size: size,
    })
}

/// The qcow2 header fields the checks need.
struct Header {
    cluster_size: u64,
    virtual_size: u64,
    l1_size: u64,
    l1_offset: u64,
    l2_entry: u64,
    cluster_bits: u64,
}

fn parse_header(path: &Path, head: &[u8], size: u64) -> Result<Header> {
    if head.len() < 72 {
        return Err(refuse(path, "its qcow2 header is cut off (truncated file)"));
    }
    let version = be32(head, 4);
    if version != 2 && version != 3 {
        return Err(refuse(
            path,
            format!("qcow version {version} is not supported (qcow2 is version 2 or 3)"),
        ));
    }
    if be64(head, 8) != 0 || be32(head, 16) != 0 {
        return Err(refuse_with(
            path,
            "it is a qcow2 overlay with a backing file",
            "import a standalone image ('qemu-img convert -O qcow2' flattens it)",
        ));
    }
    let cluster_bits = be32(head, 20);
    if !(9..=21).contains(&cluster_bits) {
        return Err(refuse(
            path,
            format!("its qcow2 cluster_bits {cluster_bits} is invalid"),
        ));
    }
    if be32(head, 32) != 0 {
        return Err(refuse(path, "it is an encrypted qcow2 image"));
    }
    let incompatible = if version == 3 && head.len() >= 80 {
        be64(head, 72)
    } else {
        0
    };
    if incompatible & EXTERNAL_DATA_FILE != 0 {
        return Err(refuse(
            path,
            "its qcow2 data lives in an external data file",
        ));
    }
    let cluster_size = 1u64 << cluster_bits;
    let header = Header {
        cluster_size,
        virtual_size: be64(head, 24),
        l1_size: be32(head, 36),
        l1_offset: be64(head, 40),
        l2_entry: if incompatible & EXTENDED_L2 != 0 {
            16
        } else {
            8
        },
        cluster_bits,
    };
    let refcount_offset = be64(head, 48);
    let refcount_bytes = be32(head, 56).saturating_mul(cluster_size);
    let tables = [
        (
            "L1 table",
            header.l1_offset,
            header.l1_size.saturating_mul(8),
        ),
        ("refcount table", refcount_offset, refcount_bytes),
    ];
    for (what, offset, len) in tables {
        if offset.saturating_add(len) > size {
            return Err(truncated(path, what, offset.saturating_add(len), size));
        }
    }
    if header.l1_size * 8 > MAX_L1_BYTES {
        return Err(refuse(path, "its qcow2 L1 table is implausibly large"));
    }
    Ok(header)
}

fn truncated(path: &Path, what: &str, needs: u64, size: u64) -> Failure {
    refuse(
        path,
        format!("it is truncated: its qcow2 {what} reaches byte {needs} but the file has {size}"),
    )
}

/// Walks L1 and every L2 table: each table and data cluster must lie
/// inside the file (a cut-off download fails here).
fn check_qcow2(file: &mut File, path: &Path, head: &[u8], size: u64) -> Result<ImageInfo> {
    let h = parse_header(path, head, size)?;
    let l1 = read_at(file, path, h.l1_offset, (h.l1_size * 8) as usize)?;
    for l1_entry in l1.chunks_exact(8).map(|c| be64(c, 0)) {
        let l2_offset = l1_entry & OFFSET_MASK;
        if l2_offset == 0 {
            continue;
        }
        if l2_offset + h.cluster_size > size {
            return Err(truncated(
                path,
                "L2 table",
                l2_offset + h.cluster_size,
                size,
            ));
        }
        let l2 = read_at(file, path, l2_offset, h.cluster_size as usize)?;
        for chunk in l2.chunks_exact(h.l2_entry as usize) {
            let entry = be64(chunk, 0);
            let end = cluster_end(entry, &h);
            if end > size {
                return Err(truncated(path, "data cluster", end, size));
            }
        }
    }
    Ok(ImageInfo {
        format: "qcow2",
        virtual_size: h.virtual_size,
        file_size: size,
    })
}

/// Where the data an L2 entry points at ends in the file (0: unallocated).
fn cluster_end(entry: u64, h: &Header) -> u64 {
    if entry & COMPRESSED != 0 {
        // Compressed: the offset takes the low 62 - (cluster_bits - 8) bits.
        let bits = 62 - (h.cluster_bits - 8);
        let offset = entry & ((1u64 << bits) - 1);
        return offset + 1;
    }
    match entry & OFFSET_MASK {
        0 => 0,
        offset => offset + h.cluster_size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Exit;
    use std::io::Write;

    fn file_with(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
        p
    }

    /// A minimal valid qcow2 v3 made by hand: 64 KiB clusters, header at 0,
    /// L1 at cluster 1, refcount table at cluster 2, one L2 table at
    /// cluster 3 mapping one data cluster at cluster 4.
    fn qcow2(backing: bool) -> Vec<u8> {
        let c = 65536usize;
        let mut f = vec![0u8; 5 * c];
        f[..4].copy_from_slice(QCOW_MAGIC);
        f[4..8].copy_from_slice(&3u32.to_be_bytes());
        if backing {
            f[8..16].copy_from_slice(&512u64.to_be_bytes());
            f[16..20].copy_from_slice(&8u32.to_be_bytes());
            f[512..520].copy_from_slice(b"base.img");
        }
        f[20..24].copy_from_slice(&16u32.to_be_bytes());
        f[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
        f[36..40].copy_from_slice(&1u32.to_be_bytes());
        f[40..48].copy_from_slice(&(c as u64).to_be_bytes());
        f[48..56].copy_from_slice(&(2 * c as u64).to_be_bytes());
        f[56..60].copy_from_slice(&1u32.to_be_bytes());
        f[100..104].copy_from_slice(&104u32.to_be_bytes());
        f[c..c + 8].copy_from_slice(&((3 * c as u64) | 1 << 63).to_be_bytes());
        f[3 * c..3 * c + 8].copy_from_slice(&((4 * c as u64) | 1 << 63).to_be_bytes());
        f
    }

    fn refused(p: &Path, needle: &str) {
        let e = check(p).unwrap_err();
        assert_eq!(e.exit, Exit::Usage, "{}", e.message);
        assert!(
            e.message.contains(needle),
            "{needle:?} not in {}",
            e.message
        );
    }

    #[test]
    fn qcow2_is_read_and_checked() {
        let d = tempfile::tempdir().unwrap();
        let good = qcow2(false);
        let info = check(&file_with(d.path(), "ok.qcow2", &good)).unwrap();
        assert_eq!(info.format, "qcow2");
        assert_eq!(info.virtual_size, 1 << 30);
        // Cut inside the data cluster, the L2 table, the header.
        for (cut, needle) in [
            (4 * 65536 + 100, "data cluster"),
            (3 * 65536 + 100, "L2 table"),
            (2 * 65536 + 8, "refcount table"),
            (40, "header is cut off"),
        ] {
            refused(&file_with(d.path(), "cut.qcow2", &good[..cut]), needle);
        }
        refused(
            &file_with(d.path(), "overlay.qcow2", &qcow2(true)),
            "backing file",
        );
        let mut v1 = good.clone();
        v1[4..8].copy_from_slice(&1u32.to_be_bytes());
        refused(&file_with(d.path(), "v1.qcow2", &v1), "qcow version 1");
    }

    #[test]
    fn raw_must_be_sectors_and_not_something_else() {
        let d = tempfile::tempdir().unwrap();
        let mut mbr = vec![0u8; 1 << 20];
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        let info = check(&file_with(d.path(), "disk.img", &mbr)).unwrap();
        assert_eq!((info.format, info.virtual_size), ("raw", 1 << 20));
        refused(&file_with(d.path(), "empty.img", b""), "empty");
        refused(
            &file_with(d.path(), "odd.img", &mbr[..1000]),
            "multiple of 512",
        );
        refused(
            &file_with(d.path(), "notes.txt", "hello disk\n".repeat(512).as_bytes()),
            "text file",
        );
        let mut iso = vec![0u8; 64 * 2048];
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        refused(&file_with(d.path(), "x.iso", &iso), "ISO 9660");
        let mut gz = vec![0u8; 4096];
        gz[..2].copy_from_slice(b"\x1f\x8b");
        refused(&file_with(d.path(), "x.img.gz", &gz), "gzip");
        let e = check(&d.path().join("nosuch.img")).unwrap_err();
        assert_eq!(e.exit, Exit::NotFound, "{}", e.message);
        refused(d.path(), "not a regular file");
    }
}
