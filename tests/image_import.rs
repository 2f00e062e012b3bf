//! `boxvirt image import PATH` and kernel images (`image import-kernel`,
//! the upload `image build tiny` uses): local files checked, cached by
//! digest and uploaded into pool 'default' of the REAL live libvirtd
//! (tests/harness/live-libvirtd.sh start), then listed and removed. Refused
//! files leave nothing in the cache or the pool. Each test has its own
//! cache (BOXVIRT_CACHE_DIR) and makes its own files with qemu-img; the
//! tests fail, never skip, when the daemon or qemu-img is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

struct Env {
    dir: tempfile::TempDir,
    cache: PathBuf,
    uri: String,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let env = Env {
            dir,
            cache,
            uri: live_uri(),
        };
        let run = env.run(&["vm", "list"]);
        assert_eq!(
            run.code, 0,
            "live libvirtd not reachable at {}: {}\nstart it with tests/harness/live-libvirtd.sh start",
            env.uri, run.stderr
        );
        env
    }

    /// boxvirt against the live daemon with this test's cache.
    fn run(&self, args: &[&str]) -> Run {
        let cache = self.cache.display().to_string();
        let mut full = vec!["-c", self.uri.as_str()];
        full.extend_from_slice(args);
        boxvirt_env(self.dir.path(), &full, &[("BOXVIRT_CACHE_DIR", &cache)])
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Files in the cache's verified and partial dirs (lock files aside).
    fn cached_files(&self) -> Vec<PathBuf> {
        ["images/sha256", "images/partial"]
            .iter()
            .flat_map(|d| {
                std::fs::read_dir(self.cache.join(d))
                    .map(|rd| rd.flatten().map(|e| e.path()).collect::<Vec<_>>())
                    .unwrap_or_default()
            })
            .filter(|p| p.extension().is_none_or(|e| e != "lock"))
            .collect()
    }

    fn pool_volumes(&self) -> Vec<String> {
        volume_names(&boxvirt::libvirt::Libvirt::open(&self.uri, "live").unwrap())
    }
}

fn qemu_img(args: &[&str]) {
    let ok = Command::new("qemu-img").args(args).status();
    assert!(
        ok.is_ok_and(|s| s.success()),
        "qemu-img {args:?} failed: is qemu-utils installed?"
    );
}

/// A 64 MiB qcow2 with 256 KiB of data unique to this test run.
fn make_qcow2(path: &Path) {
    qemu_img(&["create", "-q", "-f", "qcow2", path.to_str().unwrap(), "64M"]);
    let write = format!("write -P {} 1M 256k", std::process::id() % 200 + 20);
    let wrote = Command::new("qemu-io")
        .args(["-f", "qcow2", "-c", &write])
        .arg(path)
        .output();
    assert!(
        wrote.is_ok_and(|o| o.status.success()),
        "qemu-io write failed"
    );
}

/// Removes this test's volumes from pool 'default' whatever happens.
struct Cleanup {
    uri: String,
    prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Ok(conn) = boxvirt::libvirt::Libvirt::open(&self.uri, "live") else {
            return;
        };
        for v in volume_names(&conn) {
            if v.starts_with(&self.prefix) {
                let _ = conn.delete_volume("default", &v);
            }
        }
    }
}

