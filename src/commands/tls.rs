//! `boxvirt tls rotate`, and what `up --tls` adds to `up`: its flags, the
//! PKI and the TLS port before the container is made, and the wait until
//! libvirt answers over TLS with the instance's client certificate.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cli::{TlsCommand, UpArgs};
use crate::context::Ctx;
use crate::error::{Exit, Failure, Result};
use crate::libvirt::Libvirt;
use crate::nested::tls::{self, Pki};
use crate::nested::{lock, ports, ContainerInfo, Engine};
use crate::progress::Spinner;
use crate::settings::Settings;

pub fn run(ctx: &Ctx, c: TlsCommand) -> Result<Exit> {
    match c {
        TlsCommand::Rotate => rotate(ctx),
    }
}

/// `up`'s and `restart`'s TLS flags folded into the settings, so
/// `tls::wanted` and the container spec see them. Bad values are usage
/// errors before anything starts.
pub fn with_up_flags(ctx: &Ctx, a: &UpArgs) -> Result<Ctx> {
    let mut s = ctx.settings.clone();
    s.tls |= a.tls;
    s.hardened |= a.hardened;
    if !tls::wanted(&s) && (!a.tls_san.is_empty() || a.listen.is_some()) {
        return Err(Failure::usage(
            "--tls-san and --listen go with --tls; add --tls (or set BOXVIRT_TLS=1)",
        ));
    }
    for san in &a.tls_san {
        tls::check_san(san)?;
    }
    s.tls_sans = a.tls_san.clone();
    s.listen = a.listen;
    Ok(Ctx::new(s))
}

/// Before `up` decides anything: the TLS port chosen (the one the running
/// container has, or a free one), the PKI checked and made. True when
/// certificates were written, so libvirtd must load them.
pub fn prepare_up(
    ctx: &Ctx,
    s: &mut Settings,
    existing: Option<&ContainerInfo>,
    auto_ports: bool,
) -> Result<bool> {
    if !tls::wanted(s) {
        return Ok(false);
    }
    let pki = Pki::of(s);
    pki.check(&tls::owners(s))?;
    choose_port(ctx, s, existing, auto_ports)?;
    if let Some(addr) = s.listen.filter(|a| !a.is_loopback()) {
        ctx.out.warn(format!(
            "libvirt's TLS port is published on {addr}:{} and reachable from other machines; only clients holding a certificate from {} get in",
            s.libvirt_tls_port,
            s.pki_dir().display()
        ));
    }
    let changed = pki.ensure(s)?;
    if let Some(days) = pki.client_ending() {
        ctx.out.warn(format!(
            "the TLS client certificate {} expires in {days} days; run 'boxvirt tls rotate'",
            pki.client_cert().display()
        ));
    }
    if changed {
        ctx.out.note(format!(
            "TLS certificates written to {} (client DN {})",
            s.pki_dir().display(),
            pki.client_dn().unwrap_or_default()
        ));
    }
    Ok(changed)
}

/// The configured TLS port, or the one our running container already
/// publishes, or (with --auto-ports) a free one.
fn choose_port(
    ctx: &Ctx,
    s: &mut Settings,
    existing: Option<&ContainerInfo>,
    auto_ports: bool,
) -> Result<()> {
    let port = s.libvirt_tls_port;
    let ours = existing
        .filter(|c| c.running && c.tls())
        .and_then(|c| c.tls_port);
    if let Some(p) = ours.filter(|p| *p == port || auto_ports) {
        s.libvirt_tls_port = p;
        return Ok(());
    }
    if ports::is_free(port) {
        return Ok(());
    }
    let who = ports::holder(port).describe();
    if !auto_ports {
        return Err(Failure::conflict(format!(
            "TLS port {port} on 127.0.0.1 is taken by {who}; pass --libvirt-tls-port N (or set BOXMAN_LIBVIRT_TLS_PORT), or --auto-ports to pick a free port"
        )));
    }
    let free = ports::find_free(port).ok_or_else(|| {
        Failure::conflict(format!(
            "TLS port {port} is taken by {who} and no free port was found"
        ))
    })?;
    ctx.out.note(format!(
        "TLS port {port} is taken by {who}; using port {free} (--auto-ports)"
    ));
    s.libvirt_tls_port = free;
    Ok(())
}

/// After libvirt answers on the socket: it answers over TLS too, with the
/// instance's client certificate, so `up --tls` never reports a listener
/// that does not work.
pub fn wait_answer(progress: &Spinner, s: &Settings, deadline: Instant) -> Result<()> {
    if !tls::wanted(s) {
        return Ok(());
    }
    let uri = s.tls_uri();
    progress.stage(format!(
        "waiting for libvirt over TLS on 127.0.0.1:{}",
        s.libvirt_tls_port
    ));
    loop {
        match Libvirt::open(&uri, "") {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(Failure::timeout(format!(
                    "libvirt answers on the socket but not over TLS: {}; 'boxvirt logs' shows why (lines from libvirt-tls and libvirtd), then 'boxvirt restart --tls'",
                    e.message.trim_end_matches("; ")
                )))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[derive(Serialize)]
struct Rotated {
    instance: String,
    pki_dir: String,
    client_dn: String,
    /// libvirtd in the running container loaded the new certificates.
    reloaded: bool,
    tls_uri: Option<String>,
}

/// New server and client certificates, the CA kept; the running
/// container's libvirtd restarts with them and must answer with the new
/// client certificate.
fn rotate(ctx: &Ctx) -> Result<Exit> {
    let s = &ctx.settings;
    let pki = Pki::of(s);
    pki.check(&tls::owners(s))?;
    let ca = pki.ca(s)?;
    let engine = Engine::connect()?;
    let _lock = lock::acquire(s, &ctx.out)?;
    let name = s.container_name();
    let running = engine.container(&name)?.filter(|c| c.running && c.tls());
    let client_dn = pki.rotate(s, &ca)?;
    let mut tls_uri = None;
    if let Some(c) = &running {
        tls::reload(&engine, &name)?;
        let live = Settings {
            libvirt_tls_port: c.tls_port.unwrap_or(s.libvirt_tls_port),
            tls: true,
            ..s.clone()
        };
        let progress = Spinner::new(&ctx.out);
        let deadline = Instant::now() + Duration::from_secs(60);
        wait_answer(&progress, &live, deadline).inspect_err(|_| progress.finish())?;
        progress.finish();
        tls_uri = Some(live.tls_uri());
    }
    let r = Rotated {
        instance: s.instance.clone(),
        pki_dir: s.pki_dir().display().to_string(),
        client_dn,
        reloaded: running.is_some(),
        tls_uri,
    };
    if ctx.out.is_json() {
        return ctx.out.json(&r).map(|_| Exit::Ok);
    }
    if !ctx.out.quiet {
        crate::outln!(
            "new TLS server and client certificates for instance '{}' in {} (CA kept); client DN {}",
            r.instance,
            r.pki_dir,
            r.client_dn
        );
        match &r.tls_uri {
            Some(uri) => crate::outln!("libvirtd restarted with them and answers at {uri}"),
            None => crate::outln!(
                "instance '{}' does not serve TLS now; 'boxvirt up --tls' starts it with them",
                r.instance
            ),
        }
    }
    Ok(Exit::Ok)
}
