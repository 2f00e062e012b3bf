//! Live-daemon benchmark (`cargo bench --bench lifecycle`, BENCHMARKS.md).
//!
//! Side by side, in one run, against the real libvirtd at qemu:///system:
//!   create+start of the tiny guest by
//!     boxvirt      `boxvirt vm create --template tiny --no-seed --start`
//!                  (the same domain as the others) and the default
//!                  `boxvirt vm create --template tiny --start`, which also
//!                  makes the template's cloud-init seed volume
//!     original     xmlstarlet-edited XML + `virsh define` + `virsh start`
//!     virt-install `virt-install --import --noautoconsole`
//!     floor        a minimal Rust program: open, define, create (floor.rs)
//!   delete of a running tiny guest by `boxvirt vm delete` and by a minimal
//!     program (open, destroy, undefine; floor.rs), and `boxvirt doctor`
//!     (teardown.rs);
//!   list with 1000 defined domains by `boxvirt vm list` and `virsh list --all`.
//! Every contender is a separate process per iteration; contenders alternate
//! (the order rotates each round) to spread the machine's noise; each VM is
//! removed right after its run, outside the timed region (boxvirt's with
//! `boxvirt vm delete`, the others' destroyed and undefined).
//! The timed region ends when the start call returns, not at guest boot.
//! One more, untimed, run of each with libvirt's client RPC log counts the
//! round trips each one makes (trace.rs).
//!
//! Environment: BOXVIRT_BENCH_ITER (create rounds, default 11),
//! BOXVIRT_BENCH_LIST_ITER (list rounds, default 21), BOXVIRT_LIVE_URI
//! (default qemu:///system), BOXVIRT_TEST_CACHE (tiny guest, default
//! /var/cache/boxvirt-test), BOXVIRT_BENCH_WRITE=0 (do not update
//! BENCHMARKS.md). A bench, not a test: nothing asserts on timings.

#[path = "../common/mod.rs"]
mod common;
mod floor;
mod report;
mod teardown;
mod trace;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use virt::connect::Connect;

use common::measure;
use common::settings::{env_usize, require_tools};
use common::tiny::{Tiny, XMLSTARLET_EDITS};
use measure::{Daemon, Outputs, Sample};

/// VM names this bench may make; all start with `bench-`.
pub const PREFIX: &str = "bench-";
pub const LIST_DOMAINS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    /// `--no-seed --no-reserve`: the same work as the floor (define + start).
    BoxvirtBare,
    /// `--no-seed`: the same domain as the other contenders make, plus the
    /// DHCP reservation boxvirt makes by default.
    Boxvirt,
    /// The default: also a cloud-init seed volume (the tiny template asks for one).
    BoxvirtSeeded,
    /// The original tool's shell way.
    Original,
    VirtInstall,
    Floor,
}

impl Contender {
    pub const ALL: [Contender; 6] = [
        Contender::BoxvirtBare,
        Contender::Boxvirt,
        Contender::BoxvirtSeeded,
        Contender::Original,
        Contender::VirtInstall,
        Contender::Floor,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Contender::BoxvirtBare => "boxvirt vm create --no-seed --no-reserve --start",
            Contender::Boxvirt => "boxvirt vm create --no-seed --start (+ address slot)",
            Contender::BoxvirtSeeded => "boxvirt vm create --start (default: + cloud-init seed)",
            Contender::Original => "original: xmlstarlet + virsh define + virsh start",
            Contender::VirtInstall => "virt-install --import --noautoconsole",
            Contender::Floor => "floor: minimal Rust program (virt crate)",
        }
    }

    pub fn tag(self) -> &'static str {
        match self {
            Contender::BoxvirtBare => "bxb",
            Contender::Boxvirt => "bx",
            Contender::BoxvirtSeeded => "bxs",
            Contender::Original => "sh",
            Contender::VirtInstall => "vi",
            Contender::Floor => "floor",
        }
    }

    /// Made by boxvirt, so removed with `boxvirt vm delete` (its seed volume
    /// and DHCP reservation too).
    fn by_boxvirt(self) -> bool {
        matches!(
            self,
            Contender::BoxvirtBare | Contender::Boxvirt | Contender::BoxvirtSeeded
        )
    }
}

