//! The host's memory: its total and what is free now (read-only).

use serde::Serialize;

use super::errors::failure;
use super::Libvirt;
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NodeMemory {
    pub total_mib: u64,
    /// `None` when the driver cannot say (the test driver without NUMA
    /// cells, some remote setups).
    pub free_mib: Option<u64>,
}

impl Libvirt {
    pub fn node_memory(&self) -> Result<NodeMemory> {
        let info = self
            .conn
            .node_info()
            .map_err(|e| failure(e, "reading the host's memory"))?;
        Ok(NodeMemory {
            total_mib: info.memory / 1024,
            free_mib: self.conn.free_memory().ok().map(|b| b / (1024 * 1024)),
        })
    }
}
