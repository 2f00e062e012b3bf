//! `vm create`, the one-VM case of the machinery `env apply` uses too:
//! check the request (check.rs), clear what a killed earlier create of the
//! name left (leftovers.rs), plan with reads only (plan.rs, seed.rs),
//! fetch the base image, then apply the plan step by step, each step with
//! its rollback (apply.rs). NICs: vm/nics.rs. The shape follows virter's:
//! base image -> overlay -> seed -> reserved IP.

use super::start_gate::Phase;
use super::{apply, check, leftovers, plan, seed};
use crate::error::Result;
use crate::image;
use crate::libvirt::Libvirt;
use crate::output::Output;
use crate::template::Catalog;

pub use super::request::{Created, InstanceKey, OnStep, Request};
pub use super::seed::eject as eject_seed;
pub(crate) use super::steps::after_step;
pub use super::steps::STEPS;

/// The pool boxvirt keeps VM volumes in (made from `xml-templates/pool/default.xml`).
pub const POOL: &str = "default";
/// The login user boxvirt's seed creates in every guest.
pub const LOGIN_USER: &str = "boxvirt";

pub fn create(conn: &Libvirt, catalog: &Catalog, out: &Output, req: &Request) -> Result<Created> {
    // Held until the start (apply lets it go): see start_gate.rs.
    let preparing = req.gate.as_ref().map(|g| g.enter(Phase::Prepare));
    let checked = check::check(conn, catalog, req)?;
    // A killed earlier create of this name may have left an unfinished
    // domain, volumes or a reservation: they are ours, so clear them.
    leftovers::clear_for_create(conn, out, &checked.name, checked.unfinished)?;
    let seed_wanted = checked.seed_wanted;
    let mut plan = plan::build(conn, catalog, out, req, checked)?;
    if seed_wanted {
        plan.seed = Some(seed::build(&plan, req)?);
    }
    // The base image is shared and cached: fetched before, never rolled back.
    let base = match &plan.image_name {
        Some(img) => Some(image::ensure_base_volume(
            conn,
            catalog,
            out,
            &req.process_env,
            img,
            &image::PullOptions::default(),
        )?),
        None => None,
    };
    apply::apply(conn, catalog, out, req, plan, base, preparing)
}