pub struct Config {
    pub uri: String,
    pub iterations: usize,
    pub list_iterations: usize,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub boxvirt: PathBuf,
    pub template: PathBuf,
    pub work: PathBuf,
}

impl Config {
    fn from_env() -> Result<Config, String> {
        let tiny = Tiny::find()?;
        require_tools(&["virsh", "xmlstarlet", "virt-install", "bash"])?;
        let work = std::env::temp_dir().join(format!("boxvirt-bench-{}", std::process::id()));
        std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
        Ok(Config {
            uri: std::env::var("BOXVIRT_LIVE_URI").unwrap_or_else(|_| "qemu:///system".into()),
            iterations: env_usize("BOXVIRT_BENCH_ITER", 11)?,
            list_iterations: env_usize("BOXVIRT_BENCH_LIST_ITER", 21)?,
            kernel: tiny.kernel,
            initrd: tiny.initrd,
            boxvirt: PathBuf::from(env!("CARGO_BIN_EXE_boxvirt")),
            template: tiny.template,
            work,
        })
    }

    pub fn serial_log(&self, name: &str) -> PathBuf {
        common::tiny::serial_log(name)
    }

    pub fn tiny(&self) -> Tiny {
        Tiny {
            kernel: self.kernel.clone(),
            initrd: self.initrd.clone(),
            template: self.template.clone(),
        }
    }

    pub fn outputs(&self, name: &str) -> Outputs {
        Outputs {
            stdout: Some(self.work.join(format!("{name}.out"))),
            stderr: self.work.join(format!("{name}.err")),
        }
    }

    /// A boxvirt process run the way a user runs it (own cwd, no inherited
    /// LIBVIRT_DEFAULT_URI / BOXVIRT_* settings).
    pub fn boxvirt_cmd(&self) -> Command {
        let mut cmd = Command::new(&self.boxvirt);
        cmd.current_dir(&self.work).env_clear();
        for key in ["PATH", "HOME"] {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        cmd.arg("-c").arg(&self.uri);
        cmd
    }
}

// --- cleanup --------------------------------------------------------------

pub use common::stop::{check_stop, install_signal_handlers};

/// Destroys and undefines a domain (and removes its log files); a domain
/// that does not exist is fine.
pub fn remove_domain(conn: &Connect, cfg: &Config, name: &str) {
    if let Ok(dom) = conn.lookup_domain_by_name(name) {
        if dom.is_active().unwrap_or(false) {
            let _ = dom.destroy();
        }
        let flags =
            virt::sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | virt::sys::VIR_DOMAIN_UNDEFINE_NVRAM;
        if dom.undefine_flags(flags).is_err() {
            let _ = dom.undefine();
        }
    }
    // The serial log and libvirt's per-domain QEMU log.
    let _ = std::fs::remove_file(cfg.serial_log(name));
    let _ = std::fs::remove_file(format!("/var/log/libvirt/qemu/{name}.log"));
}

/// Removes a VM boxvirt made the way a user would (`vm delete` also removes
/// its seed volume and DHCP reservation), then makes sure the domain is gone.
fn remove_boxvirt_vm(conn: &Connect, cfg: &Config, name: &str) {
    let mut cmd = cfg.boxvirt_cmd();
    cmd.args(["vm", "delete", name, "--yes"]);
    if let Err(e) = measure::run(&mut cmd, &cfg.outputs(&format!("{name}-delete")), None) {
        if conn.lookup_domain_by_name(name).is_ok() {
            eprintln!("lifecycle: warning: boxvirt vm delete {name}: {e}");
        }
    }
    remove_domain(conn, cfg, name);
}

/// Every domain this run may have made; all removed when it drops, whether
/// the run finished, failed or panicked.
pub struct Made<'a> {
    conn: &'a Connect,
    cfg: &'a Config,
    /// name -> made by boxvirt
    names: RefCell<BTreeMap<String, bool>>,
}

impl<'a> Made<'a> {
    fn new(conn: &'a Connect, cfg: &'a Config) -> Self {
        Made {
            conn,
            cfg,
            names: RefCell::new(BTreeMap::new()),
        }
    }

