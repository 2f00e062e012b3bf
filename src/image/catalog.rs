//! The images boxvirt knows by name. We cannot learn digests ahead of time,
//! so each entry names where the distribution publishes the checksum of the
//! image next to the image itself; `pull` reads it before downloading.
//!
//! Every entry lists a pinned build first (reproducible) and the
//! distribution's moving "latest" link second, used only when the pinned
//! build has been pruned from the server (HTTP 404/410). Either way the bytes
//! are verified against the checksum file published beside them.

use serde::Serialize;

/// One place an image can be downloaded from, with its checksum file.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Source {
    pub url: &'static str,
    /// A checksum file listing the image's file name (BSD `SHA256 (f) = hex`
    /// or GNU `hex  f` / `hex *f`, sha256 or sha512).
    pub checksum_url: &'static str,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Entry {
    pub name: &'static str,
    pub description: &'static str,
    pub sources: &'static [Source],
    pub format: &'static str,
    /// The account cloud-init creates for the injected SSH key.
    pub login_user: &'static str,
}

pub const ENTRIES: &[Entry] = &[
    Entry {
        name: "rocky9",
        description: "Rocky Linux 9 GenericCloud Base (x86_64)",
        sources: &[
            Source {
                // The vault keeps every point release forever.
                url: "https://dl.rockylinux.org/vault/rocky/9.6/images/x86_64/Rocky-9-GenericCloud-Base-9.6-20250531.0.x86_64.qcow2",
                checksum_url: "https://dl.rockylinux.org/vault/rocky/9.6/images/x86_64/CHECKSUM",
            },
            Source {
                url: "https://dl.rockylinux.org/pub/rocky/9/images/x86_64/Rocky-9-GenericCloud-Base.latest.x86_64.qcow2",
                checksum_url: "https://dl.rockylinux.org/pub/rocky/9/images/x86_64/CHECKSUM",
            },
        ],
        format: "qcow2",
        login_user: "rocky",
    },
    Entry {
        name: "ubuntu24",
        description: "Ubuntu 24.04 LTS (noble) server cloud image (amd64)",
        sources: &[
            Source {
                url: "https://cloud-images.ubuntu.com/releases/noble/release-20250516/ubuntu-24.04-server-cloudimg-amd64.img",
                checksum_url: "https://cloud-images.ubuntu.com/releases/noble/release-20250516/SHA256SUMS",
            },
            Source {
                // Where Ubuntu moves serials it prunes from the main site.
                url: "https://cloud-images-archive.ubuntu.com/releases/noble/release-20250516/ubuntu-24.04-server-cloudimg-amd64.img",
                checksum_url: "https://cloud-images-archive.ubuntu.com/releases/noble/release-20250516/SHA256SUMS",
            },
            Source {
                url: "https://cloud-images.ubuntu.com/releases/noble/release/ubuntu-24.04-server-cloudimg-amd64.img",
                checksum_url: "https://cloud-images.ubuntu.com/releases/noble/release/SHA256SUMS",
            },
        ],
        format: "qcow2",
        login_user: "ubuntu",
    },
    Entry {
        name: "debian12",
        description: "Debian 12 (bookworm) genericcloud (amd64)",
        sources: &[
            Source {
                // Debian publishes only SHA512SUMS for cloud images.
                url: "https://cloud.debian.org/images/cloud/bookworm/20250814-2204/debian-12-genericcloud-amd64-20250814-2204.qcow2",
                checksum_url: "https://cloud.debian.org/images/cloud/bookworm/20250814-2204/SHA512SUMS",
            },
            Source {
                url: "https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2",
                checksum_url: "https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS",
            },
        ],
        format: "qcow2",
        login_user: "debian",
    },
];

pub fn find(name: &str) -> Option<&'static Entry> {
    ENTRIES.iter().find(|e| e.name == name)
}

pub fn names() -> Vec<&'static str> {
    ENTRIES.iter().map(|e| e.name).collect()
}

/// The last path segment of a URL (what checksum files list), without a
/// query or fragment.
pub fn file_name(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_complete_and_https() {
        for e in ENTRIES {
            crate::names::validate("image", e.name).unwrap();
            assert!(!e.sources.is_empty(), "{}", e.name);
            for s in e.sources {
                assert!(
                    s.url.starts_with("https://") && s.checksum_url.starts_with("https://"),
                    "{}",
                    e.name
                );
                assert!(!file_name(s.url).is_empty());
                // The checksum file sits beside the image.
                let dir = &s.url[..s.url.len() - file_name(s.url).len()];
                assert!(
                    s.checksum_url.starts_with(dir),
                    "{}: {}",
                    e.name,
                    s.checksum_url
                );
            }
        }
        assert_eq!(names(), ["rocky9", "ubuntu24", "debian12"]);
    }

    #[test]
    fn file_names_drop_query_and_fragment() {
        assert_eq!(file_name("http://h/a/b.qcow2?x=1#y"), "b.qcow2");
        assert_eq!(file_name("http://h/a/b.img"), "b.img");
    }
}
