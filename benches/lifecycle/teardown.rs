//! Delete and doctor rows. Delete: a running tiny guest removed by
//! `boxvirt vm delete --yes` (made by the default `vm create --start`,
//! untimed) against the floor for the same job, a minimal program that
//! opens the connection, destroys and undefines (`lifecycle floor-delete`)
//! a running domain the bench defined and started. Doctor: `boxvirt doctor`
//! against the same daemon's local socket.

use virt::connect::Connect;

use crate::measure::{self, Daemon, Sample};
use crate::{check_stop, create_command, tiny_xml, Config, Contender, Made, PREFIX};

pub struct Teardown {
    pub boxvirt: Vec<Sample>,
    pub floor: Vec<Sample>,
    pub doctor: Vec<Sample>,
}

/// A running VM made by the default boxvirt create, untimed.
fn boxvirt_vm(cfg: &Config, made: &Made, name: &str) -> Result<(), String> {
    let name = made.track(name, true);
    let mut cmd = create_command(cfg, Contender::BoxvirtSeeded, &name)?;
    measure::run(&mut cmd, &cfg.outputs(&name), None).map(|_| ())
}

/// A running domain from the floor's XML, untimed.
fn floor_vm(conn: &Connect, cfg: &Config, made: &Made, name: &str) -> Result<(), String> {
    let name = made.track(name, false);
    let dom = conn
        .define_domain_xml(&tiny_xml(cfg, &name)?)
        .map_err(|e| format!("defining {name}: {e}"))?;
    dom.create().map_err(|e| format!("starting {name}: {e}"))?;
    Ok(())
}

fn gone(conn: &Connect, name: &str) -> Result<(), String> {
    match conn.lookup_domain_by_name(name) {
        Ok(_) => Err(format!("'{name}' is still defined after its delete")),
        Err(_) => Ok(()),
    }
}

pub fn bench(
    conn: &Connect,
    cfg: &Config,
    made: &Made,
    daemon: Option<&Daemon>,
) -> Result<Teardown, String> {
    let mut t = Teardown {
        boxvirt: Vec::new(),
        floor: Vec::new(),
        doctor: Vec::new(),
    };
    for round in 0..=cfg.iterations {
        check_stop()?;
        let warm = round == 0;
        eprint!("lifecycle: delete round {round}/{}:", cfg.iterations);
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let name = format!(
                "{PREFIX}{}-del-{round}",
                if which == 0 { "bx" } else { "fl" }
            );
            let mut cmd = if which == 0 {
                boxvirt_vm(cfg, made, &name)?;
                let mut c = cfg.boxvirt_cmd();
                c.args(["vm", "delete", &name, "--yes"]);
                c
            } else {
                floor_vm(conn, cfg, made, &name)?;
                let mut c =
                    std::process::Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
                c.args(["floor-delete", &cfg.uri, &name]);
                c
            };
            // No libvirtd CPU here: the per-VM threads that did the work
            // end with the VM, and their CPU time leaves /proc with them.
            let s = measure::run(
                &mut cmd,
                &cfg.outputs(&format!("{name}-timed-delete")),
                None,
            )?;
            gone(conn, &name)?;
            made.remove(&name);
            eprint!(
                " {} {:.0} ms",
                if which == 0 { "bx" } else { "floor" },
                measure::ms(s.wall)
            );
            if !warm {
                if which == 0 {
                    t.boxvirt.push(s)
                } else {
                    t.floor.push(s)
                }
            }
        }
        eprintln!();
    }
    eprint!("lifecycle: doctor:");
    for round in 0..=cfg.iterations.min(7) {
        check_stop()?;
        let mut cmd = cfg.boxvirt_cmd();
        cmd.args(["doctor"]);
        // doctor exits 1 when a check fails; the time is what counts here.
        let s = measure::run_any(&mut cmd, &cfg.outputs("doctor"), daemon)?;
        eprint!(" {:.0} ms", measure::ms(s.wall));
        if round > 0 {
            t.doctor.push(s);
        }
    }
    eprintln!();
    Ok(t)
}
