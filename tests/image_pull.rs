//! `boxvirt image pull|list|rm` against a small HTTP server on 127.0.0.1
//! (in this file) serving a real qcow2 made with qemu-img, and, for the
//! upload, the REAL live libvirtd (tests/harness/live-libvirtd.sh start).
//! Each test has its own cache (BOXVIRT_CACHE_DIR). The live tests fail,
//! never skip, when the daemon is missing.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use common::*;
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------- server

#[derive(Default)]
struct State {
    files: HashMap<String, Vec<u8>>,
    /// Close the connection after this many bytes of the file, once.
    cut_at: Option<u64>,
    /// Answer every GET with 200 and the whole file (no resume support).
    ignore_range: bool,
    /// (path, Range header) of every request.
    seen: Vec<(String, Option<String>)>,
}

struct Server {
    base: String,
    state: Arc<Mutex<State>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let s = shared.clone();
                std::thread::spawn(move || serve(conn, &s));
            }
        });
        Server { base, state }
    }

    fn put(&self, path: &str, body: Vec<u8>) -> String {
        self.state
            .lock()
            .unwrap()
            .files
            .insert(path.to_string(), body);
        format!("{}{path}", self.base)
    }

    fn seen(&self) -> Vec<(String, Option<String>)> {
        self.state.lock().unwrap().seen.clone()
    }

    fn gets_of(&self, path: &str) -> Vec<Option<String>> {
        self.seen()
            .into_iter()
            .filter(|(p, _)| p == path)
            .map(|(_, r)| r)
            .collect()
    }
}

fn serve(mut conn: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    let (body, cut, ignore) = {
        let mut s = state.lock().unwrap();
        s.seen.push((path.clone(), range.clone()));
        let body = s.files.get(&path).cloned();
        let cut = if body.is_some() {
            s.cut_at.take()
        } else {
            None
        };
        (body, cut, s.ignore_range)
    };
    let Some(body) = body else {
        let _ = conn
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let len = body.len() as u64;
    let start = range.filter(|_| !ignore).and_then(|r| {
        r.strip_prefix("bytes=")
            .and_then(|r| r.strip_suffix('-'))
            .map(|n| n.parse::<u64>().unwrap())
    });
    let head = match start {
        Some(s) if s >= len => {
            let _ = write!(conn, "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return;
        }
        Some(s) => format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{len}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            len - 1,
            len - s
        ),
        None => format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n"),
    };
    let from = start.unwrap_or(0);
    let to = cut.map(|c| c.max(from)).unwrap_or(len).min(len);
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(&body[from as usize..to as usize]);
    let _ = conn.flush();
    let _ = conn.shutdown(std::net::Shutdown::Both);
}

// ---------------------------------------------------------------- helpers

/// A real qcow2 (64 MiB virtual) with some data, so it is not all header.
/// Each call writes a different pattern, so tests running side by side on the
/// shared daemon never share a digest (base volumes are found by digest).
fn test_image(dir: &Path) -> Vec<u8> {
    static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0x10);
    let pattern = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let path = dir.join("src.qcow2");
    let ok = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&path)
        .arg("64M")
        .status();
    assert!(
        ok.is_ok_and(|s| s.success()),
        "qemu-img create failed: is qemu-utils installed?"
    );
    // Some data, so the image is more than a header (qemu-io ships with qemu-img).
    let write = format!("write -P {pattern} 1M 256k");
    let wrote = Command::new("qemu-io")
        .args(["-f", "qcow2", "-c", &write])
        .arg(&path)
        .output();
    assert!(
        wrote.is_ok_and(|o| o.status.success()),
        "qemu-io write failed"
    );
    std::fs::read(&path).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

