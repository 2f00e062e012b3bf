//! What kind of disk image a file is, read from its header: qcow2 (with its
//! virtual size) or, failing the magic, raw.

use std::io::Read;
use std::path::Path;

use crate::error::{Failure, Result};

const MAGIC: &[u8; 4] = b"QFI\xfb";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    /// "qcow2" or "raw".
    pub format: &'static str,
    /// The disk size a guest sees.
    pub virtual_size: u64,
    /// Bytes in the file.
    pub file_size: u64,
}

/// Reads the header: qcow2 keeps the virtual size big-endian at bytes 24..32.
pub fn probe(path: &Path) -> Result<ImageInfo> {
    let fail =
        |e: std::io::Error| Failure::failed(format!("reading image {}: {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(fail)?;
    let file_size = file.metadata().map_err(fail)?.len();
    let mut head = [0u8; 32];
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]).map_err(fail)? {
            0 => break,
            n => got += n,
        }
    }
    Ok(from_header(&head[..got], file_size))
}

pub fn from_header(head: &[u8], file_size: u64) -> ImageInfo {
    if head.len() >= 32 && &head[..4] == MAGIC {
        let mut size = [0u8; 8];
        size.copy_from_slice(&head[24..32]);
        ImageInfo {
            format: "qcow2",
            virtual_size: u64::from_be_bytes(size),
            file_size,
        }
    } else {
        ImageInfo {
            format: "raw",
            virtual_size: file_size,
            file_size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_virtual_size_of_qcow2_and_falls_back_to_raw() {
        let mut head = vec![0u8; 32];
        head[..4].copy_from_slice(MAGIC);
        head[24..32].copy_from_slice(&(64u64 << 20).to_be_bytes());
        assert_eq!(
            from_header(&head, 1000),
            ImageInfo {
                format: "qcow2",
                virtual_size: 64 << 20,
                file_size: 1000
            }
        );
        assert_eq!(from_header(&[0u8; 32], 512).format, "raw");
        assert_eq!(from_header(b"QFI", 3).format, "raw");
    }
}
