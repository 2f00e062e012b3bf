//! `boxvirt up` (and `restart`): build the image when needed, create and
//! start the instance's container, wait until libvirt answers through the
//! bind-mounted socket and sshd answers, then write the ssh files.
//!
//! Steps, top to bottom: data dir -> Docker -> image state -> already up? ->
//! SSH port -> build -> (re)create + start -> wait -> ssh files -> summary.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cli::UpArgs;
use crate::context::Ctx;
use crate::error::{Exit, Failure, Result};
use crate::libvirt::Libvirt;
use crate::nested::build_context;
use crate::nested::container::{check_data_dir, create_host_dirs};
use crate::nested::hardening::{self, Profile};
use crate::nested::image::needs_build;
use crate::nested::{
    lock, ports, socket_link, ssh_config, ssh_keys, status, ContainerInfo, Engine, Spec,
};
use crate::settings::Settings;

pub fn run(ctx: &Ctx, a: &UpArgs) -> Result<Exit> {
    let _lock = prepare(ctx)?;
    let engine = Engine::connect()?;
    up(ctx, &engine, a)
}

/// Before anything starts: the data dir's paths can be written into an ssh
/// config, the socket is reachable (directly or through a short link), the
/// data dir is writable, and no other boxvirt works on the
/// instance (a second `up` waits here, then finds it up).
fn prepare(ctx: &Ctx) -> Result<lock::InstanceLock> {
    let s = &ctx.settings;
    // A data dir that boxman.conf cannot express is refused now, not after
    // the container is up.
    ssh_config::config_text(&s.ssh_host_alias(), s.ssh_port, &s.data_dir)?;
    socket_link::ensure(&ctx.settings)?;
    check_data_dir(&ctx.settings.data_dir)?;
    lock::acquire(&ctx.settings, &ctx.out)
}

/// `down` (when the container runs), then `up`: the same container starts
/// again unless its configuration changed.
pub fn restart(ctx: &Ctx, a: &UpArgs) -> Result<Exit> {
    let _lock = prepare(ctx)?;
    let engine = Engine::connect()?;
    let name = ctx.settings.container_name();
    if engine.container(&name)?.is_some_and(|c| c.running) {
        ctx.out.note(format!("stopping {name}"));
        engine.stop(&name)?;
    }
    up(ctx, &engine, a)
}