struct Env {
    dir: tempfile::TempDir,
    cache: PathBuf,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        Env { dir, cache }
    }

    fn run(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let cache = self.cache.display().to_string();
        let mut env = vec![
            ("BOXVIRT_CACHE_DIR", cache.as_str()),
            ("BOXVIRT_DOWNLOAD_RETRIES", "0"),
        ];
        env.extend_from_slice(extra);
        boxvirt_env(self.dir.path(), args, &env)
    }

    /// `image pull URL FLAG VALUE --no-upload` (the cache only, no libvirt).
    fn pull(&self, url: &str, (flag, value): (&str, &str)) -> Run {
        self.run(&["image", "pull", url, flag, value, "--no-upload"], &[])
    }

    fn verified(&self) -> Vec<PathBuf> {
        files_in(&self.cache.join("images/sha256"))
    }

    fn parts(&self) -> Vec<PathBuf> {
        files_in(&self.cache.join("images/partial"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "part"))
            .collect()
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------- offline tests

#[test]
fn checksum_mismatch_is_an_error_naming_both_digests_and_caches_nothing() {
    let env = Env::new();
    let server = Server::start();
    let image = test_image(env.dir.path());
    let actual = sha256_hex(&image);
    let url = server.put("/img/bad.qcow2", image);
    let wrong = "0".repeat(64);

    let run = env.pull(&url, ("--sha256", &wrong)).expect_code(1);
    let line = run.one_line_error();
    assert!(line.contains(&wrong) && line.contains(&actual), "{line}");
    assert!(env.verified().is_empty(), "cached: {:?}", env.verified());
    assert!(env.parts().is_empty(), "part left: {:?}", env.parts());

    // Same through a checksum file that lists a wrong digest.
    let sums = server.put(
        "/img/SHA256SUMS",
        format!("{wrong} *bad.qcow2\n").into_bytes(),
    );
    let run = env.pull(&url, ("--checksum-url", &sums)).expect_code(1);
    assert!(run.one_line_error().contains(&actual));
    assert!(env.verified().is_empty() && env.parts().is_empty());
}

#[test]
fn interrupted_download_is_resumed_by_the_next_pull() {
    let env = Env::new();
    let server = Server::start();
    let image = test_image(env.dir.path());
    let digest = sha256_hex(&image);
    let url = server.put("/img/cut.qcow2", image.clone());
    let cut = 100_000u64;
    server.state.lock().unwrap().cut_at = Some(cut);

    let run = env.pull(&url, ("--sha256", &digest)).expect_code(1);
    let line = run.one_line_error();
    assert!(
        line.contains("interrupted") && line.contains("resume"),
        "{line}"
    );
    assert!(
        env.verified().is_empty(),
        "a partial download must not be cached"
    );
    let parts = env.parts();
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert_eq!(std::fs::metadata(&parts[0]).unwrap().len(), cut);

    let run = env.pull(&url, ("--sha256", &digest)).ok();
    assert!(
        run.stdout.contains(&digest) && run.stdout.contains("downloaded and verified"),
        "{}",
        run.stdout
    );
    let gets = server.gets_of("/img/cut.qcow2");
    assert_eq!(gets, vec![None, Some(format!("bytes={cut}-"))]);
    let cached = env.cache.join(format!("images/sha256/{digest}.qcow2"));
    assert_eq!(std::fs::read(&cached).unwrap(), image);
    assert!(env.parts().is_empty());

    // Cached now: no further request for the image.
    let run = env.pull(&url, ("--sha256", &digest)).ok();
    assert!(run.stdout.contains("already cached"), "{}", run.stdout);
    assert_eq!(server.gets_of("/img/cut.qcow2").len(), 2);
}

#[test]
fn interruption_is_resumed_within_one_pull_and_a_server_without_ranges_restarts() {
    let env = Env::new();
    let server = Server::start();
    let image = test_image(env.dir.path());
    let digest = sha256_hex(&image);
    let url = server.put("/img/retry.qcow2", image.clone());
    server.state.lock().unwrap().cut_at = Some(70_000);
    env.run(
        &["image", "pull", &url, "--sha256", &digest, "--no-upload"],
        &[("BOXVIRT_DOWNLOAD_RETRIES", "2")],
    )
    .ok();
    assert_eq!(
        server.gets_of("/img/retry.qcow2"),
        vec![None, Some("bytes=70000-".to_string())]
    );

    // A server that ignores Range: the part is discarded and the download starts over.
    let env = Env::new();
    let url = server.put("/img/norange.qcow2", image.clone());
    {
        let mut s = server.state.lock().unwrap();
        s.cut_at = Some(50_000);
        s.ignore_range = true;
    }
    env.pull(&url, ("--sha256", &digest)).expect_code(1);
    env.pull(&url, ("--sha256", &digest)).ok();
    assert_eq!(
        std::fs::read(env.cache.join(format!("images/sha256/{digest}.qcow2"))).unwrap(),
        image
    );
}

#[test]
fn checksum_files_in_gnu_and_bsd_format_are_read() {
    let env = Env::new();
    let server = Server::start();
    let image = test_image(env.dir.path());
    let digest = sha256_hex(&image);
    let url = server.put("/a/disk.qcow2", image.clone());
    let sums = server.put(
        "/a/SHA256SUMS",
        format!("{} *other.img\n{digest} *disk.qcow2\n", "1".repeat(64)).into_bytes(),
    );
    let run = env
        .run(
            &[
                "image",
                "pull",
                &url,
                "--checksum-url",
                &sums,
                "--no-upload",
                "-o",
                "json",
            ],
            &[],
        )
        .ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["image"]["sha256"], digest.as_str());
    assert_eq!(v["image"]["name"], "disk");
    assert_eq!(v["image"]["format"], "qcow2");
    assert_eq!(v["image"]["virtual_size"], 64u64 << 20);
    assert!(v["volume"].is_null());

    let env = Env::new();
    let url = server.put("/b/Rocky-9-test.x86_64.qcow2", image);
    let sums = server.put(
        "/b/CHECKSUM",
        format!(
            "# Rocky-9-test.x86_64.qcow2: 1 bytes\nSHA256 (Rocky-9-test.x86_64.qcow2) = {digest}\n"
        )
        .into_bytes(),
    );
    env.run(
        &[
            "image",
            "pull",
            &url,
            "--checksum-url",
            &sums,
            "--name",
            "rocky-test",
            "--no-upload",
        ],
        &[],
    )
    .ok();
    let list = env
        .run(&["image", "list", "--cache-only", "-o", "json"], &[])
        .ok();
    let v: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(v[0]["name"], "rocky-test");
    assert_eq!(v[0]["sha256"], digest.as_str());

    // A checksum file that does not list the image: a clear error, nothing cached.
    let env = Env::new();
    let sums = server.put("/b/EMPTY", b"# nothing\n".to_vec());
    let run = env.pull(&url, ("--checksum-url", &sums)).expect_code(1);
    assert!(run.one_line_error().contains("--sha256"), "{}", run.stderr);
    assert!(env.verified().is_empty());
}

