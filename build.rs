//! Embeds the nested-host image assets (docker/) into the binary, so that
//! `boxvirt up` can build the image from any working directory and an
//! installed binary needs no checkout. Writes `$OUT_DIR/docker_assets.rs`:
//! a sorted list of (relative path, unix mode, bytes).

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
        .join("docker");
    // A directory here makes cargo rerun when any file below it changes. The
    // absolute path also reruns it when the target dir is shared with another
    // checkout (cargo keys the build dir without the source path).
    println!("cargo:rerun-if-changed=docker");
    println!("cargo:rerun-if-changed={}", root.display());

    let mut files = Vec::new();
    if root.is_dir() {
        walk(&root, &root, &mut files);
    }
    files.sort();

    // Copies in OUT_DIR: the generated code never points into a checkout
    // that may be gone by the next build.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let copies = out_dir.join("docker");
    let _ = fs::remove_dir_all(&copies);
    let mut f =
        fs::File::create(out_dir.join("docker_assets.rs")).expect("create docker_assets.rs");
    writeln!(
        f,
        "/// Files of docker/ at build time: (path relative to docker/, mode, content)."
    )
    .unwrap();
    writeln!(f, "pub static FILES: &[(&str, u32, &[u8])] = &[").unwrap();
    for (rel, mode, abs) in &files {
        let copy = copies.join(rel);
        fs::create_dir_all(copy.parent().expect("parent")).expect("create asset dir");
        fs::copy(abs, &copy).expect("copy asset");
        writeln!(f, "    ({rel:?}, 0o{mode:o}, include_bytes!(concat!(env!(\"OUT_DIR\"), \"/docker/{rel}\"))),")
            .unwrap();
    }
    writeln!(f, "];").unwrap();
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<(String, u32, String)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            walk(root, &path, files);
        } else if meta.is_file() {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            files.push((
                rel,
                meta.permissions().mode() & 0o777,
                path.to_string_lossy().into_owned(),
            ));
        }
    }
}