fn up(ctx: &Ctx, engine: &Engine, a: &UpArgs) -> Result<Exit> {
    let started = Instant::now();
    let mut settings = ctx.settings.clone();
    let mut profile = hardening::for_up(
        &settings,
        a.hardened,
        a.privileged,
        a.memory.as_deref(),
        a.cpus,
        a.pids_limit,
    )?;
    hardening::prepare_host_side(&settings, &mut profile)?;
    let name = settings.container_name();
    let base = a.base.unwrap_or_default();
    let tag = build_context::image_tag(base);
    let assets_hash = build_context::embedded_hash();
    let image = engine.image(&tag)?;
    let existing = engine.container(&name)?;
    let new_certificates =
        super::tls::prepare_up(ctx, &mut settings, existing.as_ref(), a.auto_ports)?;

    if !a.rebuild && !new_certificates && !needs_build(image.as_ref(), assets_hash) {
        if let (Some(c), Some(img)) = (&existing, &image) {
            if c.running && same_config(&settings, c, &tag, &img.id, a, &profile) {
                // Nothing to create; still finish what an interrupted or
                // timed-out `up` left (instant when everything answers).
                settings.ssh_port = c.ssh_port.unwrap_or(settings.ssh_port);
                wait_ready(ctx, engine, &settings, a.timeout)?;
                write_ssh_files(ctx, &settings, a.no_link_ssh)?;
                ctx.out
                    .note(format!("instance '{}' is already up", settings.instance));
                return Ok(Exit::Ok);
            }
            if let Some(port) = restartable(&settings, c, &tag, &img.id, a, &profile) {
                // Stopped by `down` with the same config: starting it is
                // what `docker start` costs, without a new container.
                settings.ssh_port = port;
                let spec =
                    Spec::new(&settings, &tag, &img.id, a.privileged).with_profile(profile.clone());
                prepare_host_side(&settings, &spec)?;
                ctx.out
                    .note(format!("starting {name} again (ssh on 127.0.0.1:{port})"));
                if engine.start(&name).is_ok() {
                    return finish_up(ctx, engine, &settings, a, started);
                }
                // Docker refused (e.g. a bind source was removed): make a
                // new container below instead.
            }
        }
    }

    // The port is checked before a long build; a port held by our own
    // container is freed when that container is replaced.
    let port = settings.ssh_port;
    let held_by_us = existing
        .as_ref()
        .is_some_and(|c| c.running && c.ssh_port == Some(port));
    if !held_by_us && !ports::is_free(port) {
        let who = port_holder(engine, port);
        if !a.auto_ports {
            return Err(Failure::conflict(format!(
                "port {port} on 127.0.0.1 is taken by {who}; pass --ssh-port N (or set BOXMAN_SSH_PORT), or --auto-ports to pick a free port"
            )));
        }
        let free = ports::find_free(port).ok_or_else(|| {
            Failure::conflict(format!(
                "port {port} is taken by {who} and no free port was found"
            ))
        })?;
        ctx.out.note(format!(
            "port {port} is taken by {who}; using port {free} (--auto-ports)"
        ));
        settings.ssh_port = free;
    }

    let image_id = match &image {
        Some(img) if !a.rebuild && !needs_build(Some(img), assets_hash) => img.id.clone(),
        _ => {
            if a.rebuild {
                ctx.out.note(format!("rebuilding {tag} without cache"));
            } else if image.is_none() {
                ctx.out.note(format!("image {tag} not found; building it"));
            } else {
                ctx.out.note(format!(
                    "docker/ assets changed since {tag} was built; rebuilding"
                ));
            }
            engine.build_image(base, a.rebuild, &ctx.out)?
        }
    };

    let make_spec =
        |s: &Settings| Spec::new(s, &tag, &image_id, a.privileged).with_profile(profile.clone());
    if let Some(c) = &existing {
        let was = c
            .labels
            .get(hardening::LABEL_HARDENED)
            .is_some_and(|v| v == "1");
        if let Some(note) = hardening::switch::describe(was, profile.hardened) {
            ctx.out.note(note);
        }
        let why = if c.running {
            "its configuration or image changed"
        } else {
            "it is not running"
        };
        ctx.out
            .note(format!("replacing container {name} ({why}); data is kept"));
        engine.stop_and_remove(&name)?;
    }

    create_and_start(ctx, engine, &mut settings, make_spec, a)?;
    finish_up(ctx, engine, &settings, a, started)
}

/// Tries a port lost to a concurrent start gets before `up` gives up.
const PORT_RETRIES: u32 = 5;

/// Creates and starts the container. Under --auto-ports, a port that
/// another `up` took between our check and the start (two instances coming
/// up at once pick the same free port) is replaced by the next free one.
fn create_and_start(
    ctx: &Ctx,
    engine: &Engine,
    settings: &mut Settings,
    make_spec: impl Fn(&Settings) -> Spec,
    a: &UpArgs,
) -> Result<()> {
    let mut attempt = 0;
    loop {
        let spec = make_spec(settings);
        prepare_host_side(settings, &spec)?;
        if attempt == 0 && spec.devices.iter().all(|d| d != "/dev/kvm") && !a.privileged {
            ctx.out
                .warn("no /dev/kvm on this machine: guests will run with TCG (slow) emulation");
        }
        ctx.out.note(format!(
            "starting {} (ssh on 127.0.0.1:{})",
            spec.name, settings.ssh_port
        ));
        let err = match engine.create_and_start(&spec) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        attempt += 1;
        match ports::lost_in_race(&err.message).filter(|_| a.auto_ports && attempt <= PORT_RETRIES)
        {
            Some(lost) => move_lost_port(ctx, settings, lost)?,
            None if a.privileged && err.message.contains("apply caps") => {
                return Err(Failure::new(err.exit, format!("{}; --privileged is not permitted on this machine, run 'boxvirt up' without it (the default capability list works)", err.message)));
            }
            None => return Err(err),
        }
    }
}

