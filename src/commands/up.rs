use crate::{cli::UpArgs, context::Ctx, error::{Exit, Failure, Result}};
pub fn run(_ctx: &Ctx, _a: &UpArgs) -> Result<Exit> { Err(Failure::failed("not implemented yet")) }
pub fn restart(_ctx: &Ctx, _a: &UpArgs) -> Result<Exit> { Err(Failure::failed("not implemented yet")) }
