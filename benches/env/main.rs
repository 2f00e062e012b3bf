//! `env apply` benchmark (`cargo bench --bench env`, BENCHMARKS.md).
//!
//! K tiny guests on network 'default' of the live libvirtd, made and
//! started side by side in one run by:
//!   apply        `boxvirt env apply --parallel N --start` of a file with K
//!                VMs (the default: seed and address included), and the
//!                same with `--no-seed`
//!   floor        a minimal Rust program: N threads, each with its own
//!                connection, define + start the K domains (floor.rs)
//!   sequential   K `boxvirt vm create --template tiny --start`, one after
//!                the other
//!   virt-install K `virt-install --import`, N at a time
//! and removed: `boxvirt env destroy -y` of the apply's VMs against the
//! floor's threads doing destroy + undefine. Each contender is timed from
//! the first spawn to the last exit; each K gets ROUNDS rounds with the
//! order rotating. Every VM is checked to run, then removed outside the
//! timed region.
//!
//! Environment: BOXVIRT_BENCH_ENV_K (default "1,5,10,20"),
//! BOXVIRT_BENCH_ENV_ITER (rounds per K, default 3),
//! BOXVIRT_BENCH_ENV_PARALLEL (N, default 4: apply's default),
//! BOXVIRT_LIVE_URI (default qemu:///system), BOXVIRT_TEST_CACHE (tiny
//! guest), BOXVIRT_BENCH_WRITE=0 (leave BENCHMARKS.md alone). A bench, not
//! a test: nothing asserts on timings.

#[path = "../common/mod.rs"]
mod common;
mod floor;
mod made;
mod report;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use virt::connect::Connect;

use common::measure::{self, Outputs};
use common::settings::{env_usize, require_tools};
use common::tiny::Tiny;
use made::Made;

/// Names this bench makes; all start with it.
pub const PREFIX: &str = "benv-";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    Floor,
    Apply,
    ApplyNoSeed,
    Sequential,
    VirtInstall,
}

impl Contender {
    pub const ALL: [Contender; 5] = [
        Contender::Floor,
        Contender::Apply,
        Contender::ApplyNoSeed,
        Contender::Sequential,
        Contender::VirtInstall,
    ];

    fn tag(self) -> &'static str {
        match self {
            Contender::Floor => "fl",
            Contender::Apply => "ap",
            Contender::ApplyNoSeed => "an",
            Contender::Sequential => "sq",
            Contender::VirtInstall => "vi",
        }
    }
}

pub struct Config {
    pub uri: String,
    pub ks: Vec<usize>,
    pub rounds: usize,
    pub parallel: usize,
    pub tiny: Tiny,
    pub boxvirt: PathBuf,
    pub work: PathBuf,
}

impl Config {
    fn from_env() -> Result<Config, String> {
        let ks = std::env::var("BOXVIRT_BENCH_ENV_K").unwrap_or_else(|_| "1,5,10,20".into());
        let ks = ks
            .split(',')
            .map(|k| k.trim().parse().ok().filter(|k| (1..=100).contains(k)))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| format!("BOXVIRT_BENCH_ENV_K={ks}: want numbers 1..100, e.g. 1,5"))?;
        require_tools(&["xmlstarlet", "virt-install", "bash"])?;
        let work = std::env::temp_dir().join(format!("boxvirt-bench-env-{}", std::process::id()));
        std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
        Ok(Config {
            uri: std::env::var("BOXVIRT_LIVE_URI").unwrap_or_else(|_| "qemu:///system".into()),
            ks,
            rounds: env_usize("BOXVIRT_BENCH_ENV_ITER", 3)?,
            parallel: env_usize("BOXVIRT_BENCH_ENV_PARALLEL", 4)?,
            tiny: Tiny::find()?,
            boxvirt: PathBuf::from(env!("CARGO_BIN_EXE_boxvirt")),
            work,
        })
    }

    /// boxvirt as a user runs it (own cwd, only PATH and HOME inherited,
    /// the suite's build cache for `image build tiny`).
    pub fn boxvirt_cmd(&self) -> Command {
        let mut cmd = Command::new(&self.boxvirt);
        cmd.current_dir(&self.work).env_clear();
        for key in ["PATH", "HOME", "BOXVIRT_TEST_CACHE"] {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        let cache = std::env::var("BOXVIRT_TEST_CACHE")
            .unwrap_or_else(|_| "/var/cache/boxvirt-test".into());
        cmd.env("BOXVIRT_CACHE_DIR", Path::new(&cache).join("image-build"));
        cmd.arg("-c").arg(&self.uri);
        cmd
    }

    fn outputs(&self, tag: &str) -> Outputs {
        Outputs {
            stdout: Some(self.work.join(format!("{tag}.out"))),
            stderr: self.work.join(format!("{tag}.err")),
        }
    }

    /// This binary, re-executed as the floor.
    fn floor_cmd(&self, sub: &str) -> Result<Command, String> {
        let mut cmd = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
        cmd.current_dir(&self.work)
            .arg(sub)
            .arg(&self.uri)
            .arg(self.parallel.to_string());
        Ok(cmd)
    }
}

