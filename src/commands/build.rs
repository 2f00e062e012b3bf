//! `boxvirt build` / `rebuild`: the nested-host image from the docker/
//! assets embedded in this binary.

use crate::cli::BuildArgs;
use crate::context::Ctx;
use crate::error::{Exit, Result};
use crate::nested::{build_context, Engine};

pub fn run(ctx: &Ctx, a: &BuildArgs, no_cache: bool) -> Result<Exit> {
    let engine = Engine::connect()?;
    let base = a.base.unwrap_or_default();
    let id = engine.build_image(base, no_cache, &ctx.out)?;
    if ctx.out.is_json() {
        ctx.out
            .json(&serde_json::json!({ "image": build_context::image_tag(base), "id": id }))?;
    } else if !ctx.out.quiet {
        crate::outln!("{} {id}", build_context::image_tag(base));
    }
    Ok(Exit::Ok)
}