#[test]
fn unknown_names_bad_digests_and_urls_without_checksum_are_usage_errors() {
    let env = Env::new();
    let run = env.run(&["image", "pull", "nosuch"], &[]).expect_code(3);
    let line = run.one_line_error();
    assert!(
        line.contains("unknown image 'nosuch'") && line.contains("rocky9, ubuntu24, debian12"),
        "{line}"
    );

    let run = env
        .run(&["image", "pull", "rocky9", "--sha256", "abc123"], &[])
        .expect_code(2);
    assert!(run.one_line_error().contains("--sha256"), "{}", run.stderr);

    let run = env
        .run(&["image", "pull", "http://127.0.0.1:9/x.qcow2"], &[])
        .expect_code(2);
    let line = run.one_line_error();
    assert!(
        line.contains("--sha256 HEX") && line.contains("--checksum-url"),
        "{line}"
    );

    env.run(&["image", "rm", "nosuch", "--cache-only", "-y"], &[])
        .expect_code(3);
    let run = env
        .run(&["image", "rm", "rocky9", "--cache-only", "-y"], &[])
        .expect_code(3);
    assert!(
        run.one_line_error().contains("not in the cache"),
        "{}",
        run.stderr
    );
    assert!(env.verified().is_empty() && env.parts().is_empty());
}

