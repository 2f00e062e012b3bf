use crate::{cli::TemplateCommand, context::Ctx, error::{Exit, Failure, Result}};
pub fn run(_ctx: &Ctx, _c: TemplateCommand) -> Result<Exit> { Err(Failure::failed("not implemented yet")) }
