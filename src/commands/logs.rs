use crate::{cli::LogsArgs, context::Ctx, error::{Exit, Failure, Result}};
pub fn run(_ctx: &Ctx, _a: &LogsArgs) -> Result<Exit> { Err(Failure::failed("not implemented yet")) }
