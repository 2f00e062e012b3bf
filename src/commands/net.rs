//! `boxvirt net ensure|list|show|delete`.

use serde::Serialize;
use tabled::Tabled;

use crate::cli::NetCommand;
use crate::confirm::confirm;
use crate::context::Ctx;
use crate::error::{Exit, Failure, Result};
use crate::libvirt::NetworkChange;
use crate::names;
use crate::template::Kind;

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
}

pub fn run(ctx: &Ctx, cmd: NetCommand) -> Result<Exit> {
    match cmd {
        NetCommand::Ensure { name } => {
            names::validate("network", &name)?;
            let conn = ctx.libvirt()?;
            let changes = conn.ensure_network(&name, || {
                let template = ctx.catalog.get(Kind::Network, &name).map_err(|e| {
                    if e.exit == Exit::NotFound {
                        Failure::not_found(format!(
                            "network '{name}' does not exist at {} and there is no network template '{name}' to define it from; add network/{name}.xml to --template-dir",
                            conn.uri()
                        ))
                    } else {
                        e
                    }
                })?;
                template.render(&[("name".to_string(), name.clone())])
            })?;
            if ctx.out.is_json() {
                ctx.out.json(&Ensured {
                    name: &name,
                    changes: &changes,
                })?;
            } else if changes.is_empty() {
                crate::outln!("network '{name}' is already defined, active and set to autostart; nothing changed");
            } else {
                let said: Vec<&str> = changes.iter().map(|c| c.describe()).collect();
                crate::outln!("network '{name}': {}", said.join(", "));
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