    /// Records `name` before anything creates it.
    pub fn track(&self, name: &str, by_boxvirt: bool) -> String {
        assert!(name.starts_with(PREFIX));
        self.names.borrow_mut().insert(name.to_string(), by_boxvirt);
        name.to_string()
    }

    /// Removes one domain now (between iterations).
    pub fn remove(&self, name: &str) {
        if let Some(by_boxvirt) = self.names.borrow_mut().remove(name) {
            remove_any(self.conn, self.cfg, name, by_boxvirt);
        }
    }
}

fn remove_any(conn: &Connect, cfg: &Config, name: &str, by_boxvirt: bool) {
    if by_boxvirt {
        remove_boxvirt_vm(conn, cfg, name)
    } else {
        remove_domain(conn, cfg, name)
    }
}

impl Drop for Made<'_> {
    fn drop(&mut self) {
        let names = std::mem::take(&mut *self.names.borrow_mut());
        if !names.is_empty() {
            eprintln!("lifecycle: removing {} bench domain(s)", names.len());
        }
        for (name, by_boxvirt) in names {
            remove_any(self.conn, self.cfg, &name, by_boxvirt);
        }
        let _ = std::fs::remove_dir_all(&self.cfg.work);
    }
}

/// Domains left by an earlier run that was killed (bench-* names are this
/// bench's, except bench-guest-*, which belong to benches/guest).
fn sweep_stale(conn: &Connect, cfg: &Config) {
    let Ok(doms) = conn.list_all_domains(0) else {
        return;
    };
    for dom in doms {
        if let Ok(name) = dom.name() {
            if name.starts_with(PREFIX) && !name.starts_with("bench-guest-") {
                eprintln!("lifecycle: removing '{name}' left by an earlier run");
                let by_boxvirt = name.starts_with(&format!("{PREFIX}bx"));
                remove_any(conn, cfg, &name, by_boxvirt);
            }
        }
    }
}

// --- contenders -----------------------------------------------------------

/// `bash -c script` with the variables XMLSTARLET_EDITS uses, plus the
/// original tool's XML file and URI.
fn edits_command(cfg: &Config, name: &str, script: &str) -> Command {
    let mut cmd = cfg.tiny().edits_command(&cfg.work, name, script);
    cmd.env("XML", cfg.work.join(format!("{name}.xml")))
        .env("URI", &cfg.uri);
    cmd
}

/// The tiny domain `name` as XML (what the original tool defines).
pub fn tiny_xml(cfg: &Config, name: &str) -> Result<String, String> {
    cfg.tiny().xml(&cfg.work, name)
}

/// The command that creates and starts `name` the contender's way, plus any
/// file it needs, written now (outside the timed region).
pub fn create_command(cfg: &Config, who: Contender, name: &str) -> Result<Command, String> {
    let (kernel, initrd) = (
        cfg.kernel.display().to_string(),
        cfg.initrd.display().to_string(),
    );
    let log = cfg.serial_log(name).display().to_string();
    let boxvirt = |extra: &[&str]| {
        let mut cmd = cfg.boxvirt_cmd();
        cmd.args(["vm", "create", "--template", "tiny", "--name", name])
            .args(["--set", &format!("kernel={kernel}")])
            .args(["--set", &format!("initrd={initrd}")])
            .args(["--set", &format!("serial_log={log}")])
            .args(extra)
            .arg("--start");
        cmd
    };
    Ok(match who {
        Contender::BoxvirtBare => boxvirt(&["--no-seed", "--no-reserve"]),
        Contender::Boxvirt => boxvirt(&["--no-seed"]),
        Contender::BoxvirtSeeded => boxvirt(&[]),
        Contender::Original => {
            let script = format!(
                r#"{XMLSTARLET_EDITS} > "$XML" &&
                virsh -c "$URI" define "$XML" && virsh -c "$URI" start "$NAME""#
            );
            edits_command(cfg, name, &script)
        }
        Contender::VirtInstall => cfg.tiny().virt_install(&cfg.work, &cfg.uri, name),
        Contender::Floor => {
            let xml = cfg.work.join(format!("{name}.xml"));
            std::fs::write(&xml, tiny_xml(cfg, name)?)
                .map_err(|e| format!("{}: {e}", xml.display()))?;
            let mut cmd = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
            cmd.current_dir(&cfg.work)
                .arg("floor")
                .arg(&cfg.uri)
                .arg(&xml);
            cmd
        }
    })
}

