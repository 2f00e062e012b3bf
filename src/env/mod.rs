//! Environments: a whole lab from one file (`boxvirt.yaml`). This module
//! reads and checks the file ([`file`], [`validate`], [`expand`]), learns
//! what each host has ([`observe`]) and computes what `env apply` would do
//! ([`plan`], [`placement`]); those change nothing. [`apply`] and
//! [`destroy`] carry a plan out (in parallel, see [`pool`], [`progress`]).

pub mod apply;
pub mod destroy;
pub mod expand;
pub mod file;
pub mod hosts;
pub mod listing;
pub mod locate;
pub mod mark;
pub mod netdef;
pub mod observe;
pub mod observed;
pub mod outcome;
pub mod placement;
pub mod plan;
pub mod pool;
pub mod progress;
pub mod refuse;
pub mod render;
pub mod replace;
mod unique_map;
pub mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::template::Catalog;
pub use expand::VmSpec;
pub use file::{HostSpec, NetworkSpec, Source};

/// The checked file: everything the plan needs from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub name: String,
    /// The file as the user named it (for messages).
    pub file: String,
    /// Its directory (relative paths in it start there).
    pub dir: PathBuf,
    /// sha256 of its bytes.
    pub digest: String,
    pub hosts: BTreeMap<String, HostSpec>,
    pub networks: BTreeMap<String, NetworkSpec>,
    /// Expanded, in file order.
    pub vms: Vec<VmSpec>,
}

/// Reads, parses and checks the file at `path`.
pub fn load(path: &Path, catalog: &Catalog) -> Result<Desired> {
    from_source(&Source::read(path)?, catalog)
}

pub fn from_source(src: &Source, catalog: &Catalog) -> Result<Desired> {
    let file = src.parse()?;
    let memory = validate::check(src, &file, catalog)?;
    let memory_of = |t: &str| {
        memory
            .get(t)
            .copied()
            .unwrap_or(validate::FALLBACK_MEMORY_MIB)
    };
    let vms = expand::expand(src, &file, &memory_of)?;
    Ok(Desired {
        name: file.name,
        file: src.shown.clone(),
        dir: src.dir.clone(),
        digest: src.digest.clone(),
        hosts: file.hosts,
        networks: file.networks,
        vms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every example file in tests/fixtures/env passes all file checks.
    #[test]
    fn the_example_files_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/env");
        let catalog = Catalog::new(None);
        let lab = load(&dir.join("lab.yaml"), &catalog).unwrap();
        let names: Vec<&str> = lab.vms.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["ctrl", "node-1", "node-2", "node-3"]);
        assert_eq!(lab.vms[1].host.as_deref(), Some("right"));
        assert_eq!(lab.vms[1].user_data, Some(dir.join("node.yaml")));
        let pair = load(&dir.join("two-instances.yaml"), &catalog).unwrap();
        assert_eq!(pair.vms.len(), 5);
        assert_eq!(pair.vms[0].memory_mib, 256, "tiny's own memory");
        assert_eq!(
            pair.hosts["left"].data_dir,
            Some(PathBuf::from("data-left"))
        );
        load(&dir.join("app.yaml"), &catalog).unwrap();
    }
}