/// The ssh or TLS port another start took moves to the next free one.
fn move_lost_port(ctx: &Ctx, settings: &mut Settings, lost: u16) -> Result<()> {
    let free = ports::find_free(lost).ok_or_else(|| {
        Failure::conflict(format!(
            "port {lost} was taken by another start and no free port was found"
        ))
    })?;
    let port = if lost == settings.ssh_port {
        &mut settings.ssh_port
    } else if lost == settings.libvirt_tls_port {
        &mut settings.libvirt_tls_port
    } else {
        return Err(Failure::conflict(format!(
            "port {lost} on 127.0.0.1 was taken while the container started; run 'boxvirt up' again"
        )));
    };
    *port = free;
    ctx.out.note(format!(
        "port {lost} was taken by another start meanwhile; using port {free} (--auto-ports)"
    ));
    Ok(())
}

/// After the container started: wait until it answers, write the ssh files,
/// print the summary.
fn finish_up(
    ctx: &Ctx,
    engine: &Engine,
    settings: &Settings,
    a: &UpArgs,
    started: Instant,
) -> Result<Exit> {
    let (conn, versions) = wait_ready(ctx, engine, settings, a.timeout)?;
    ensure_default_network(ctx, &conn)?;
    write_ssh_files(ctx, settings, a.no_link_ssh)?;
    summary(ctx, settings, &versions, started.elapsed())?;
    Ok(Exit::Ok)
}

/// The instance's network `default`, made by boxvirt (not by the
/// container's entrypoint, see BOXVIRT_NET_DEFAULT) so that it has boxvirt's
/// block of address slots from the start: creates and deletes on it never
/// touch the network. A lookup when it exists (every `up` after the first),
/// on the connection the wait for libvirt opened.
fn ensure_default_network(ctx: &Ctx, conn: &Libvirt) -> Result<()> {
    let (changes, size) = crate::commands::net::ensure(ctx, conn, "default", None)?;
    if !changes.is_empty() {
        let said: Vec<&str> = changes.iter().map(|c| c.describe()).collect();
        let block = size
            .map(|n| format!(" ({n} address slots)"))
            .unwrap_or_default();
        ctx.out
            .detail(format!("network 'default': {}{block}", said.join(", ")));
    }
    Ok(())
}

/// The port to start a stopped container on, when it was made from what we
/// would create now and its port is free (else it is replaced).
fn restartable(
    settings: &Settings,
    c: &ContainerInfo,
    tag: &str,
    image_id: &str,
    a: &UpArgs,
    profile: &Profile,
) -> Option<u16> {
    if c.running {
        return None;
    }
    let port = c.configured_ssh_port?;
    let s = Settings {
        ssh_port: port,
        ..settings.clone()
    };
    let same = port == settings.ssh_port || a.auto_ports;
    (same && same_config(&s, c, tag, image_id, a, profile) && ports::is_free(port)).then_some(port)
}

/// Whether the running container was made from what we would create now
/// (with --auto-ports, on the port it already has).
fn same_config(
    settings: &Settings,
    c: &ContainerInfo,
    tag: &str,
    image_id: &str,
    a: &UpArgs,
    profile: &Profile,
) -> bool {
    let mut candidates = vec![settings.ssh_port];
    if let (true, Some(p)) = (a.auto_ports, c.ssh_port) {
        candidates.push(p);
    }
    candidates.into_iter().any(|port| {
        let s = Settings {
            ssh_port: port,
            ..settings.clone()
        };
        c.fingerprint()
            == Some(
                Spec::new(&s, tag, image_id, a.privileged)
                    .with_profile(profile.clone())
                    .fingerprint()
                    .as_str(),
            )
    })
}

/// "process 'sshd' (pid 12)" or, for Docker's proxy, the container.
fn port_holder(engine: &Engine, port: u16) -> String {
    let holder = ports::holder(port);
    if holder.is_docker_proxy() || holder.pid.is_none() {
        if let Ok(list) = engine.containers_with(&[("publish", port.to_string())]) {
            if let Some((name, _)) = list.into_iter().next() {
                return format!("container {name}");
            }
        }
    }
    holder.describe()
}