/// One create+start by `who`; checks the domain runs, then removes it.
fn create_once(
    conn: &Connect,
    cfg: &Config,
    made: &Made,
    daemon: Option<&Daemon>,
    who: Contender,
    name: &str,
) -> Result<Sample, String> {
    check_stop()?;
    let name = made.track(name, who.by_boxvirt());
    let mut cmd = create_command(cfg, who, &name)?;
    let sample = measure::run(&mut cmd, &cfg.outputs(&name), daemon)
        .map_err(|e| format!("{}: {e}", who.label()))?;
    let running = conn
        .lookup_domain_by_name(&name)
        .and_then(|d| d.is_active())
        .unwrap_or(false);
    made.remove(&name);
    if !running {
        return Err(format!(
            "{}: '{name}' is not running after the command returned",
            who.label()
        ));
    }
    Ok(sample)
}

/// One untimed, traced create+start per contender: its libvirt round trips.
fn trace_create(cfg: &Config, made: &Made) -> Result<Vec<(String, trace::Trace)>, String> {
    let mut traces = Vec::new();
    for who in Contender::ALL {
        check_stop()?;
        let name = made.track(&format!("{PREFIX}{}-trace", who.tag()), who.by_boxvirt());
        let mut cmd = create_command(cfg, who, &name)?;
        let log = cfg.work.join(format!("{name}.rpc.log"));
        trace::enable(&mut cmd, &log);
        let run = measure::run(&mut cmd, &cfg.outputs(&name), None);
        made.remove(&name);
        run.map_err(|e| format!("{} (traced): {e}", who.label()))?;
        traces.push((who.label().to_string(), trace::read(&log)));
    }
    Ok(traces)
}

/// Create+start rounds; returns the samples per contender (in ALL order).
fn bench_create(
    conn: &Connect,
    cfg: &Config,
    made: &Made,
    daemon: Option<&Daemon>,
) -> Result<Vec<Vec<Sample>>, String> {
    let n = Contender::ALL.len();
    eprintln!("lifecycle: create+start warm-up (1 untimed round)");
    for who in Contender::ALL {
        create_once(
            conn,
            cfg,
            made,
            daemon,
            who,
            &format!("{PREFIX}{}-warm", who.tag()),
        )?;
    }
    let mut samples = vec![Vec::new(); n];
    for round in 0..cfg.iterations {
        eprint!(
            "lifecycle: create+start round {}/{}:",
            round + 1,
            cfg.iterations
        );
        for k in 0..n {
            let i = (round + k) % n; // rotate who goes first
            let who = Contender::ALL[i];
            let s = create_once(
                conn,
                cfg,
                made,
                daemon,
                who,
                &format!("{PREFIX}{}-{round}", who.tag()),
            )?;
            eprint!(" {} {:.0} ms", who.tag(), measure::ms(s.wall));
            samples[i].push(s);
        }
        eprintln!();
    }
    Ok(samples)
}