/// The env file of K VMs named `GROUP-1` .. `GROUP-K` (GROUP is also the
/// environment's name), on the existing network 'default'.
fn env_file(cfg: &Config, group: &str, k: usize) -> Result<PathBuf, String> {
    let path = cfg.work.join(format!("{group}.yaml"));
    let text = format!(
        "name: {group}\nnetworks:\n  default: {{template: default}}\ndefaults: {{template: tiny, networks: [default]}}\nvms:\n  - {{name: {group}, count: {k}}}\n"
    );
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// Runs one command to completion; its wall time.
fn timed(cmd: &mut Command, out: &Outputs) -> Result<Duration, String> {
    measure::run(cmd, out, None).map(|s| s.wall)
}

/// Commands run at most `n` at a time; the wall from the first spawn to
/// the last exit.
fn timed_parallel(cmds: Vec<Command>, n: usize, log: &Path) -> Result<Duration, String> {
    let started = Instant::now();
    let mut queue = cmds.into_iter();
    let mut running: Vec<Child> = Vec::new();
    let mut failed = Vec::new();
    loop {
        while running.len() < n {
            let Some(mut cmd) = queue.next() else { break };
            let err = std::fs::File::create(log.with_extension(format!("{}.err", running.len())))
                .map_err(|e| e.to_string())?;
            let child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(err)
                .spawn()
                .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
            running.push(child);
        }
        if running.is_empty() {
            break;
        }
        // The first one to finish frees a place (polling: no timed detail
        // here is finer than a few ms).
        // try_wait reaps the ones that ended.
        running.retain_mut(|c| match c.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                if !status.success() {
                    failed.push(status.to_string());
                }
                false
            }
            Err(e) => {
                failed.push(e.to_string());
                false
            }
        });
        std::thread::sleep(Duration::from_millis(2));
    }
    let wall = started.elapsed();
    if failed.is_empty() {
        Ok(wall)
    } else {
        Err(format!(
            "{} of them failed: {}",
            failed.len(),
            failed.join(", ")
        ))
    }
}

/// One contender making K VMs (timed), checked to run, then removed; for
/// apply and the floor the removal is timed too.
pub struct Timed {
    pub create: Duration,
    pub remove: Option<Duration>,
}

