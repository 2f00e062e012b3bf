//! Carrying out a [`Plan`]: the objects made in order (pool, disk volume,
//! seed volume, live reservations, domain (which claims the slots), start,
//! metadata (last: it marks the VM finished)), each step with its
//! rollback, undone newest first if a later step fails. After each step
//! the hook of steps.rs runs (Ctrl-C, injected failures).

use super::address_steps::{nic_out, reservation, reserve_live, settle_slots};
use super::create::POOL;
use super::metadata::{VmMetadata, Volume};
use super::plan::Plan;
use super::request::{Created, Request};
use super::rollback::Rollback;
use super::seed;
use super::start_gate::{Pass, Phase};
use super::steps::after_step;
use crate::error::{Failure, Result};
use crate::image::BaseVolume;
use crate::interrupt;
use crate::libvirt::Libvirt;
use crate::output::Output;
use crate::template::{Catalog, Kind};

/// One run of the steps: what it needs, what it made.
struct Run<'a> {
    conn: &'a Libvirt,
    out: &'a Output,
    req: &'a Request,
    rollback: Rollback<'a>,
    meta: VmMetadata,
    /// The gate's prepare pass, given up right before the start.
    preparing: Option<Pass<'a>>,
}

pub fn apply(
    conn: &Libvirt,
    catalog: &Catalog,
    out: &Output,
    req: &Request,
    mut plan: Plan,
    base: Option<BaseVolume>,
    preparing: Option<Pass<'_>>,
) -> Result<Created> {
    // Ctrl-C from here on rolls back instead of leaving objects behind.
    let _signals = interrupt::Deferred::new();
    let mut run = Run {
        conn,
        out,
        req,
        rollback: Rollback::new(),
        meta: VmMetadata {
            template: plan.template.name.clone(),
            env: req.env_mark.clone(),
            ..Default::default()
        },
        preparing,
    };
    match run.steps(catalog, &mut plan, base.as_ref()) {
        Ok(()) => {
            run.rollback.commit();
            Ok(created(plan, base, run.meta, req.start))
        }
        Err(e) => Err(run
            .rollback
            .fail(e.context(format!("creating vm '{}'", plan.name)))),
    }
}

impl<'a> Run<'a> {
    fn steps(
        &mut self,
        catalog: &Catalog,
        plan: &mut Plan,
        base: Option<&BaseVolume>,
    ) -> Result<()> {
        let (disk_path, seed_path) = self.volumes(catalog, plan, base)?;
        reserve_live(self.conn, &plan.name, &plan.nics, &mut self.rollback)?;
        // A slot is claimed by the define; the step is where an address is settled.
        if plan
            .nics
            .iter()
            .any(|n| n.slot.is_some() || n.live_ip.is_some())
        {
            after_step(self.req, "reservation")?;
        }
        plan.place(disk_path, seed_path)?;
        self.define(plan)?;
        // The define claimed the slots; another create may have claimed one too.
        settle_slots(
            self.conn,
            self.out,
            &plan.name,
            &mut plan.nics,
            &mut plan.seed,
        )?;
        self.meta.reservations = plan.nics.iter().filter_map(reservation).collect();
        after_step(self.req, "define")?;
        self.preparing.take();
        if self.req.start {
            let starting = self.req.gate.as_ref().map(|g| g.enter(Phase::Start));
            self.conn.start_domain(&plan.name)?;
            drop(starting);
            after_step(self.req, "start")?;
        }
        // Last: the final metadata marks the create finished (until then a
        // re-run treats the domain as an interrupted create's).
        self.conn
            .set_domain_metadata(&plan.name, &self.meta.to_xml())?;
        after_step(self.req, "metadata")
    }

    /// The pool, the disk and the seed volume; returns the volumes' paths.
    fn volumes(
        &mut self,
        catalog: &Catalog,
        plan: &Plan,
        base: Option<&BaseVolume>,
    ) -> Result<(Option<String>, Option<String>)> {
        if plan.need.disk || plan.seed.is_some() {
            self.pool(catalog)?;
        }
        let mut disk_path = None;
        if plan.need.disk {
            disk_path = Some(self.disk(plan, base)?);
            after_step(self.req, "volume")?;
        }
        let mut seed_path = None;
        if let Some((bytes, _)) = &plan.seed {
            seed_path = Some(self.seed(plan, bytes)?);
            after_step(self.req, "seed")?;
        }
        Ok((disk_path, seed_path))
    }

