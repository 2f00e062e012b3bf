//! HTTP(S) downloads that resume and verify: bytes are appended to a
//! `.part` file and hashed as they arrive; an interrupted download continues
//! from where it stopped (a `Range` request, after hashing the bytes already
//! there); the part is only handed back when its digest matches, and is
//! deleted when it does not.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use super::checksum::{Digests, Expected, Hasher};
use crate::error::{Failure, Result};
use crate::progress::Transfer;
use crate::settings::ProcessEnv;

const CHUNK: usize = 256 * 1024;
/// Checksum files are small; anything bigger is not one.
const TEXT_LIMIT: u64 = 4 * 1024 * 1024;

pub struct Http {
    agent: ureq::Agent,
    retries: u32,
}

/// How one attempt ended when it did not finish.
enum Stop {
    /// Worth another attempt (connection cut, server error); the part is kept.
    Interrupted(String),
    Fatal(Failure),
}

impl Http {
    /// `BOXVIRT_DOWNLOAD_RETRIES` (default 3) bounds the automatic resumes
    /// within one command; `BOXVIRT_HTTP_TIMEOUT` (seconds, default 60) is
    /// how long a connection may stay silent.
    pub fn of(env: &ProcessEnv) -> Http {
        let idle = Duration::from_secs(env.http_timeout.unwrap_or(60).max(1));
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(concat!("boxvirt/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(idle))
            .timeout_per_read(Some(idle))
            .build();
        Http {
            agent: config.into(),
            retries: env.download_retries.unwrap_or(3).min(100) as u32,
        }
    }

    /// A small text file (a checksum list). HTTP 404/410 is "not found" (exit 3).
    pub fn text(&self, url: &str) -> Result<String> {
        let mut resp = self
            .agent
            .get(url)
            .call()
            .map_err(|e| Failure::failed(format!("fetching {url}: {}", describe(&e))))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(status_failure(url, status));
        }
        resp.body_mut()
            .with_config()
            .limit(TEXT_LIMIT)
            .read_to_string()
            .map_err(|e| Failure::failed(format!("reading {url}: {}", describe(&e))))
    }

    /// Downloads `url` into `part` (resuming what is there) and returns its
    /// digests once they match `expected`. On a mismatch the part is deleted.
    pub fn download(
        &self,
        url: &str,
        part: &Path,
        expected: &Expected,
        progress: &Transfer,
    ) -> Result<Digests> {
        let io = |what: &str, e: std::io::Error| {
            Failure::failed(format!("{what} {}: {e}", part.display()))
        };
        if let Some(dir) = part.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io("creating the directory of", e))?;
        }
        let mut file = File::options()
            .create(true)
            .read(true)
            .append(true)
            .open(part)
            .map_err(|e| io("opening", e))?;
        let mut hasher = Hasher::new(expected);
        // Resuming: the bytes already there count towards the digest.
        let mut len = hash_existing(&mut file, &mut hasher).map_err(|e| io("reading", e))?;
        if len > 0 {
            progress.line(format!("resuming {url} at byte {len}"));
        }
        let mut attempt = 0;
        loop {
            progress.stage(format!("downloading {}", super::catalog::file_name(url)));
            match self.attempt(url, &mut file, &mut hasher, &mut len, expected, progress) {
                Ok(()) => break,
                Err(Stop::Fatal(f)) => return Err(f),
                Err(Stop::Interrupted(why)) => {
                    if attempt >= self.retries {
                        return Err(Failure::failed(format!(
                            "downloading {url} was interrupted after {len} bytes ({why}); the partial download is kept: run the same command again to resume"
                        )));
                    }
                    attempt += 1;
                    progress.line(format!(
                        "download interrupted at byte {len} ({why}); resuming (attempt {attempt} of {})",
                        self.retries
                    ));
                    std::thread::sleep(Duration::from_secs(u64::from(attempt.min(5))));
                }
            }
        }
        drop(file);
        let digests = hasher.finish();
        if digests.get(expected.algo) != Some(expected.hex.as_str()) {
            let actual = digests.get(expected.algo).unwrap_or("none").to_string();
            let _ = std::fs::remove_file(part);
            return Err(Failure::failed(format!(
                "checksum mismatch for {url}: expected {} {}, got {actual}; the download was deleted and nothing was cached (check the checksum or the URL)",
                expected.algo.as_str(),
                expected.hex
            )));
        }
        Ok(digests)
    }

    fn attempt(
        &self,
        url: &str,
        file: &mut File,
        hasher: &mut Hasher,
        len: &mut u64,
        expected: &Expected,
        progress: &Transfer,
    ) -> std::result::Result<(), Stop> {
        let io = |e: std::io::Error| {
            Stop::Fatal(Failure::failed(format!(
                "writing the download of {url}: {e}"
            )))
        };
        let restart = |file: &mut File,
                       hasher: &mut Hasher,
                       len: &mut u64|
         -> std::result::Result<(), Stop> {
            file.set_len(0).map_err(io)?;
            *hasher = Hasher::new(expected);
            *len = 0;
            Ok(())
        };
        let mut req = self.agent.get(url);
        if *len > 0 {
            req = req.header("Range", format!("bytes={len}-"));
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(e) if is_fatal(&e) => {
                return Err(Stop::Fatal(Failure::failed(format!(
                    "downloading {url}: {}",
                    describe(&e)
                ))))
            }
            Err(e) => return Err(Stop::Interrupted(describe(&e))),
        };
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_length = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
        let total = match status {
            206 => match header("content-range")
                .as_deref()
                .and_then(parse_content_range)
            {
                Some((Some(start), total)) if start == *len => {
                    total.or(content_length.map(|c| start + c))
                }
                _ => {
                    // Not the range we asked for: start over on the next attempt.
                    restart(file, hasher, len)?;
                    return Err(Stop::Interrupted(
                        "the server sent a different range".into(),
                    ));
                }
            },
            200 => {
                if *len > 0 {
                    progress.line(format!("{url} does not support resuming; starting over"));
                    restart(file, hasher, len)?;
                }
                content_length
            }
            416 => {
                // Asked for bytes past the end: complete if the sizes agree.
                let total = header("content-range")
                    .as_deref()
                    .and_then(parse_content_range)
                    .and_then(|(_, t)| t);
                if total == Some(*len) {
                    return Ok(());
                }
                restart(file, hasher, len)?;
                return Err(Stop::Interrupted(
                    "the partial download is longer than the file".into(),
                ));
            }
            s if s >= 500 || s == 408 || s == 429 => {
                return Err(Stop::Interrupted(format!("HTTP {s}")))
            }
            s => return Err(Stop::Fatal(status_failure(url, s))),
        };
        progress.set_total(total);
        progress.set_position(*len);
        let mut reader = resp.into_body().into_reader();
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    file.flush().map_err(io)?;
                    return Err(Stop::Interrupted(e.to_string()));
                }
            };
            file.write_all(&buf[..n]).map_err(io)?;
            hasher.update(&buf[..n]);
            *len += n as u64;
            progress.set_position(*len);
        }
        file.flush().map_err(io)?;
        match total {
            Some(t) if *len < t => Err(Stop::Interrupted(format!(
                "the connection closed at byte {len} of {t}"
            ))),
            _ => Ok(()),
        }
    }
}

