use crate::{context::Ctx, error::{Exit, Failure, Result}};
pub fn run(_ctx: &Ctx) -> Result<Exit> { Err(Failure::failed("not implemented yet")) }
