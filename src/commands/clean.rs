use crate::{cli::CleanArgs, context::Ctx, error::{Exit, Failure, Result}};
pub fn run(_ctx: &Ctx, _a: &CleanArgs) -> Result<Exit> { Err(Failure::failed("not implemented yet")) }
