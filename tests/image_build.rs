//! `boxvirt image build debian12|tiny` for real: the recipes run in a
//! throwaway container of the nested-host image on the real Docker engine
//! (tests/harness/start-dockerd.sh and base-image.sh; the test fails, never
//! skips, when Docker is missing). The builds are cached between runs in
//! `$BOXVIRT_TEST_CACHE/image-build` by boxvirt's own key over the build
//! inputs: a fresh machine builds (minutes), later runs reuse. The outputs
//! are checked by reading their bytes: the debian12 disk must hold a GPT
//! with an EFI system partition (FAT, systemd-boot, kernel, loader entry)
//! and an ext4 root; the tiny build a kernel and an initramfs whose init
//! writes cloud-init's result file. Booting them is the live tier's job.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

fn build(name: &str) -> (Run, serde_json::Value) {
    let cache = build_cache();
    let mut env = vec![("BOXVIRT_CACHE_DIR", cache.to_str().unwrap())];
    let docker_host = std::env::var("DOCKER_HOST").unwrap_or_default();
    if !docker_host.is_empty() {
        env.push(("DOCKER_HOST", docker_host.as_str()));
    }
    let run = boxvirt_env(
        &std::env::temp_dir(),
        &["-o", "json", "image", "build", name, "--no-upload"],
        &env,
    )
    .ok();
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    (run, json)
}

fn file_of(json: &serde_json::Value, role: &str) -> PathBuf {
    let files = json["image"]["files"].as_array().unwrap();
    let f = files.iter().find(|f| f["role"] == role).unwrap();
    PathBuf::from(f["path"].as_str().unwrap())
}

const GPT_ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const GPT_LINUX: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

/// A GPT type GUID as text (the first three fields are little-endian).
fn guid(b: &[u8]) -> String {
    format!(
        "{:02X}{:02X}{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{}",
        b[3],
        b[2],
        b[1],
        b[0],
        b[5],
        b[4],
        b[7],
        b[6],
        b[8],
        b[9],
        b[10..16]
            .iter()
            .map(|x| format!("{x:02X}"))
            .collect::<String>()
    )
}

/// (type GUID, first LBA) of the GPT's used entries.
fn gpt_partitions(disk: &[u8]) -> Vec<(String, u64)> {
    let header = &disk[512..1024];
    assert_eq!(&header[..8], b"EFI PART", "no GPT header at LBA 1");
    let le64 = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().unwrap());
    let le32 = |b: &[u8]| u32::from_le_bytes(b[..4].try_into().unwrap()) as usize;
    let entries = le64(&header[72..]) as usize * 512;
    let count = le32(&header[80..]);
    let size = le32(&header[84..]);
    (0..count)
        .map(|i| &disk[entries + i * size..entries + (i + 1) * size])
        .filter(|e| e[..16].iter().any(|&b| b != 0))
        .map(|e| (guid(&e[..16]), le64(&e[32..])))
        .collect()
}

#[test]
fn debian12_is_a_gpt_disk_with_an_esp_and_an_ext4_root_and_a_second_build_is_cached() {
    let (_, json) = build("debian12");
    let qcow2 = file_of(&json, "disk");
    let head = std::fs::read(&qcow2).unwrap();
    assert_eq!(&head[..4], b"QFI\xfb", "{} is not qcow2", qcow2.display());

    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("disk.raw");
    let st = Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(&qcow2)
        .arg(&raw)
        .status()
        .expect("qemu-img (qemu-utils) must be installed");
    assert!(st.success());
    let disk = std::fs::read(&raw).unwrap();
    let parts = gpt_partitions(&disk);
    assert_eq!(parts.len(), 2, "{parts:?}");
    let (esp_type, esp_lba) = &parts[0];
    let (root_type, root_lba) = &parts[1];
    assert_eq!(esp_type, GPT_ESP);
    assert_eq!(root_type, GPT_LINUX);

    // The ESP is FAT32 with systemd-boot at the removable-media path, the
    // kernel, the initrd and a loader entry booting the root by label.
    let esp = (*esp_lba * 512) as usize;
    assert_eq!(&disk[esp + 82..esp + 87], b"FAT32");
    let image = format!("{}@@{esp}", raw.display());
    let listing = Command::new("mdir")
        .args(["-b", "-/", "-i", &image, "::/"])
        .output()
        .expect("mdir (mtools) must be installed");
    let listing = String::from_utf8_lossy(&listing.stdout).to_lowercase();
    for want in [
        "::/efi/boot/bootx64.efi",
        "::/vmlinuz",
        "::/initrd.img",
        "::/loader/entries/debian.conf",
    ] {
        assert!(listing.contains(want), "{want} missing:\n{listing}");
    }
    let entry = Command::new("mtype")
        .args(["-i", &image, "::/loader/entries/debian.conf"])
        .output()
        .unwrap();
    let entry = String::from_utf8_lossy(&entry.stdout);
    assert!(entry.contains("root=LABEL=debian12-root"), "{entry}");
    assert!(entry.contains("console=ttyS0"), "{entry}");

    // ext4 superblock magic and label of the root partition.
    let sb = (*root_lba * 512) as usize + 1024;
    assert_eq!(&disk[sb + 56..sb + 58], &[0x53, 0xef]);
    assert_eq!(&disk[sb + 120..sb + 133], b"debian12-root");

    // Same inputs: reused, no container.
    let (_, again) = build("debian12");
    assert_eq!(again["image"]["cached"], true, "{again}");
    assert_eq!(again["image"]["key"], json["image"]["key"]);
    assert_eq!(file_of(&again, "disk"), qcow2);
}

#[test]
fn tiny_has_a_kernel_and_an_initramfs_whose_init_writes_the_cloud_init_result() {
    let (_, json) = build("tiny");
    let kernel = std::fs::read(file_of(&json, "kernel")).unwrap();
    assert_eq!(&kernel[0x202..0x206], b"HdrS", "vmlinuz is not a bzImage");
    let initrd = file_of(&json, "initrd");
    let head = std::fs::read(&initrd).unwrap();
    assert_eq!(&head[..2], &[0x1f, 0x8b], "initrd.img is not gzip");
    let init = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gzip -dc '{}' | cpio -i --quiet --to-stdout init",
            initrd.display()
        ))
        .output()
        .unwrap();
    let init = String::from_utf8_lossy(&init.stdout);
    assert!(init.contains("/run/cloud-init/result.json"), "{init}");
    assert!(init.contains("boot-finished"), "{init}");

    let (_, again) = build("tiny");
    assert_eq!(again["image"]["cached"], true, "{again}");
}

#[test]
fn an_unknown_recipe_is_a_usage_error_naming_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let run = boxvirt_env(
        dir.path(),
        &["image", "build", "fedora"],
        &[("BOXVIRT_CACHE_DIR", dir.path().to_str().unwrap())],
    )
    .expect_code(2);
    let line = run.one_line_error();
    assert!(line.contains("'fedora'"), "{line}");
    assert!(line.contains("debian12, tiny"), "{line}");
}