/// `boxvirt vm list` vs `virsh list --all` with 1000 defined (not running)
/// domains; returns the samples of each and how many domains were listed.
fn bench_list(
    conn: &Connect,
    cfg: &Config,
    made: &Made,
    daemon: Option<&Daemon>,
) -> Result<report::List, String> {
    eprintln!("lifecycle: defining {LIST_DOMAINS} domains for the list bench");
    for i in 0..LIST_DOMAINS {
        check_stop()?;
        let name = made.track(&format!("{PREFIX}list-{i:04}"), false);
        conn.define_domain_xml(&tiny_xml(cfg, &name)?)
            .map_err(|e| format!("defining {name}: {e}"))?;
    }
    let total = conn.list_all_domains(0).map_err(|e| e.to_string())?.len();
    eprintln!("lifecycle: the daemon now has {total} domains");
    let list = |which: usize, log: Option<&Path>| -> Result<Sample, String> {
        check_stop()?;
        let mut cmd = if which == 0 {
            let mut c = cfg.boxvirt_cmd();
            c.args(["vm", "list"]);
            c
        } else {
            let mut c = Command::new("virsh");
            c.args(["-c", &cfg.uri, "list", "--all"]);
            c
        };
        if let Some(log) = log {
            trace::enable(&mut cmd, log);
        }
        let out = Outputs {
            stdout: None,
            stderr: cfg.work.join("list.err"),
        };
        measure::run(&mut cmd, &out, daemon)
    };
    list(0, None)?; // warm-up
    list(1, None)?;
    let (mut bx, mut vs) = (Vec::new(), Vec::new());
    for round in 0..cfg.list_iterations {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let s = list(which, None)?;
            if which == 0 {
                bx.push(s)
            } else {
                vs.push(s)
            }
        }
    }
    let mut traces = Vec::new();
    for (which, label) in [(0, "boxvirt vm list"), (1, "virsh list --all")] {
        let log = cfg.work.join(format!("list-{which}.rpc.log"));
        list(which, Some(&log))?;
        traces.push((label.to_string(), trace::read(&log)));
    }
    for i in 0..LIST_DOMAINS {
        made.remove(&format!("{PREFIX}list-{i:04}"));
    }
    Ok(report::List {
        boxvirt: bx,
        virsh: vs,
        domains: total,
        traces,
    })
}

fn run() -> Result<(), String> {
    let cfg = Config::from_env()?;
    virt::error::clear_error_callback();
    let conn = Connect::open(Some(&cfg.uri)).map_err(|e| {
        format!(
            "cannot reach libvirt at {} ({e}); run: bash tests/harness/live-libvirtd.sh start",
            cfg.uri
        )
    })?;
    let made = Made::new(&conn, &cfg);
    sweep_stale(&conn, &cfg);

    // The network the tiny guest's NIC uses must run (untimed).
    let mut ensure = cfg.boxvirt_cmd();
    ensure.args(["net", "ensure", "default"]);
    measure::run(&mut ensure, &cfg.outputs("net-ensure"), None)?;

    let local = cfg.uri.starts_with("qemu:///") || cfg.uri.starts_with("qemu+unix:///");
    let daemon = if local {
        let sock = cfg
            .uri
            .split_once("?socket=")
            .map(|(_, s)| s.split('&').next().unwrap_or(s).to_string());
        let sock = sock.unwrap_or_else(|| "/run/libvirt/libvirt-sock".into());
        Daemon::at_socket(Path::new(&sock))
    } else {
        None
    };
    let machine = common::machine::Machine::read(&conn, daemon.as_ref());
    eprintln!("lifecycle: {}", machine.one_line());

    let create = bench_create(&conn, &cfg, &made, daemon.as_ref())?;
    eprintln!("lifecycle: one traced create+start each (libvirt client RPC log)");
    let create_traces = trace_create(&cfg, &made)?;
    let teardown = teardown::bench(&conn, &cfg, &made, daemon.as_ref())?;
    let list = bench_list(&conn, &cfg, &made, daemon.as_ref())?;

    let results = report::Results {
        machine,
        iterations: cfg.iterations,
        list_iterations: cfg.list_iterations,
        create,
        create_traces,
        list,
        teardown,
    };
    let text = results.markdown();
    println!("{text}");
    report::publish(&text)?;
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("floor") => floor::main(&args[2..]),
        Some("floor-delete") => floor::delete_main(&args[2..]),
        _ => {}
    }
    // `cargo bench` passes --bench; `cargo test --benches` does not, and a
    // test run must not drive the live daemon.
    if !args.iter().any(|a| a == "--bench") {
        eprintln!("lifecycle: a benchmark against the live libvirtd; run it with 'cargo bench --bench lifecycle'");
        return;
    }
    install_signal_handlers();
    if let Err(e) = run() {
        eprintln!("lifecycle: error: {e}");
        std::process::exit(1);
    }
}
