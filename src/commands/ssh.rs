use crate::{cli::SshArgs, context::Ctx, error::{Exit, Failure, Result}};
pub fn run(_ctx: &Ctx, _a: &SshArgs) -> Result<Exit> { Err(Failure::failed("not implemented yet")) }
