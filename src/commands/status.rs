//! `boxvirt status`: container, supervised programs, sshd, ports, socket and
//! key permissions. Exit 1 when anything is wrong.

use crate::context::Ctx;
use crate::error::{Exit, Result};
use crate::libvirt::Libvirt;
use crate::nested::{status, Engine};

pub fn run(ctx: &Ctx) -> Result<Exit> {
    let engine = Engine::connect()?;
    let s = &ctx.settings;
    let report = status::gather(&engine, s, || {
        // Always the instance socket: status is about the nested host.
        crate::nested::socket_link::ensure(s)?;
        let lv = Libvirt::open(&s.socket_uri(), &ctx.connect_hint())?;
        Ok(lv.versions()?.0)
    })?;
    if ctx.out.is_json() {
        ctx.out.json(&report)?;
    } else {
        ctx.out.rows(&status::rows(&report), &report)?;
        for p in &report.problems {
            eprintln!("problem: {p}");
        }
    }
    Ok(if report.ok { Exit::Ok } else { Exit::Failed })
}