#[test]
fn live_import_uploads_lists_is_idempotent_and_rm_removes_it() {
    let env = Env::new();
    let name = format!("imp-live-{}", std::process::id());
    let _cleanup = Cleanup {
        uri: env.uri.clone(),
        prefix: format!("{name}-"),
    };
    let file = env.path("golden.qcow2");
    make_qcow2(&file);
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(&file).unwrap(),
    ));
    let vol = format!("{name}-{}.qcow2", &digest[..12]);

    let first = env
        .run(&["image", "import", file.to_str().unwrap(), "--name", &name])
        .ok();
    assert!(
        first.stdout.contains(&format!("sha256:{digest} imported"))
            && first.stdout.contains(&format!("base volume '{vol}'"))
            && first.stdout.contains("uploaded"),
        "{}",
        first.stdout
    );
    assert!(env.pool_volumes().contains(&vol));
    // The volume holds exactly the file.
    let conn = boxvirt::libvirt::Libvirt::open(&env.uri, "live").unwrap();
    let mut back = Vec::new();
    conn.download_volume("default", &vol, &mut back).unwrap();
    assert_eq!(back, std::fs::read(&file).unwrap());

    let again = env
        .run(&["image", "import", file.to_str().unwrap(), "--name", &name])
        .ok();
    assert!(
        again.stdout.contains("already cached") && again.stdout.contains("already there"),
        "{}",
        again.stdout
    );

    let list = env.run(&["-o", "json", "image", "list"]).ok();
    let row = row_named(&list.stdout, &name);
    assert_eq!(row["sha256"], digest.as_str());
    assert_eq!(row["format"], "qcow2");
    assert_eq!(row["volume"]["name"], vol.as_str());
    assert!(row["url"].as_str().unwrap().starts_with("file://"), "{row}");

    env.run(&["image", "rm", &name, "--yes"]).ok();
    assert!(!env.pool_volumes().contains(&vol), "volume left after rm");
    assert!(env.cached_files().is_empty(), "{:?}", env.cached_files());
    let list = env.run(&["-o", "json", "image", "list"]).ok();
    assert!(!list.stdout.contains(&name), "{}", list.stdout);
}

#[test]
fn live_truncated_and_overlay_qcow2_are_refused_with_nothing_left() {
    let env = Env::new();
    let pid = std::process::id();
    let good = env.path("good.qcow2");
    make_qcow2(&good);
    let bytes = std::fs::read(&good).unwrap();
    let cut = env.path("cut.qcow2");
    std::fs::write(&cut, &bytes[..bytes.len() - 100_000]).unwrap();
    let overlay = env.path("overlay.qcow2");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        good.to_str().unwrap(),
        "-F",
        "qcow2",
        overlay.to_str().unwrap(),
    ]);
    let text = env.path("notes.img");
    std::fs::write(&text, "not a disk\n".repeat(512 * 4 / 11 + 1)).unwrap();
    let cases = [
        (&cut, 2, "truncated"),
        (&overlay, 2, "backing file"),
        (&text, 2, "not a usable disk image"),
    ];
    for (file, code, needle) in cases {
        let name = format!("imp-bad-{pid}");
        let _cleanup = Cleanup {
            uri: env.uri.clone(),
            prefix: format!("{name}-"),
        };
        let run = env
            .run(&["image", "import", file.to_str().unwrap(), "--name", &name])
            .expect_code(code);
        let line = run.one_line_error();
        assert!(line.contains(needle), "{}: {line}", file.display());
        assert!(env.cached_files().is_empty(), "{:?}", env.cached_files());
        let left: Vec<String> = env
            .pool_volumes()
            .into_iter()
            .filter(|v| v.starts_with(&format!("{name}-")))
            .collect();
        assert!(left.is_empty(), "{}: {left:?}", file.display());
    }
    let missing = env.run(&["image", "import", "/nonexistent/disk.qcow2"]);
    assert!(missing
        .expect_code(3)
        .one_line_error()
        .contains("not found"));
}

