use crate::{cli::NetCommand, context::Ctx, error::{Exit, Failure, Result}};
pub fn run(_ctx: &Ctx, _c: NetCommand) -> Result<Exit> { Err(Failure::failed("not implemented yet")) }