fn run_one(
    conn: &Connect,
    cfg: &Config,
    made: &Made,
    who: Contender,
    k: usize,
    round: usize,
) -> Result<Timed, String> {
    made::check_stop()?;
    let group = format!("{PREFIX}{}{k}r{round}", who.tag());
    let names: Vec<String> = (1..=k).map(|i| format!("{group}-{i}")).collect();
    for n in &names {
        made.track(n);
    }
    let out = cfg.outputs(&group);
    let create = match who {
        Contender::Floor => {
            let mut files = Vec::new();
            for n in &names {
                let f = cfg.work.join(format!("{n}.xml"));
                std::fs::write(&f, cfg.tiny.xml(&cfg.work, n)?).map_err(|e| e.to_string())?;
                files.push(f);
            }
            timed(cfg.floor_cmd("floor")?.args(&files), &out)?
        }
        Contender::Apply | Contender::ApplyNoSeed => {
            let file = env_file(cfg, &group, k)?;
            made.track_env(&file);
            let mut cmd = cfg.boxvirt_cmd();
            cmd.args(["env", "apply", "-f"]).arg(&file);
            cmd.args(["--parallel", &cfg.parallel.to_string(), "--start"]);
            if who == Contender::ApplyNoSeed {
                cmd.arg("--no-seed");
            }
            timed(&mut cmd, &out)?
        }
        Contender::Sequential => {
            let started = Instant::now();
            for n in &names {
                let mut cmd = cfg.boxvirt_cmd();
                // Its own serial log, as env apply gives each VM (the
                // template's one path cannot be opened by two guests).
                let log = common::tiny::serial_log(n);
                cmd.args(["vm", "create", "--template", "tiny", "--name", n, "--start"])
                    .args(["--set", &format!("serial_log={}", log.display())]);
                timed(&mut cmd, &out)?;
            }
            started.elapsed()
        }
        Contender::VirtInstall => {
            let cmds = names
                .iter()
                .map(|n| cfg.tiny.virt_install(&cfg.work, &cfg.uri, n))
                .collect();
            timed_parallel(cmds, cfg.parallel, &cfg.work.join(&group))?
        }
    };
    for n in &names {
        let running = conn
            .lookup_domain_by_name(n)
            .and_then(|d| d.is_active())
            .unwrap_or(false);
        if !running {
            return Err(format!("{group}: '{n}' is not running after the run"));
        }
    }
    let remove = match who {
        Contender::Floor => Some(timed(
            cfg.floor_cmd("floor-delete")?.args(&names),
            &cfg.outputs(&format!("{group}-delete")),
        )?),
        Contender::Apply => {
            let file = cfg.work.join(format!("{group}.yaml"));
            let mut cmd = cfg.boxvirt_cmd();
            cmd.args(["env", "destroy", "-y", "-f"]).arg(&file);
            Some(timed(&mut cmd, &cfg.outputs(&format!("{group}-destroy")))?)
        }
        _ => None,
    };
    made.remove_all();
    Ok(Timed { create, remove })
}

/// Samples per K (in `cfg.ks` order), per contender (in ALL order).
pub type Samples = Vec<Vec<Vec<Timed>>>;

fn bench(conn: &Connect, cfg: &Config, made: &Made) -> Result<Samples, String> {
    let n = Contender::ALL.len();
    eprintln!("env: warm-up (K=1, each contender once, untimed)");
    for who in Contender::ALL {
        run_one(conn, cfg, made, who, 1, 0)?;
    }
    let mut all = Vec::new();
    for &k in &cfg.ks {
        let mut per: Vec<Vec<Timed>> = (0..n).map(|_| Vec::new()).collect();
        for round in 1..=cfg.rounds {
            eprint!("env: K={k} round {round}/{}:", cfg.rounds);
            for j in 0..n {
                let i = (round + j) % n; // rotate who goes first
                let who = Contender::ALL[i];
                let t = run_one(conn, cfg, made, who, k, round)?;
                eprint!(" {} {:.0} ms", who.tag(), measure::ms(t.create));
                per[i].push(t);
            }
            eprintln!();
        }
        all.push(per);
    }
    Ok(all)
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
    let made = Made::new(&cfg);
    made::sweep_stale(&conn, &cfg);
    // Untimed: the network all VMs use and the tiny guest in pool 'default'.
    for args in [
        &["net", "ensure", "default"][..],
        &["image", "build", "tiny"],
    ] {
        let mut cmd = cfg.boxvirt_cmd();
        cmd.args(args);
        measure::run(&mut cmd, &cfg.outputs("setup"), None)?;
    }
    let machine = common::machine::Machine::read(&conn, None);
    eprintln!("env: {}", machine.one_line());
    let samples = bench(&conn, &cfg, &made)?;
    let load_after = common::machine::Machine::read(&conn, None).load;
    let text = report::markdown(&cfg, &machine, &load_after, &samples);
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
    // `cargo test --benches` does not pass --bench, and a test run must
    // not drive the live daemon.
    if !args.iter().any(|a| a == "--bench") {
        eprintln!(
            "env: a benchmark against the live libvirtd; run it with 'cargo bench --bench env'"
        );
        return;
    }
    made::install_signal_handlers();
    if let Err(e) = run() {
        eprintln!("env: error: {e}");
        std::process::exit(1);
    }
}
