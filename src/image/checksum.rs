//! Expected digests: from `--sha256 HEX` or from a distribution's checksum
//! file, and the hashing done while bytes arrive.

use serde::Serialize;
use sha2::{Digest as _, Sha256, Sha512};

use crate::error::{Failure, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Algo {
    Sha256,
    Sha512,
}

impl Algo {
    pub fn as_str(self) -> &'static str {
        match self {
            Algo::Sha256 => "sha256",
            Algo::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algo::Sha256 => 64,
            Algo::Sha512 => 128,
        }
    }
}

/// A digest the downloaded bytes must have (lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expected {
    pub algo: Algo,
    pub hex: String,
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.algo.as_str(), self.hex)
    }
}

fn is_hex(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_hexdigit())
}

/// `--sha256 HEX` (an optional `sha256:` prefix is accepted).
pub fn parse_sha256_flag(value: &str) -> Result<Expected> {
    let hex = value.trim();
    let hex = hex.strip_prefix("sha256:").unwrap_or(hex);
    if hex.len() != 64 || !is_hex(hex) {
        return Err(Failure::usage(format!(
            "--sha256 {value:?} is not a SHA-256 digest; pass the 64 hexadecimal characters that `sha256sum` prints"
        )));
    }
    Ok(Expected {
        algo: Algo::Sha256,
        hex: hex.to_ascii_lowercase(),
    })
}

/// The digest a checksum file lists for `file`. Understands BSD lines
/// (`SHA256 (file) = hex`, Rocky's CHECKSUM) and GNU lines (`hex  file`,
/// `hex *file`: Ubuntu's SHA256SUMS, Debian's SHA512SUMS); other lines
/// (comments, PGP armour) are ignored. SHA-256 wins when both are listed.
pub fn find_in_checksum_file(text: &str, file: &str) -> Option<Expected> {
    let mut found: Vec<Expected> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(e) = parse_bsd(line, file).or_else(|| parse_gnu(line, file)) {
            found.push(e);
        }
    }
    found
        .iter()
        .find(|e| e.algo == Algo::Sha256)
        .or(found.first())
        .cloned()
}

fn algo_for(hex: &str) -> Option<Algo> {
    if !is_hex(hex) {
        return None;
    }
    [Algo::Sha256, Algo::Sha512]
        .into_iter()
        .find(|a| a.hex_len() == hex.len())
}

fn parse_bsd(line: &str, file: &str) -> Option<Expected> {
    let (tag, rest) = line.split_once(" (")?;
    let (name, hex) = rest.rsplit_once(") = ")?;
    let algo = match tag.trim().to_ascii_uppercase().as_str() {
        "SHA256" => Algo::Sha256,
        "SHA512" => Algo::Sha512,
        _ => return None,
    };
    let hex = hex.trim();
    (name == file && algo_for(hex) == Some(algo)).then(|| Expected {
        algo,
        hex: hex.to_ascii_lowercase(),
    })
}

fn parse_gnu(line: &str, file: &str) -> Option<Expected> {
    let (hex, rest) = line.split_once(char::is_whitespace)?;
    let name = rest.trim_start();
    let name = name.strip_prefix('*').unwrap_or(name);
    let name = name.strip_prefix("./").unwrap_or(name);
    let algo = algo_for(hex)?;
    (name == file).then(|| Expected {
        algo,
        hex: hex.to_ascii_lowercase(),
    })
}

/// Hashes bytes as they arrive: always SHA-256 (the cache key), SHA-512 too
/// when that is what the distribution publishes.
#[derive(Clone)]
pub struct Hasher {
    sha256: Sha256,
    sha512: Option<Sha512>,
}

/// The digests of a finished download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub sha256: String,
    pub sha512: Option<String>,
}

