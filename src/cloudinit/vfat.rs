//! The seed image: a small FAT filesystem labelled CIDATA holding the three
//! NoCloud files. vfat rather than ISO 9660: cloud-init's NoCloud accepts
//! both, and a pure-Rust FAT writer (fatfs) keeps long file names without
//! an external mkisofs.

use std::io::{Cursor, Write};

use fatfs::{Date, DateTime, FileSystem, FormatVolumeOptions, FsOptions, Time, TimeProvider};
use sha2::{Digest, Sha256};

use super::{meta_data, network_config, user_data, SeedSpec, SEED_LABEL};
use crate::error::{Failure, Result};

/// Smallest image (FAT12 with room to spare; it compresses to almost nothing).
const MIN_SIZE: usize = 1024 * 1024;
/// Refuse absurd user-data instead of making a huge image in memory.
const MAX_CONTENT: usize = 64 * 1024 * 1024;

/// The whole seed filesystem image (raw bytes for a volume upload).
pub fn build_seed_image(spec: &SeedSpec) -> Result<Vec<u8>> {
    spec.validate()?;
    let user = user_data(spec)?;
    let meta = meta_data(spec);
    let network = network_config(spec);
    let files = [
        ("meta-data", meta.as_bytes()),
        ("user-data", user.as_bytes()),
        ("network-config", network.as_bytes()),
    ];
    // A volume serial of its own per instance (a fixed one would be shared by every seed).
    let digest = Sha256::digest(spec.instance_id.as_bytes());
    let serial = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    fat_image(SEED_LABEL, serial, &files)
}

/// A FAT image labelled `label` holding `files` in its root directory.
pub(crate) fn fat_image(label: &str, serial: u32, files: &[(&str, &[u8])]) -> Result<Vec<u8>> {
    let fail =
        |e: std::io::Error| Failure::failed(format!("cannot build the cloud-init seed image: {e}"));
    let content: usize = files.iter().map(|(_, data)| data.len()).sum();
    if content > MAX_CONTENT {
        return Err(Failure::usage(format!(
            "cloud-init seed content is {} MiB; at most {} MiB fit (is --user-data the right file?)",
            content >> 20,
            MAX_CONTENT >> 20
        )));
    }
    // Room for the content, its cluster slack and the FATs, in 64 KiB steps.
    let size = (content + content / 4 + 256 * 1024)
        .max(MIN_SIZE)
        .next_multiple_of(64 * 1024);
    let mut image = vec![0u8; size];
    let mut label_bytes = [b' '; 11];
    for (slot, b) in label_bytes.iter_mut().zip(label.bytes()) {
        *slot = b;
    }
    let format = FormatVolumeOptions::new()
        .volume_label(label_bytes)
        .volume_id(serial);
    fatfs::format_volume(Cursor::new(&mut image[..]), format).map_err(fail)?;
    {
        let fs = FileSystem::new(
            Cursor::new(&mut image[..]),
            FsOptions::new().time_provider(&FAT_EPOCH),
        )
        .map_err(fail)?;
        {
            let root = fs.root_dir();
            for (name, data) in files {
                let mut file = root.create_file(name).map_err(fail)?;
                file.truncate().map_err(fail)?;
                file.write_all(data).map_err(fail)?;
                file.flush().map_err(fail)?;
            }
        }
        fs.unmount().map_err(fail)?;
    }
    Ok(image)
}

/// Every timestamp is 1980-01-01 00:00, so the same inputs give the same
/// bytes (fatfs without its chrono feature would write an invalid date 0).
#[derive(Debug)]
struct FatEpoch;

static FAT_EPOCH: FatEpoch = FatEpoch;

impl TimeProvider for FatEpoch {
    fn get_current_date(&self) -> Date {
        Date {
            year: 1980,
            month: 1,
            day: 1,
        }
    }
    fn get_current_date_time(&self) -> DateTime {
        DateTime {
            date: self.get_current_date(),
            time: Time {
                hour: 0,
                min: 0,
                sec: 0,
                millis: 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn files_and_label_read_back_with_fatfs() {
        let big = vec![b'x'; 3 * 1024 * 1024];
        let mut image = fat_image(
            "CIDATA",
            7,
            &[("meta-data", b"a: 1\n"), ("user-data", &big)],
        )
        .unwrap();
        assert!(image.len() >= 3 * 1024 * 1024 && image.len().is_multiple_of(65536));
        let fs = FileSystem::new(Cursor::new(&mut image[..]), FsOptions::new()).unwrap();
        assert_eq!(fs.volume_label(), "CIDATA");
        assert_eq!(
            fs.read_volume_label_from_root_dir().unwrap().as_deref(),
            Some("CIDATA")
        );
        assert_eq!(fs.volume_id(), 7);
        let mut text = Vec::new();
        fs.root_dir()
            .open_file("user-data")
            .unwrap()
            .read_to_end(&mut text)
            .unwrap();
        assert_eq!(text, big);
        let names: Vec<String> = fs
            .root_dir()
            .iter()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["meta-data", "user-data"]);
    }

    #[test]
    fn small_seeds_are_one_mib() {
        let image = fat_image("CIDATA", 1, &[("meta-data", b"x")]).unwrap();
        assert_eq!(image.len(), MIN_SIZE);
    }
}
