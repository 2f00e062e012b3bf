//! `boxvirt virsh`: the old `make virsh` (`virsh list --all` through the
//! instance socket), natively.

use serde::Serialize;
use tabled::Tabled;

use crate::context::Ctx;
use crate::error::{Exit, Result};

#[derive(Tabled, Serialize)]
struct Row {
    #[tabled(rename = "NAME")]
    name: String,
    #[tabled(rename = "STATE")]
    state: String,
    #[tabled(rename = "VCPUS")]
    vcpus: u32,
    #[tabled(rename = "MEMORY (MiB)")]
    memory_mib: u64,
}

pub fn run(ctx: &Ctx) -> Result<Exit> {
    let domains = ctx.libvirt()?.list_domains()?;
    let rows: Vec<Row> = domains
        .iter()
        .map(|d| Row {
            name: d.name.clone(),
            state: d.state.as_str().to_string(),
            vcpus: d.vcpus,
            memory_mib: d.memory_mib,
        })
        .collect();
    ctx.out.rows(&rows, &domains)?;
    Ok(Exit::Ok)
}