impl Digests {
    /// The digest in the algorithm of `expected`.
    pub fn get(&self, algo: Algo) -> Option<&str> {
        match algo {
            Algo::Sha256 => Some(&self.sha256),
            Algo::Sha512 => self.sha512.as_deref(),
        }
    }
}

impl Hasher {
    pub fn new(expected: &Expected) -> Hasher {
        Hasher {
            sha256: Sha256::new(),
            sha512: (expected.algo == Algo::Sha512).then(Sha512::new),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        if let Some(h) = &mut self.sha512 {
            h.update(bytes);
        }
    }

    pub fn finish(self) -> Digests {
        Digests {
            sha256: hex::encode(self.sha256.finalize()),
            sha512: self.sha512.map(|h| hex::encode(h.finalize())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H256: &str = "8d6161defd323d24d66f85dda40e64e2b9021aefa4ca879dcbc4ec775ad1bbc5";

    #[test]
    fn sha256_flag_accepts_hex_and_prefix_and_rejects_the_rest() {
        assert_eq!(parse_sha256_flag(H256).unwrap().hex, H256);
        assert_eq!(
            parse_sha256_flag(&format!("sha256:{}", H256.to_uppercase()))
                .unwrap()
                .hex,
            H256
        );
        for bad in ["", "abc", &H256[1..], &format!("{}g", &H256[1..])] {
            let err = parse_sha256_flag(bad).unwrap_err();
            assert_eq!(err.exit, crate::error::Exit::Usage, "{bad}");
        }
    }

    #[test]
    fn bsd_checksum_file_as_rocky_publishes_it() {
        let text = format!(
            "# Rocky-9-GenericCloud-Base-9.6-20250531.0.x86_64.qcow2: 628555776 bytes\n\
             SHA256 (Rocky-9-GenericCloud-Base-9.6-20250531.0.x86_64.qcow2) = {H256}\n\
             SHA256 (Rocky-9-GenericCloud-Base.latest.x86_64.qcow2) = {}\n",
            "1".repeat(64)
        );
        let e = find_in_checksum_file(
            &text,
            "Rocky-9-GenericCloud-Base-9.6-20250531.0.x86_64.qcow2",
        )
        .unwrap();
        assert_eq!(
            e,
            Expected {
                algo: Algo::Sha256,
                hex: H256.into()
            }
        );
        assert_eq!(
            find_in_checksum_file(&text, "Rocky-9-GenericCloud-Base.latest.x86_64.qcow2")
                .unwrap()
                .hex,
            "1".repeat(64)
        );
        assert!(find_in_checksum_file(&text, "other.qcow2").is_none());
    }

    #[test]
    fn gnu_checksum_files_as_ubuntu_and_debian_publish_them() {
        let ubuntu =
            format!("{} *ubuntu-24.04-server-cloudimg-amd64.img\n{H256} *ubuntu-24.04-server-cloudimg-amd64.img.x\n", H256);
        assert_eq!(
            find_in_checksum_file(&ubuntu, "ubuntu-24.04-server-cloudimg-amd64.img")
                .unwrap()
                .hex,
            H256
        );
        let h512 = "ab".repeat(64);
        let debian = format!(
            "{h512}  debian-12-genericcloud-amd64-20250814-2204.qcow2\n{}  debian-12-genericcloud-amd64-20250814-2204.raw\n",
            "cd".repeat(64)
        );
        let e = find_in_checksum_file(&debian, "debian-12-genericcloud-amd64-20250814-2204.qcow2")
            .unwrap();
        assert_eq!(
            e,
            Expected {
                algo: Algo::Sha512,
                hex: h512
            }
        );
    }

    #[test]
    fn hasher_matches_known_digests() {
        let mut h = Hasher::new(&Expected {
            algo: Algo::Sha512,
            hex: String::new(),
        });
        h.update(b"a");
        h.update(b"bc");
        let d = h.finish();
        assert_eq!(
            d.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(d.sha512.unwrap().starts_with("ddaf35a193617aba"));
    }
}
