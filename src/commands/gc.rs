//! `boxvirt gc [--yes]`: boxvirt-made objects that belong to no domain
//! (volumes named like a VM's disk or seed, live DHCP reservations with a
//! VM's derived MAC), left by a create or delete that was killed. Lists
//! them; `--yes` removes them. A create in flight has volumes before its
//! domain, so gc is for when no create runs (or name the VMs).

use tabled::Tabled;

use crate::cli::GcArgs;
use crate::context::Ctx;
use crate::error::{Exit, Result};
use crate::vm::leftovers::{self, Leftover};

#[derive(Tabled)]
struct Row {
    #[tabled(rename = "VM")]
    vm: String,
    #[tabled(rename = "KIND")]
    kind: String,
    #[tabled(rename = "POOL/NETWORK")]
    home: String,
    #[tabled(rename = "OBJECT")]
    object: String,
}

fn row(l: &Leftover) -> Row {
    Row {
        vm: l.vm.clone(),
        kind: l.kind.to_string(),
        home: l.home.clone(),
        object: l.object.clone(),
    }
}

pub fn run(ctx: &Ctx, args: &GcArgs) -> Result<Exit> {
    for vm in &args.vms {
        crate::names::validate("vm", vm)?;
    }
    let conn = ctx.libvirt()?;
    let found: Vec<Leftover> = leftovers::find(&conn, None)?
        .into_iter()
        .filter(|l| args.vms.is_empty() || args.vms.contains(&l.vm))
        .collect();
    let rows: Vec<Row> = found.iter().map(row).collect();
    if !ctx.settings.yes {
        ctx.out
            .list("boxvirt-made objects without a domain", &rows, &found)?;
        if !found.is_empty() && !ctx.out.is_json() {
            ctx.out.note("run 'boxvirt gc --yes' to remove them");
        }
        return Ok(Exit::Ok);
    }
    let removed = leftovers::remove(&conn, &found)?;
    if ctx.out.is_json() {
        ctx.out.json(&serde_json::json!({ "removed": found }))?;
    } else if removed.is_empty() {
        ctx.out.note("nothing to remove");
    } else {
        ctx.out.note(format!("removed {}", removed.join(", ")));
    }
    Ok(Exit::Ok)
}
