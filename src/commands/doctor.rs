//! `boxvirt doctor`: print the checklist; exit 0 only when nothing fails.

use tabled::Tabled;

use crate::context::Ctx;
use crate::doctor;
use crate::error::{Exit, Result};

#[derive(Tabled)]
struct Row {
    #[tabled(rename = "CHECK")]
    id: &'static str,
    #[tabled(rename = "STATUS")]
    status: &'static str,
    #[tabled(rename = "DETAIL")]
    detail: String,
    #[tabled(rename = "FIX")]
    fix: String,
}

pub fn run(ctx: &Ctx) -> Result<Exit> {
    let report = doctor::report(ctx);
    if ctx.out.is_json() {
        ctx.out.json(&report)?;
    } else {
        crate::outln!("libvirt URI: {}", report.uri);
        let rows: Vec<Row> = report
            .checks
            .iter()
            .map(|c| Row {
                id: c.id,
                status: c.status.as_str(),
                detail: c.detail.clone(),
                fix: c.fix.clone(),
            })
            .collect();
        ctx.out.rows(&rows, &report)?;
        let fails = report
            .checks
            .iter()
            .filter(|c| c.status == doctor::Status::Fail)
            .count();
        crate::outln!(
            "{}",
            if fails == 0 {
                "doctor: no check failed".to_string()
            } else {
                format!("doctor: {fails} check(s) failed")
            }
        );
    }
    Ok(if report.ok { Exit::Ok } else { Exit::Failed })
}