/// Bind-mount sources, and the client key the entrypoint authorizes.
fn prepare_host_side(settings: &Settings, spec: &Spec) -> Result<()> {
    create_host_dirs(spec, settings.host_uid, settings.host_gid)?;
    ssh_keys::hand_over(&settings.data_dir, settings.host_uid, settings.host_gid);
    ssh_keys::ensure_client_key(
        &settings.ssh_key_path(),
        &settings.ssh_host_alias(),
        settings.host_uid,
        settings.host_gid,
    )?;
    Ok(())
}

/// What the wait for libvirt saw last; a timeout says which.
enum Seen {
    SocketMissing,
    NoAnswer(String),
}

/// Waits for libvirt through the socket, then for sshd; a timeout names the
/// stage and what was seen. Returns the connection that answered and
/// (libvirt version, hypervisor version).
fn wait_ready(
    ctx: &Ctx,
    engine: &Engine,
    settings: &Settings,
    timeout: u64,
) -> Result<(Libvirt, (String, String))> {
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let name = settings.container_name();
    let progress = crate::progress::Spinner::new(&ctx.out);
    let uri = settings.socket_uri();
    let socket = settings.socket_connect_path();

    // One sshd probe beside the libvirt wait: when the instance is already
    // up, the two answers cost the time of one.
    let port = settings.ssh_port;
    let early_sshd = std::thread::spawn(move || status::ssh_banner(port).is_some());

    progress.stage(format!(
        "waiting for libvirt on {}",
        settings.socket_path().display()
    ));
    // The caller has just seen the container running (or started it).
    let mut alive = AliveCheck {
        last: Some(Instant::now()),
    };
    let (conn, versions) = loop {
        alive
            .check(engine, &name)
            .inspect_err(|_| progress.finish())?;
        let seen = if std::fs::metadata(&socket).is_ok() {
            match Libvirt::open(&uri, "").and_then(|l| l.versions().map(|v| (l, v))) {
                Ok(answered) => break answered,
                Err(e) => Seen::NoAnswer(reason_of(&e.message)),
            }
        } else {
            Seen::SocketMissing
        };
        if Instant::now() > deadline {
            progress.finish();
            return Err(libvirt_timed_out(engine, settings, timeout, seen));
        }
        std::thread::sleep(POLL);
    };
    ctx.out.detail(format!(
        "libvirt {} answers on {}",
        versions.0,
        settings.socket_path().display()
    ));

    progress.stage(format!(
        "waiting for sshd on 127.0.0.1:{}",
        settings.ssh_port
    ));
    let mut answered = early_sshd.join().unwrap_or(false);
    loop {
        let key = ssh_keys::host_public_key(&settings.ssh_dir());
        if key.is_some() && (answered || status::ssh_banner(settings.ssh_port).is_some()) {
            break;
        }
        answered = false;
        if Instant::now() > deadline {
            progress.finish();
            let what = if key.is_none() {
                "no sshd host key in the data dir yet"
            } else {
                "no SSH banner"
            };
            show_log_tail(engine, &name);
            return Err(Failure::timeout(format!(
                "timed out after {timeout} s waiting for sshd on 127.0.0.1:{} ({what}); the container's last log lines are above ('boxvirt logs' for all); 'boxvirt status' shows sshd's state, or raise --timeout",
                settings.ssh_port
            )));
        }
        alive
            .check(engine, &name)
            .inspect_err(|_| progress.finish())?;
        std::thread::sleep(POLL);
    }
    super::tls::wait_answer(&progress, settings, deadline).inspect_err(|_| progress.finish())?;
    progress.finish();
    Ok((conn, versions))
}

/// How often the wait looks at the socket and sshd. Both checks are local
/// and cheap (a missing file, a refused connect), and every poll interval
/// is paid on average half over by `up`: short.
const POLL: Duration = Duration::from_millis(25);

/// `check_alive` asks the Docker engine (an inspect); once per 500 ms is
/// enough to fail early, more would only load the engine during the wait.
#[derive(Default)]
struct AliveCheck {
    last: Option<Instant>,
}

