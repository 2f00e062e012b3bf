//! `boxvirt template list|show`.

use serde::Serialize;
use tabled::Tabled;

use crate::cli::{TemplateCommand, TemplateKindArg};
use crate::context::Ctx;
use crate::error::{Exit, Result};
use crate::template::{parse_sets, Kind};

#[derive(Serialize, Tabled)]
struct Row {
    #[tabled(rename = "KIND")]
    kind: &'static str,
    #[tabled(rename = "NAME")]
    name: String,
    #[tabled(rename = "SOURCE")]
    source: String,
    #[tabled(rename = "PARAMETERS")]
    parameters: String,
}

pub fn run(ctx: &Ctx, cmd: TemplateCommand) -> Result<Exit> {
    match cmd {
        TemplateCommand::List => {
            let rows: Vec<Row> = ctx
                .catalog
                .list()?
                .into_iter()
                .map(|t| Row {
                    kind: t.kind.dir(),
                    name: t.name.clone(),
                    source: t.origin.describe(),
                    parameters: t.parameters().join(","),
                })
                .collect();
            ctx.out.list("templates", &rows, &rows)?;
        }
        TemplateCommand::Show { name, set, kind } => {
            let kind = kind.map(|k| match k {
                TemplateKindArg::Domain => Kind::Domain,
                TemplateKindArg::Network => Kind::Network,
                TemplateKindArg::Pool => Kind::Pool,
            });
            let template = ctx.catalog.find_any(&name, kind)?;
            let xml = template.render(&parse_sets(&set)?)?;
            crate::out!("{xml}");
        }
    }
    Ok(Exit::Ok)
}