#[test]
fn live_kernel_image_is_uploaded_once_listed_as_one_image_and_removed() {
    let env = Env::new();
    let name = format!("kimg-{}", std::process::id());
    let _cleanup = Cleanup {
        uri: env.uri.clone(),
        prefix: format!("{name}-"),
    };
    let tiny = tiny_dir();
    let kernel = tiny.join("vmlinuz");
    let initrd = tiny.join("initrd.img");
    let args = [
        "-o",
        "json",
        "image",
        "import-kernel",
        &name,
        "--kernel",
        kernel.to_str().unwrap(),
        "--initrd",
        initrd.to_str().unwrap(),
    ];
    let first = env.run(&args).ok();
    let v: serde_json::Value = serde_json::from_str(&first.stdout).unwrap();
    assert_eq!(v["uploaded"], true, "{v}");
    let kvol = v["kernel"].as_str().unwrap().to_string();
    let ivol = v["initrd"].as_str().unwrap().to_string();
    assert!(kvol.starts_with(&format!("{name}-")) && kvol.ends_with(".vmlinuz"));
    assert!(ivol.ends_with(".initrd"));
    let conn = boxvirt::libvirt::Libvirt::open(&env.uri, "live").unwrap();
    let mut back = Vec::new();
    conn.download_volume("default", &kvol, &mut back).unwrap();
    assert_eq!(back, std::fs::read(&kernel).unwrap());
    let again: serde_json::Value = serde_json::from_str(&env.run(&args).ok().stdout).unwrap();
    assert_eq!(again["uploaded"], false);
    assert_eq!(again["kernel"], kvol.as_str());

    // Swapped files are refused before anything is uploaded.
    let swapped = env.run(&[
        "image",
        "import-kernel",
        &format!("{name}-x"),
        "--kernel",
        initrd.to_str().unwrap(),
        "--initrd",
        kernel.to_str().unwrap(),
    ]);
    assert!(swapped.expect_code(2).one_line_error().contains("--kernel"));

    let list = env.run(&["-o", "json", "image", "list"]).ok();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&list.stdout).unwrap();
    let mine: Vec<&serde_json::Value> =
        rows.iter().filter(|r| r["name"] == name.as_str()).collect();
    assert_eq!(mine.len(), 2, "{}", list.stdout);
    env.run(&["image", "rm", &name, "--yes"]).ok();
    let left: Vec<String> = env
        .pool_volumes()
        .into_iter()
        .filter(|v| v.starts_with(&format!("{name}-")))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

// ------------------------------------------------ libvirt test driver

/// A test-driver host with network and pool 'default' but no kernel image.
fn bare_node(dir: &Path) -> String {
    let xml = dir.join("bare.xml");
    std::fs::write(
        &xml,
        "<node>
  <network>
    <name>default</name>
    <bridge name='virbr0'/>
    <forward mode='nat'/>
    <ip address='192.168.122.1' netmask='255.255.255.0'>
      <dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp>
    </ip>
  </network>
  <pool type='dir'>
    <name>default</name>
    <target><path>/var/lib/libvirt/images</path></target>
  </pool>
</node>
",
    )
    .unwrap();
    format!("test://{}", xml.display())
}

#[test]
fn vm_create_tiny_without_its_kernel_image_says_which_command_makes_it() {
    let d = tempfile::tempdir().unwrap();
    let uri = bare_node(d.path());
    let key = d.path().join("id.pub");
    std::fs::write(
        &key,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ6kTs7fmPwHh4xn7ZP0Vv1kq3T6P4fQH1Rzh1pQm7yL t@h\n",
    )
    .unwrap();
    let run = boxvirt_in(
        d.path(),
        &[
            "-c",
            &uri,
            "vm",
            "create",
            "--template",
            "tiny",
            "--name",
            "t1",
            "--ssh-key",
            key.to_str().unwrap(),
            "--start",
        ],
    )
    .expect_code(3);
    assert_eq!(
        run.one_line_error(),
        "error: image 'tiny' is not in pool 'default'; run 'boxvirt image build tiny'"
    );
    // The fixture's pool already lists volumes tiny-<hex>.vmlinuz/.initrd:
    // then the paths come from them.
    let node = test_uri("node.xml");
    let made = boxvirt_in(
        d.path(),
        &[
            "-c",
            &node,
            "vm",
            "create",
            "--template",
            "tiny",
            "--name",
            "t2",
            "--no-seed",
        ],
    )
    .ok();
    assert!(made.stdout.contains("created vm 't2'"), "{}", made.stdout);
}