impl AliveCheck {
    fn check(&mut self, engine: &Engine, name: &str) -> Result<()> {
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_millis(500))
        {
            return Ok(());
        }
        self.last = Some(Instant::now());
        check_alive(engine, name)
    }
}

/// Fails early when the container stopped or restart-loops during the wait,
/// with its exit code and last log lines.
fn check_alive(engine: &Engine, name: &str) -> Result<()> {
    let c = engine
        .container(name)?
        .ok_or_else(|| Failure::failed(format!("container {name} disappeared during start")))?;
    if c.running && c.state != "restarting" {
        return Ok(());
    }
    show_log_tail(engine, name);
    Err(Failure::failed(format!(
        "container exited: {name} is {} (exit code {}) during start; its last log lines are above ('boxvirt logs' for all); fix what they name, then 'boxvirt up' again",
        c.state,
        c.exit_code.unwrap_or(-1)
    )))
}

/// "socket missing" and "socket there but libvirt does not answer" are
/// different failures with different next steps.
fn libvirt_timed_out(engine: &Engine, s: &Settings, timeout: u64, seen: Seen) -> Failure {
    let name = s.container_name();
    show_log_tail(engine, &name);
    let what = match seen {
        Seen::SocketMissing => format!(
            "socket missing: {} never appeared, so libvirtd in the container did not start; the container's last log lines are above ('boxvirt logs' for all, libvirtd's errors are in /var/log/supervisor/libvirtd.stderr.log inside), then 'boxvirt restart', or raise --timeout",
            s.socket_path().display()
        ),
        Seen::NoAnswer(last) => format!(
            "socket there but libvirt does not answer ({last}); 'boxvirt restart' restarts libvirtd, 'boxvirt logs' shows why it hangs, or raise --timeout"
        ),
    };
    Failure::timeout(format!(
        "timed out after {timeout} s waiting for libvirt to answer on the socket: {what}"
    ))
}

/// "cannot reach libvirt at URI (REASON); " -> REASON (the URI is
/// percent-encoded, so its own parentheses cannot confuse this).
fn reason_of(message: &str) -> String {
    message
        .split_once(" (")
        .and_then(|(_, rest)| rest.rsplit_once(')'))
        .map(|(reason, _)| reason.to_string())
        .unwrap_or_else(|| message.to_string())
}

/// The container's last log lines on stderr, before the one-line error.
fn show_log_tail(engine: &Engine, name: &str) {
    let lines = engine.log_tail(name, 15).unwrap_or_default();
    if !lines.is_empty() {
        eprintln!("last log lines of {name}:");
    }
    for line in lines {
        eprintln!("  | {line}");
    }
}

/// known_hosts (the pinned host key), boxman.conf and the link.
fn write_ssh_files(ctx: &Ctx, settings: &Settings, no_link: bool) -> Result<()> {
    let key = ssh_keys::host_public_key(&settings.ssh_dir()).ok_or_else(|| {
        Failure::failed(format!(
            "no sshd host key in {}/host",
            settings.ssh_dir().display()
        ))
    })?;
    ssh_config::write_files(
        settings,
        settings.ssh_port,
        &ssh_keys::known_hosts_line(settings.ssh_port, &key),
    )?;
    if !no_link {
        let link = ssh_config::link(settings)?;
        ctx.out.detail(format!(
            "linked {} -> {}",
            link.display(),
            settings.ssh_config_path().display()
        ));
    }
    Ok(())
}

#[derive(Serialize)]
struct Summary {
    instance: String,
    container: String,
    ssh_port: u16,
    socket_uri: String,
    ssh_uri: String,
    ssh_config: String,
    ssh_command: String,
    virsh_command: String,
    /// With `--tls`: libvirt over TLS with the instance's client certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_uri: Option<String>,
    libvirt_version: String,
    hypervisor_version: String,
    seconds: u64,
}