// ---------------------------------------------------------------- live libvirtd

fn require_daemon(env: &Env) {
    let run = env.run(&["-c", &live_uri(), "vm", "list"], &[]);
    assert_eq!(
        run.code,
        0,
        "live libvirtd not reachable at {}: {}\nstart it with tests/harness/live-libvirtd.sh start",
        live_uri(),
        run.stderr
    );
}

/// Pool 'default' exists and runs, made the way boxvirt makes it: the live
/// daemon starts empty, and these tests make volumes with virsh directly.
fn ensure_base_pool() {
    let conn = boxvirt::libvirt::Libvirt::open(&live_uri(), "start tests/harness/live-libvirtd.sh")
        .unwrap();
    let catalog = boxvirt::template::Catalog::new(None);
    conn.ensure_pool("default", || {
        catalog
            .get(boxvirt::template::Kind::Pool, "default")?
            .render(&[])
    })
    .unwrap();
}

fn virsh(args: &[&str]) -> std::process::Output {
    Command::new("virsh")
        .arg("-c")
        .arg(live_uri())
        .args(args)
        .output()
        .expect("running virsh")
}

/// Removes this test's volumes from pool 'default' whatever happens.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for v in &self.0 {
            let _ = virsh(&["vol-delete", "--pool", "default", v]);
        }
    }
}

fn download_back(vol: &str) -> Vec<u8> {
    let conn = boxvirt::libvirt::Libvirt::open(&live_uri(), "start tests/harness/live-libvirtd.sh")
        .unwrap();
    let mut bytes = Vec::new();
    conn.download_volume("default", vol, &mut bytes).unwrap();
    bytes
}

#[test]
fn live_upload_through_a_stream_then_rm_refuses_while_an_overlay_uses_it() {
    let env = Env::new();
    require_daemon(&env);
    let server = Server::start();
    let image = test_image(env.dir.path());
    let digest = sha256_hex(&image);
    let url = server.put("/live/img.qcow2", image.clone());
    let name = format!("test-img-{}", std::process::id());
    let vol = format!("{name}-{}.qcow2", &digest[..12]);
    let overlay = format!("{name}-overlay.qcow2");
    let _cleanup = Cleanup(vec![overlay.clone(), vol.clone()]);
    let uri = live_uri();

    let run = env
        .run(
            &[
                "-c", &uri, "image", "pull", &url, "--sha256", &digest, "--name", &name, "-o",
                "json",
            ],
            &[],
        )
        .ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["volume"]["name"], vol.as_str());
    assert_eq!(v["volume"]["pool"], "default");
    assert_eq!(v["volume"]["format"], "qcow2");
    assert_eq!(v["volume"]["digest"], digest.as_str());
    assert_eq!(v["volume"]["uploaded"], true);
    let path = v["volume"]["path"].as_str().unwrap().to_string();

    // The volume holds exactly the image's bytes, read back through a stream.
    assert_eq!(
        download_back(&vol),
        image,
        "volume content differs from the image"
    );
    // libvirt probed it as the qcow2 it is, with the image's virtual size.
    let xml = String::from_utf8_lossy(&virsh(&["vol-dumpxml", "--pool", "default", &vol]).stdout)
        .to_string();
    assert!(
        xml.contains("<format type='qcow2'/>") && xml.contains(&format!("{}", 64u64 << 20)),
        "{xml}"
    );

    // Same digest: not uploaded again.
    let again = env
        .run(&["-c", &uri, "image", "pull", &name, "-o", "json"], &[])
        .ok();
    let v: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(v["volume"]["uploaded"], false);
    assert_eq!(v["image"]["downloaded"], false);

    let list = env
        .run(&["-c", &uri, "image", "list", "-o", "json"], &[])
        .ok();
    let row = row_named(&list.stdout, &name);
    assert_eq!(row["sha256"], digest.as_str());
    assert_eq!(row["volume"]["name"], vol.as_str());
    let table = env.run(&["-c", &uri, "image", "list"], &[]).ok();
    assert!(table.stdout.contains(&vol), "{}", table.stdout);

    // An overlay on the base volume: rm refuses (exit 4) and removes nothing.
    let made = virsh(&[
        "vol-create-as",
        "default",
        &overlay,
        "1G",
        "--format",
        "qcow2",
        "--backing-vol",
        &path,
        "--backing-vol-format",
        "qcow2",
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let run = env
        .run(&["-c", &uri, "image", "rm", &name, "-y"], &[])
        .expect_code(4);
    let line = run.one_line_error();
    assert!(line.contains(&overlay) && line.contains(&vol), "{line}");
    assert!(virsh(&["vol-info", "--pool", "default", &vol])
        .status
        .success());
    assert_eq!(
        env.verified()
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "qcow2"))
            .count(),
        1
    );

    assert!(virsh(&["vol-delete", "--pool", "default", &overlay])
        .status
        .success());
    env.run(&["-c", &uri, "image", "rm", &name, "-y"], &[]).ok();
    assert!(
        !virsh(&["vol-info", "--pool", "default", &vol])
            .status
            .success(),
        "base volume still there"
    );
    assert!(
        env.verified().is_empty(),
        "cache not emptied: {:?}",
        env.verified()
    );
    env.run(&["-c", &uri, "image", "rm", &name, "-y"], &[])
        .expect_code(3);
}

