use crate::{cli::BuildArgs, context::Ctx, error::{Exit, Failure, Result}};
pub fn run(_ctx: &Ctx, _a: &BuildArgs, _no_cache: bool) -> Result<Exit> { Err(Failure::failed("not implemented yet")) }
