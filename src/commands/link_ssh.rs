use crate::{context::Ctx, error::{Exit, Failure, Result}};
pub fn link(_ctx: &Ctx) -> Result<Exit> { Err(Failure::failed("not implemented yet")) }
pub fn unlink(_ctx: &Ctx) -> Result<Exit> { Err(Failure::failed("not implemented yet")) }