/// Hashes what a partial download already holds; returns its length.
fn hash_existing(file: &mut File, hasher: &mut Hasher) -> std::io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; CHUNK];
    let mut len = 0u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(len),
            Ok(n) => {
                hasher.update(&buf[..n]);
                len += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// `bytes START-END/TOTAL` or `bytes */TOTAL` -> (start, total).
fn parse_content_range(v: &str) -> Option<(Option<u64>, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let total = total.trim().parse::<u64>().ok();
    let start = if range.trim() == "*" {
        None
    } else {
        Some(range.split_once('-')?.0.trim().parse::<u64>().ok()?)
    };
    Some((start, total))
}

fn status_failure(url: &str, status: u16) -> Failure {
    match status {
        404 | 410 => Failure::not_found(format!("{url} not found (HTTP {status}); check the URL")),
        401 | 403 => Failure::failed(format!("{url}: access denied (HTTP {status})")),
        s => Failure::failed(format!("{url}: unexpected HTTP {s}")),
    }
}

/// Errors that another attempt cannot fix.
fn is_fatal(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::BadUri(_)
            | ureq::Error::HostNotFound
            | ureq::Error::InvalidProxyUrl
            | ureq::Error::Tls(_)
            | ureq::Error::TooManyRedirects
    )
}

fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::HostNotFound => "host not found (DNS)".to_string(),
        ureq::Error::ConnectionFailed => "connection failed".to_string(),
        other => other
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_forms() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((Some(100), Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((Some(5), None)));
        assert_eq!(parse_content_range("bytes */300"), Some((None, Some(300))));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }
}
