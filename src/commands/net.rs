//! `boxvirt net ensure|list|show|delete`.

use serde::Serialize;
use tabled::Tabled;

use crate::cli::NetCommand;
use crate::confirm::confirm;
use crate::context::Ctx;
use crate::error::{Exit, Failure, Result};
use crate::libvirt::{Libvirt, NetworkChange};
use crate::names;
use crate::template::Kind;
use crate::vm::slots;

#[derive(Tabled)]
struct Row {
    #[tabled(rename = "NAME")]
    name: String,
    #[tabled(rename = "ACTIVE")]
    active: &'static str,
    #[tabled(rename = "AUTOSTART")]
    autostart: &'static str,
    #[tabled(rename = "PERSISTENT")]
    persistent: &'static str,
    #[tabled(rename = "BRIDGE")]
    bridge: String,
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

#[derive(Serialize)]
struct Ensured<'a> {
    name: &'a str,
    changes: &'a [NetworkChange],
    /// The size of the network's block of address slots, if it has one.
    slots: Option<u32>,
}

/// The network's XML from its template (`network/NAME.xml`).
fn definition(ctx: &Ctx, conn: &Libvirt, name: &str) -> Result<String> {
    let template = ctx.catalog.get(Kind::Network, name).map_err(|e| {
        if e.exit == Exit::NotFound {
            Failure::not_found(format!(
                "network '{name}' does not exist at {} and there is no network template '{name}' to define it from; add network/{name}.xml to --template-dir",
                conn.uri()
            ))
        } else {
            e
        }
    })?;
    template.render(&[("name".to_string(), name.to_string())])
}

/// An existing network without a block (made by an earlier boxvirt, or not
/// by boxvirt) gets one when no VM uses it: redefined and restarted. With
/// VMs on it, it keeps its live DHCP updates and the user is told what to
/// do. Returns the block's size, if the network has one now.
fn give_slots(
    ctx: &Ctx,
    conn: &Libvirt,
    name: &str,
    want: Option<u32>,
    changes: &mut Vec<NetworkChange>,
) -> Result<Option<u32>> {
    let xml = conn.network_config_xml(name)?;
    if let Some(block) = slots::block(&xml) {
        if want.is_some_and(|n| n != block.size) {
            ctx.out.warn(format!(
                "network '{name}' already has a block of {} address slots; --slots applies only when the block is made (delete the network and ensure it again to resize)",
                block.size
            ));
        }
        return Ok(Some(block.size));
    }
    let Some((with, size)) = slots::with_block(name, &xml, want)? else {
        return Ok(None);
    };
    let users = conn.network_users(name)?;
    if !users.is_empty() {
        ctx.out.warn(format!(
            "network '{name}' has no block of address slots (made by an earlier boxvirt, or not by boxvirt) and is used by {}; so its VMs keep getting addresses by live DHCP updates (slower). To give it slots, delete those VMs and run 'boxvirt net ensure {name}' again",
            users.join(", ")
        ));
        return Ok(None);
    }
    conn.redefine_network(name, &with)?;
    changes.insert(0, NetworkChange::SlotsAdded);
    Ok(Some(size))
}

/// Makes network `name` exist (from its template, with boxvirt's block of
/// address slots), run and autostart; gives a slotless one its block when
/// no VM uses it. Returns what changed and the block's size.
pub fn ensure(
    ctx: &Ctx,
    conn: &Libvirt,
    name: &str,
    slots: Option<u32>,
) -> Result<(Vec<NetworkChange>, Option<u32>)> {
    let mut size = None;
    let mut changes = conn.ensure_network(name, || {
        let xml = definition(ctx, conn, name)?;
        Ok(match slots::with_block(name, &xml, slots)? {
            Some((with, n)) => {
                size = Some(n);
                with
            }
            None => xml,
        })
    })?;
    if !changes.contains(&NetworkChange::Defined) {
        size = give_slots(ctx, conn, name, slots, &mut changes)?;
    }
    Ok((changes, size))
}

pub fn run(ctx: &Ctx, cmd: NetCommand) -> Result<Exit> {
    match cmd {
        NetCommand::Ensure { name, slots } => {
            names::validate("network", &name)?;
            let conn = ctx.libvirt()?;
            let (changes, size) = ensure(ctx, &conn, &name, slots)?;
            if ctx.out.is_json() {
                ctx.out.json(&Ensured {
                    name: &name,
                    changes: &changes,
                    slots: size,
                })?;
            } else if changes.is_empty() {
                crate::outln!("network '{name}' is already defined, active and set to autostart; nothing changed");
            } else {
                let said: Vec<&str> = changes.iter().map(|c| c.describe()).collect();
                let block = size
                    .map(|n| format!(" ({n} address slots)"))
                    .unwrap_or_default();
                crate::outln!("network '{name}': {}{block}", said.join(", "));
            }
        }
        NetCommand::List => {
            let nets = ctx.libvirt()?.list_networks()?;
            let rows: Vec<Row> = nets
                .iter()
                .map(|n| Row {
                    name: n.name.clone(),
                    active: yes_no(n.active),
                    autostart: yes_no(n.autostart),
                    persistent: yes_no(n.persistent),
                    bridge: n.bridge.clone().unwrap_or_default(),
                })
                .collect();
            ctx.out.list("networks", &rows, &nets)?;
        }
        NetCommand::Show { name } => {
            names::validate("network", &name)?;
            crate::out!("{}", ctx.libvirt()?.network_xml(&name)?);
        }
        NetCommand::Delete { name, force } => {
            names::validate("network", &name)?;
            let conn = ctx.libvirt()?;
            if conn.network_summary(&name)?.is_none() {
                return Err(Failure::not_found(format!(
                    "network '{name}' not found at {}",
                    conn.uri()
                )));
            }
            // A network deleted under its VMs leaves them with a dead
            // interface and their DHCP reservations gone.
            let users = conn.network_users(&name)?;
            if !users.is_empty() && !force {
                return Err(Failure::conflict(format!(
                    "network '{name}' is used by {}; delete those VMs first, or pass --force",
                    users.join(", ")
                )));
            }
            confirm(ctx.settings.yes, &format!("delete network '{name}'"))?;
            conn.delete_network(&name)?;
            ctx.out.note(format!("deleted network '{name}'"));
        }
    }
    Ok(Exit::Ok)
}
