use crate::{cli::VmCommand, context::Ctx, error::{Exit, Failure, Result}};
pub fn run(_ctx: &Ctx, _c: VmCommand) -> Result<Exit> { Err(Failure::failed("not implemented yet")) }