#[test]
fn live_incomplete_base_volume_is_uploaded_again() {
    let env = Env::new();
    require_daemon(&env);
    let server = Server::start();
    let image = test_image(env.dir.path());
    let digest = sha256_hex(&image);
    let url = server.put("/live/partial.qcow2", image.clone());
    let name = format!("test-img-part-{}", std::process::id());
    let vol = format!("{name}-{}.qcow2", &digest[..12]);
    let _cleanup = Cleanup(vec![vol.clone()]);
    let uri = live_uri();

    // What a killed upload leaves: the placeholder, its head still zeros.
    ensure_base_pool();
    let made = virsh(&[
        "vol-create-as",
        "default",
        &vol,
        &image.len().to_string(),
        "--format",
        "raw",
    ]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let run = env
        .run(
            &[
                "-c", &uri, "image", "pull", &url, "--sha256", &digest, "--name", &name,
            ],
            &[],
        )
        .ok();
    assert!(
        run.stderr.contains("warning:") && run.stderr.contains("incomplete"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("uploaded"), "{}", run.stdout);
    assert_eq!(download_back(&vol), image);
    env.run(&["-c", &uri, "image", "rm", &digest[..16], "-y"], &[])
        .ok();
    assert!(!virsh(&["vol-info", "--pool", "default", &vol])
        .status
        .success());
}

/// `vm create --image`: the disk is a qcow2 overlay whose backing store is the
/// base volume (a linked clone), grown to --disk-size; `--full-clone` copies.
/// Deleting the VMs leaves the base, which `image rm` then removes.
#[test]
fn live_vm_create_makes_a_linked_clone_or_a_full_copy_of_the_base() {
    let env = Env::new();
    require_daemon(&env);
    let uri = live_uri();
    env.run(&["-c", &uri, "net", "ensure", "default"], &[]).ok();
    let server = Server::start();
    let image = test_image(env.dir.path());
    let digest = sha256_hex(&image);
    let url = server.put("/clone/base.qcow2", image);
    let name = format!("test-img-clone-{}", std::process::id());
    let base = format!("{name}-{}.qcow2", &digest[..12]);
    let (linked, full) = (format!("{name}-linked"), format!("{name}-full"));
    let _cleanup = Cleanup(vec![
        format!("{linked}.qcow2"),
        format!("{full}.qcow2"),
        base.clone(),
    ]);
    let pulled = env
        .run(
            &[
                "-c", &uri, "-o", "json", "image", "pull", &url, "--sha256", &digest, "--name",
                &name,
            ],
            &[],
        )
        .ok();
    let v: serde_json::Value = serde_json::from_str(&pulled.stdout).unwrap();
    let base_path = v["volume"]["path"].as_str().unwrap().to_string();

    let run = env
        .run(
            &[
                "-c",
                &uri,
                "-o",
                "json",
                "vm",
                "create",
                "--template",
                "debian12",
                "--name",
                &linked,
                "--image",
                &name,
                "--disk-size",
                "2",
                "--no-seed",
            ],
            &[],
        )
        .ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["base_image"], base.as_str());
    let xml = String::from_utf8_lossy(
        &virsh(&[
            "vol-dumpxml",
            "--pool",
            "default",
            &format!("{linked}.qcow2"),
        ])
        .stdout,
    )
    .to_string();
    assert!(
        xml.contains("<backingStore>") && xml.contains(&format!("<path>{base_path}</path>")),
        "a linked clone: {xml}"
    );
    assert!(
        xml.contains(&format!("<capacity unit='bytes'>{}</capacity>", 2u64 << 30)),
        "grown to --disk-size: {xml}"
    );
    let dom = String::from_utf8_lossy(&virsh(&["dumpxml", &linked]).stdout).to_string();
    assert!(dom.contains("<disk type='file' device='disk'>"), "{dom}");

    env.run(
        &[
            "-c",
            &uri,
            "vm",
            "create",
            "--template",
            "debian12",
            "--name",
            &full,
            "--image",
            &name,
            "--full-clone",
            "--disk-size",
            "1",
            "--no-seed",
        ],
        &[],
    )
    .ok();
    let xml = String::from_utf8_lossy(
        &virsh(&["vol-dumpxml", "--pool", "default", &format!("{full}.qcow2")]).stdout,
    )
    .to_string();
    assert!(
        !xml.contains("<backingStore>"),
        "a full copy has no backing store: {xml}"
    );

    // The base is in use: rm refuses; after the VMs are gone it goes.
    env.run(&["-c", &uri, "image", "rm", &name, "-y"], &[])
        .expect_code(4);
    for vm in [&linked, &full] {
        env.run(&["-c", &uri, "vm", "delete", vm, "--yes"], &[])
            .ok();
    }
    env.run(&["-c", &uri, "image", "rm", &name, "-y"], &[]).ok();
    assert!(!virsh(&["vol-info", "--pool", "default", &base])
        .status
        .success());
}

/// Listings tolerate objects that vanish between the listing and the read
/// (other tools and other tests delete volumes and networks concurrently).
/// Before the fix, 10 of 60 `image list` runs here failed with "Storage
/// volume not found" while another process churned volumes.
#[test]
fn live_listings_survive_volumes_and_networks_deleted_meanwhile() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let env = Env::new();
    require_daemon(&env);
    let uri = live_uri();
    ensure_base_pool();
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        let prefix = format!("churn-{}", std::process::id());
        std::thread::spawn(move || {
            // Counts only rounds whose create and delete really happened.
            let (mut rounds, mut attempts) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                let vol = format!("{prefix}-{attempts}.qcow2");
                attempts += 1;
                let made = virsh(&["vol-create-as", "default", &vol, "1M", "--format", "qcow2"]);
                let gone = virsh(&["vol-delete", "--pool", "default", &vol]);
                if made.status.success() && gone.status.success() {
                    rounds += 1;
                }
            }
            rounds
        })
    };
    let mut failures = Vec::new();
    for _ in 0..60 {
        for args in [
            &["image", "list"][..],
            &["net", "list"][..],
            &["vm", "list"][..],
        ] {
            let run = env.run(&[&["-c", uri.as_str()][..], args].concat(), &[]);
            if run.code != 0 {
                failures.push(format!("{args:?}: {}", run.stderr.trim()));
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = churn.join().unwrap();
    assert!(rounds > 0, "the churn thread made and deleted no volume");
    assert!(
        failures.is_empty(),
        "{} listings failed while volumes churned: {failures:?}",
        failures.len()
    );
}
