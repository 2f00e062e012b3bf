//! Storage pools and volumes: the pool for images, volumes boxvirt makes
//! for VMs and removes with them.

use serde::Serialize;
use virt::error::ErrorNumber;
use virt::storage_pool::StoragePool;
use virt::storage_vol::StorageVol;

use super::errors::{self, failure};
use super::{race, Libvirt};
use crate::error::{Failure, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoolChange {
    Defined,
    Built,
    Started,
    AutostartSet,
}

impl PoolChange {
    pub fn describe(self) -> &'static str {
        match self {
            PoolChange::Defined => "defined",
            PoolChange::Built => "built",
            PoolChange::Started => "started",
            PoolChange::AutostartSet => "set to autostart",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PoolSummary {
    pub name: String,
    pub active: bool,
    pub autostart: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct VolumeSummary {
    pub name: String,
    pub path: String,
    pub capacity_bytes: u64,
}

impl Libvirt {
    fn pool(&self, name: &str) -> Result<Option<StoragePool>> {
        match self.conn.lookup_storage_pool_by_name(name) {
            Ok(p) => Ok(Some(p)),
            Err(e) if errors::is_code(&e, ErrorNumber::NoStoragePool) => Ok(None),
            Err(e) => Err(failure(e, &format!("looking up storage pool '{name}'"))),
        }
    }

    pub(super) fn existing_pool(&self, name: &str) -> Result<StoragePool> {
        self.pool(name)?.ok_or_else(|| {
            Failure::not_found(format!("storage pool '{name}' not found at {}", self.uri()))
        })
    }

    pub fn list_pools(&self) -> Result<Vec<PoolSummary>> {
        let pools = self
            .conn
            .list_all_storage_pools(0)
            .map_err(|e| failure(e, "listing storage pools"))?;
        pools
            .iter()
            .map(|p| {
                let name = p.name().map_err(|e| failure(e, "reading a pool name"))?;
                Ok(PoolSummary {
                    active: p.is_active().map_err(|e| failure(e, "reading a pool"))?,
                    autostart: p.autostart().map_err(|e| failure(e, "reading a pool"))?,
                    name,
                })
            })
            .collect()
    }

    /// Makes the pool exist, be built, run and autostart; a pool this call
    /// defined is undefined again if a later step fails.
    pub fn ensure_pool(
        &self,
        name: &str,
        definition: impl FnOnce() -> Result<String>,
    ) -> Result<Vec<PoolChange>> {
        let mut changes = Vec::new();
        let pool = match self.pool(name)? {
            Some(p) => p,
            None => {
                let xml = definition()?;
                let (pool, ours) = race::define_or_adopt(
                    &format!("defining storage pool '{name}'"),
                    || self.conn.define_storage_pool_xml(&xml, 0),
                    || self.pool(name),
                )?;
                if ours {
                    changes.push(PoolChange::Defined);
                }
                pool
            }
        };
        let result = (|| -> Result<()> {
            let what = format!("preparing storage pool '{name}'");
            if !pool.is_active().map_err(|e| failure(e, &what))? {
                if changes.contains(&PoolChange::Defined) {
                    // Creates the directory; harmless when it exists.
                    pool.build(0)
                        .map_err(|e| failure(e, &format!("building storage pool '{name}'")))?;
                    changes.push(PoolChange::Built);
                }
                if race::start_or_adopt(
                    &format!("starting storage pool '{name}'"),
                    changes.contains(&PoolChange::Defined),
                    || pool.create(0),
                    || pool.is_active().map_err(|e| failure(e, &what)),
                )? {
                    changes.push(PoolChange::Started);
                }
            }
            if pool.is_persistent().map_err(|e| failure(e, &what))?
                && !pool.autostart().map_err(|e| failure(e, &what))?
            {
                pool.set_autostart(true)
                    .map_err(|e| failure(e, &format!("setting pool '{name}' to autostart")))?;
                changes.push(PoolChange::AutostartSet);
            }
            Ok(())
        })();
        if let Err(err) = result {
            if changes.contains(&PoolChange::Defined) {
                let _ = pool.undefine();
                return Err(err.context("rolled back the pool definition"));
            }
            return Err(err);
        }
        Ok(changes)
    }

    fn volume(
        &self,
        pool: &StoragePool,
        pool_name: &str,
        name: &str,
    ) -> Result<Option<StorageVol>> {
        match pool.lookup_storage_vol_by_name(name) {
            Ok(v) => Ok(Some(v)),
            Err(e) if errors::is_code(&e, ErrorNumber::NoStorageVolume) => Ok(None),
            Err(e) => Err(failure(
                e,
                &format!("looking up volume '{name}' in pool '{pool_name}'"),
            )),
        }
    }

    /// A volume of an existing pool, `None` when the volume is missing.
    pub(super) fn find_volume(&self, pool: &str, name: &str) -> Result<Option<StorageVol>> {
        let p = self.existing_pool(pool)?;
        self.volume(&p, pool, name)
    }

    /// The existing pool `pool`, when it has no volume `name` yet.
    fn pool_for_new_volume(&self, pool: &str, name: &str) -> Result<StoragePool> {
        let p = self.existing_pool(pool)?;
        if self.volume(&p, pool, name)?.is_some() {
            return Err(Failure::conflict(format!(
                "volume '{name}' already exists in pool '{pool}'"
            )));
        }
        Ok(p)
    }

    /// Where the pool keeps its volumes (`<target><path>`), if it exists.
    pub fn pool_target_path(&self, name: &str) -> Result<Option<String>> {
        let Some(pool) = self.pool(name)? else {
            return Ok(None);
        };
        let xml = pool
            .xml_desc(0)
            .map_err(|e| failure(e, &format!("reading storage pool '{name}'")))?;
        Ok(crate::xml::find_first(&xml, &["pool", "target", "path"]).map(|p| p.text))
    }

    /// Creates an empty volume (`format` e.g. "qcow2") and returns its path.
    pub fn create_volume(
        &self,
        pool: &str,
        name: &str,
        capacity_bytes: u64,
        format: &str,
    ) -> Result<String> {
        let p = self.pool_for_new_volume(pool, name)?;
        let xml = format!(
            "<volume><name>{}</name><capacity unit='bytes'>{capacity_bytes}</capacity><target><format type='{}'/></target></volume>",
            quick_xml::escape::escape(name),
            quick_xml::escape::escape(format)
        );
        let vol = StorageVol::create_xml(&p, &xml, 0)
            .map_err(|e| failure(e, &format!("creating volume '{name}' in pool '{pool}'")))?;
        path_of(&vol, name)
    }

    /// A qcow2 overlay whose backing store is `backing_path` (a linked clone:
    /// milliseconds, shares the base's blocks). Returns the new volume's path.
    pub fn create_overlay_volume(
        &self,
        pool: &str,
        name: &str,
        backing_path: &str,
        backing_format: &str,
        capacity_bytes: u64,
    ) -> Result<String> {
        use quick_xml::escape::escape;
        let p = self.pool_for_new_volume(pool, name)?;
        let xml = format!(
            "<volume><name>{}</name><capacity unit='bytes'>{capacity_bytes}</capacity><target><format type='qcow2'/></target>\
             <backingStore><path>{}</path><format type='{}'/></backingStore></volume>",
            escape(name),
            escape(backing_path),
            escape(backing_format)
        );
        let vol = StorageVol::create_xml(&p, &xml, 0)
            .map_err(|e| failure(e, &format!("creating overlay '{name}' on {backing_path}")))?;
        path_of(&vol, name)
    }

    /// A full copy of `source` (in `pool`), grown to `capacity_bytes` when that
    /// is larger. Slower than an overlay, independent of the base.
    pub fn clone_volume(
        &self,
        pool: &str,
        name: &str,
        source: &str,
        capacity_bytes: u64,
    ) -> Result<String> {
        use quick_xml::escape::escape;
        let p = self.pool_for_new_volume(pool, name)?;
        let src = self.volume(&p, pool, source)?.ok_or_else(|| {
            Failure::not_found(format!("volume '{source}' not found in pool '{pool}'"))
        })?;
        let xml = format!(
            "<volume><name>{}</name><target><format type='qcow2'/></target></volume>",
            escape(name)
        );
        let vol = StorageVol::create_xml_from(&p, &xml, &src, 0)
            .map_err(|e| failure(e, &format!("copying volume '{source}' to '{name}'")))?;
        let current = vol
            .info()
            .map_err(|e| failure(e, &format!("reading volume '{name}'")))?
            .capacity;
        if capacity_bytes > current {
            if let Err(e) = vol.resize(capacity_bytes, 0) {
                let _ = vol.delete(0);
                return Err(failure(e, &format!("growing volume '{name}'")));
            }
        }
        path_of(&vol, name)
    }

    /// Deletes a volume; a volume that is already gone is not an error.
    pub fn delete_volume(&self, pool: &str, name: &str) -> Result<bool> {
        let Some(p) = self.pool(pool)? else {
            return Ok(false);
        };
        match self.volume(&p, pool, name)? {
            Some(v) => {
                v.delete(0).map_err(|e| {
                    failure(e, &format!("deleting volume '{name}' from pool '{pool}'"))
                })?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    pub fn list_volumes(&self, pool: &str) -> Result<Vec<VolumeSummary>> {
        let p = self.existing_pool(pool)?;
        let vols = p
            .list_all_volumes(0)
            .map_err(|e| failure(e, &format!("listing volumes of pool '{pool}'")))?;
        let mut rows = Vec::with_capacity(vols.len());
        for v in &vols {
            let name = v.name().map_err(|e| failure(e, "reading a volume name"))?;
            let read = v
                .path()
                .and_then(|path| v.info().map(|info| (path, info.capacity)));
            match read {
                Ok((path, capacity_bytes)) => rows.push(VolumeSummary {
                    name,
                    path,
                    capacity_bytes,
                }),
                // Deleted by someone else between the listing and the read.
                Err(e) if errors::is_code(&e, ErrorNumber::NoStorageVolume) => {}
                Err(e) => {
                    return Err(failure(
                        e,
                        &format!("reading volume '{name}' in pool '{pool}'"),
                    ))
                }
            }
        }
        Ok(rows)
    }
}

/// A volume's path on the libvirt host (for `<disk type='file'>`).
pub(super) fn path_of(vol: &StorageVol, name: &str) -> Result<String> {
    vol.path()
        .map_err(|e| failure(e, &format!("reading the path of volume '{name}'")))
}