fn summary(ctx: &Ctx, s: &Settings, versions: &(String, String), elapsed: Duration) -> Result<()> {
    let sum = Summary {
        instance: s.instance.clone(),
        container: s.container_name(),
        ssh_port: s.ssh_port,
        socket_uri: s.socket_uri(),
        ssh_uri: s.ssh_uri(),
        ssh_config: s.ssh_config_path().display().to_string(),
        ssh_command: s.ssh_command(),
        virsh_command: super::uri::with_auth(s, super::uri::virsh_list(&s.socket_uri())),
        tls_uri: crate::nested::tls::wanted(s).then(|| s.tls_uri()),
        libvirt_version: versions.0.clone(),
        hypervisor_version: versions.1.clone(),
        seconds: elapsed.as_secs(),
    };
    if ctx.out.is_json() {
        return ctx.out.json(&sum);
    }
    if ctx.out.quiet {
        return Ok(());
    }
    crate::outln!(
        "instance '{}' is up in {} s (libvirt {}, QEMU {})",
        sum.instance,
        sum.seconds,
        sum.libvirt_version,
        sum.hypervisor_version
    );
    crate::outln!("  socket:  {}", sum.socket_uri);
    crate::outln!("  ssh:     {}", sum.ssh_command);
    crate::outln!("  virsh:   {}", sum.virsh_command);
    crate::outln!("  over ssh: {}", sum.ssh_uri);
    if let Some(uri) = &sum.tls_uri {
        crate::outln!("  tls:     {uri}");
    }
    if s.ssh_port != ctx.settings.ssh_port {
        crate::outln!(
            "  note: sshd is on port {}; pass --ssh-port {} (or set BOXMAN_SSH_PORT) to other commands",
            s.ssh_port, s.ssh_port
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::GlobalArgs;
    use crate::nested::LABEL_CONFIG;
    use crate::settings::Sources;

    fn settings(port: u16) -> Settings {
        let src = Sources {
            cwd: "/p".into(),
            uid: 1000,
            gid: 1000,
            ..Default::default()
        };
        Settings::resolve(
            &GlobalArgs {
                ssh_port: Some(port),
                ..Default::default()
            },
            &src,
        )
        .unwrap()
    }

    fn running(port: u16, image_id: &str) -> ContainerInfo {
        let fp = Spec::new(
            &settings(port),
            "boxvirt/nested-host:debian",
            image_id,
            false,
        )
        .fingerprint();
        ContainerInfo {
            running: true,
            ssh_port: Some(port),
            labels: [(LABEL_CONFIG.to_string(), fp)].into_iter().collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_reason_is_cut_out_of_a_connection_error() {
        assert_eq!(
            reason_of("cannot reach libvirt at qemu+unix:///system?socket=/a%28b (no answer within 1 s); "),
            "no answer within 1 s"
        );
        assert_eq!(reason_of("other"), "other");
    }

    #[test]
    fn already_up_only_with_the_same_config() {
        let tag = "boxvirt/nested-host:debian";
        let plain = UpArgs::default();
        assert!(same_config(
            &settings(2222),
            &running(2222, "sha256:1"),
            tag,
            "sha256:1",
            &plain,
            &Profile::default()
        ));
        // Another image, another port, or --privileged: recreate.
        assert!(!same_config(
            &settings(2222),
            &running(2222, "sha256:1"),
            tag,
            "sha256:2",
            &plain,
            &Profile::default()
        ));
        assert!(!same_config(
            &settings(2222),
            &running(2223, "sha256:1"),
            tag,
            "sha256:1",
            &plain,
            &Profile::default()
        ));
        let privileged = UpArgs {
            privileged: true,
            ..Default::default()
        };
        assert!(!same_config(
            &settings(2222),
            &running(2222, "sha256:1"),
            tag,
            "sha256:1",
            &privileged,
            &Profile::default()
        ));
        // A hardened profile is another configuration.
        let hardened = Profile {
            hardened: true,
            ..Default::default()
        };
        assert!(!same_config(
            &settings(2222),
            &running(2222, "sha256:1"),
            tag,
            "sha256:1",
            &plain,
            &hardened
        ));
        // With --auto-ports the port picked earlier counts as the same config.
        let auto = UpArgs {
            auto_ports: true,
            ..Default::default()
        };
        assert!(same_config(
            &settings(2222),
            &running(2223, "sha256:1"),
            tag,
            "sha256:1",
            &auto,
            &Profile::default()
        ));
    }
}