    /// The pool exists and runs (made from its template when missing).
    fn pool(&mut self, catalog: &Catalog) -> Result<()> {
        let changes = self
            .conn
            .ensure_pool(POOL, || catalog.get(Kind::Pool, POOL)?.render(&[]))?;
        if !changes.is_empty() {
            let said: Vec<&str> = changes.iter().map(|c| c.describe()).collect();
            self.out
                .note(format!("storage pool '{POOL}': {}", said.join(", ")));
        }
        Ok(())
    }

    /// The disk volume `NAME.qcow2`: an overlay on the base image, a full
    /// copy of it, or empty; returns its path.
    fn disk(&mut self, plan: &Plan, base: Option<&BaseVolume>) -> Result<String> {
        let conn = self.conn;
        let vol = format!("{}.qcow2", plan.name);
        let capacity = (plan.disk_gib * 1024 * 1024 * 1024).max(base.map_or(0, |b| b.virtual_size));
        let path = match base {
            Some(b) if self.req.full_clone => {
                if b.pool != POOL {
                    return Err(Failure::failed(format!(
                        "--full-clone needs the base volume in pool '{POOL}'"
                    )));
                }
                conn.clone_volume(POOL, &vol, &b.name, capacity)?
            }
            Some(b) => conn.create_overlay_volume(POOL, &vol, &b.path, &b.format, capacity)?,
            None => conn.create_volume(POOL, &vol, capacity, "qcow2")?,
        };
        self.made_volume(vol, "disk");
        Ok(path)
    }

    /// The seed volume, uploaded from the plan's bytes; returns its path.
    fn seed(&mut self, plan: &Plan, bytes: &[u8]) -> Result<String> {
        let path = seed::upload(self.conn, &plan.name, bytes)?;
        self.made_volume(seed::volume(&plan.name), "seed");
        if let Some((_, spec)) = &plan.seed {
            self.meta.user = Some(spec.user.clone());
            self.meta.host_key = Some(spec.host_key.public_line.clone());
        }
        Ok(path)
    }

    /// A volume this run made: undone on failure, kept in the metadata.
    fn made_volume(&mut self, vol: String, role: &str) {
        let conn = self.conn;
        let undo = vol.clone();
        let what = match role {
            "seed" => format!("seed volume '{vol}'"),
            _ => format!("volume '{vol}'"),
        };
        self.rollback
            .push(what, move || conn.delete_volume(POOL, &undo).map(|_| ()));
        self.meta.volumes.push(Volume {
            pool: POOL.to_string(),
            name: vol,
            role: role.into(),
        });
    }

    /// The domain, defined from the plan's XML.
    fn define(&mut self, plan: &Plan) -> Result<()> {
        let conn = self.conn;
        conn.define_domain(&plan.xml)?;
        let name = plan.name.clone();
        self.rollback.push(format!("vm '{name}'"), move || {
            conn.destroy_domain(&name)?;
            conn.undefine_domain(&name)
        });
        Ok(())
    }
}

/// What `vm create` answers once every step is done.
fn created(plan: Plan, base: Option<BaseVolume>, meta: VmMetadata, started: bool) -> Created {
    let nic_outs: Vec<_> = plan.nics.iter().map(nic_out).collect();
    Created {
        name: plan.name,
        template: plan.template.name.clone(),
        domain_type: plan.domain_type,
        mac: nic_outs.first().map(|n| n.mac.clone()).or(plan.lone_mac),
        network: nic_outs.first().map(|n| n.network.clone()),
        ip: nic_outs.first().and_then(|n| n.ip.clone()),
        nics: nic_outs,
        volumes: meta.volumes.iter().map(|v| v.name.clone()).collect(),
        base_image: base.map(|b| b.name),
        user: meta.user,
        started,
    }
}