#[test]
fn a_failed_upload_leaves_nothing_in_the_cache() {
    // The test driver has no upload streams, so the upload fails after
    // the file was cached: the cache entry must go again.
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let file = d.path().join("disk.qcow2");
    make_qcow2(&file);
    let env = [("BOXVIRT_CACHE_DIR", cache.to_str().unwrap())];
    let uri = bare_node(d.path());
    let run = boxvirt_env(
        d.path(),
        &["-c", &uri, "image", "import", file.to_str().unwrap()],
        &env,
    )
    .expect_code(1);
    assert!(run.one_line_error().contains("importing image 'disk'"));
    let list = boxvirt_env(
        d.path(),
        &["-o", "json", "image", "list", "--cache-only"],
        &env,
    )
    .ok();
    assert_eq!(list.stdout.trim(), "[]");
    // --no-upload: cached without libvirt, then found by digest.
    let run = boxvirt_env(
        d.path(),
        &["image", "import", file.to_str().unwrap(), "--no-upload"],
        &env,
    )
    .ok();
    assert!(run.stdout.contains("imported"), "{}", run.stdout);
    let run = boxvirt_env(
        d.path(),
        &["image", "import", file.to_str().unwrap(), "--no-upload"],
        &env,
    )
    .ok();
    assert!(run.stdout.contains("already cached"), "{}", run.stdout);
    // The same name for other bytes is a conflict.
    let other = d.path().join("other.qcow2");
    qemu_img(&["create", "-q", "-f", "qcow2", other.to_str().unwrap(), "1M"]);
    let run = boxvirt_env(
        d.path(),
        &[
            "image",
            "import",
            other.to_str().unwrap(),
            "--name",
            "disk",
            "--no-upload",
        ],
        &env,
    )
    .expect_code(4);
    assert!(run
        .one_line_error()
        .contains("already cached with other content"));
}

#[test]
fn live_kernel_upload_that_fails_halfway_removes_what_it_uploaded() {
    // The initrd's volume name is taken by a different volume that a VM
    // uses: the kernel goes up first, the initrd is refused, and the
    // kernel volume must go again.
    let env = Env::new();
    let name = format!("kroll-{}", std::process::id());
    let _cleanup = Cleanup {
        uri: env.uri.clone(),
        prefix: format!("{name}-"),
    };
    let tiny = tiny_dir();
    let (kernel, initrd) = (tiny.join("vmlinuz"), tiny.join("initrd.img"));
    let digest = boxvirt::image::kernel::pair_digest(&kernel, &initrd).unwrap();
    use boxvirt::image::kernel::{volume_name, Part};
    let kvol = volume_name(&name, &digest, Part::Kernel);
    let ivol = volume_name(&name, &digest, Part::Initrd);
    let conn = boxvirt::libvirt::Libvirt::open(&env.uri, "live").unwrap();
    let path = conn
        .create_volume("default", &ivol, 1 << 20, "raw")
        .unwrap();
    let user = format!("{name}-user");
    let xml = env.path("user.xml");
    std::fs::write(
        &xml,
        format!(
            "<domain type='qemu'><name>{user}</name><memory unit='MiB'>64</memory>\
             <os><type arch='x86_64'>hvm</type></os><devices><disk type='file' device='disk'>\
             <source file='{path}'/><target dev='vda' bus='virtio'/></disk></devices></domain>"
        ),
    )
    .unwrap();
    let _vm = VmGuard {
        uri: env.uri.clone(),
        name: user.clone(),
    };
    let defined = Command::new("virsh")
        .args(["-c", &env.uri, "define"])
        .arg(&xml)
        .output()
        .unwrap();
    assert!(defined.status.success(), "{defined:?}");

    let run = env
        .run(&[
            "-v",
            "image",
            "import-kernel",
            &name,
            "--kernel",
            kernel.to_str().unwrap(),
            "--initrd",
            initrd.to_str().unwrap(),
        ])
        .expect_code(4);
    let line = run.one_line_error();
    assert!(line.contains(&format!("used by vm '{user}'")), "{line}");
    // The kernel really went up before the initrd was refused.
    assert!(
        run.stderr.contains(&format!("uploading {kvol}")),
        "{}",
        run.stderr
    );
    let vols = env.pool_volumes();
    assert!(!vols.contains(&kvol), "kernel volume left behind: {vols:?}");
    assert!(vols.contains(&ivol), "the VM's volume must stay");
    let _ = Command::new("virsh")
        .args(["-c", &env.uri, "undefine", &user])
        .output();
}
