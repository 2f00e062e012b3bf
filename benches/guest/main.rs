//! Real-guest benchmark (`cargo bench --bench guest`, BENCHMARKS.md).
//!
//! Side by side, in one run, against the live libvirtd of the test harness
//! (qemu:///system, the daemon in the `boxvirt-live` network namespace):
//!   create to ready of the Debian 12 guest that `image build debian12`
//!   makes, by
//!     boxvirt       `boxvirt vm create --template debian12 --wait`
//!     virt-install  a qcow2 overlay on the same base volume, a NoCloud seed
//!                   from `cloud-localds` (same user, key and hostname),
//!                   `virt-install --import`, then polling SSH until
//!                   `cloud-init status` says done (virt-install-ready.sh)
//!   the image build: cold (`image build debian12 --rebuild --no-upload`,
//!   in a cache of its own) and cached.
//! The contenders alternate each round; every VM is removed right after its
//! run, outside the timed region, so no guest competes with the next one.
//! Everything made is named `bench-guest-*` and removed even on failure.
//!
//! Environment: BOXVIRT_BENCH_GUEST_ROUNDS (default 3),
//! BOXVIRT_BENCH_GUEST_COLD=0 (skip the cold build), BOXVIRT_CACHE_DIR
//! (the build cache, default the tests' /var/cache/boxvirt-test/image-build),
//! BOXVIRT_LIVE_URI, BOXVIRT_LIVE_NETNS, BOXVIRT_BENCH_WRITE=0 (do not
//! update BENCHMARKS.md). A bench, not a test: nothing asserts on timings.

mod build_time;
mod cleanup;
#[path = "../common/mod.rs"]
mod common;
mod contenders;
mod noise;
mod process;
mod report;

pub use common::stop::check_stop;
use common::stop::install_signal_handlers;

use std::path::PathBuf;
use std::process::Command;

use cleanup::Made;
use contenders::{Contender, Sample};

/// Everything this bench makes is named with this prefix.
pub const PREFIX: &str = "bench-guest-";

pub struct Config {
    pub uri: String,
    pub netns: String,
    pub rounds: usize,
    pub cold: bool,
    pub boxvirt: PathBuf,
    /// The build cache the tests share (the debian12 build is reused).
    pub cache: PathBuf,
    /// This run's files; under /var/lib/libvirt so QEMU may open them.
    pub work: PathBuf,
    /// Seconds a guest may take to be ready.
    pub timeout: u64,
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_string())
}

impl Config {
    fn from_env() -> Result<Config, String> {
        let rounds = env_or("BOXVIRT_BENCH_GUEST_ROUNDS", "3");
        let rounds = rounds
            .parse()
            .ok()
            .filter(|n: &usize| *n > 0)
            .ok_or_else(|| {
                format!("BOXVIRT_BENCH_GUEST_ROUNDS={rounds}: want a positive number")
            })?;
        for tool in [
            "ip",
            "virsh",
            "virt-install",
            "cloud-localds",
            "qemu-img",
            "ssh",
            "ssh-keygen",
            "bash",
        ] {
            if !on_path(tool) {
                return Err(format!(
                    "'{tool}' is not installed: run bash tests/harness/install-deps.sh"
                ));
            }
        }
        let work = PathBuf::from(format!("/var/lib/libvirt/{PREFIX}{}", std::process::id()));
        Ok(Config {
            uri: env_or("BOXVIRT_LIVE_URI", "qemu:///system"),
            netns: env_or("BOXVIRT_LIVE_NETNS", "boxvirt-live"),
            rounds,
            cold: env_or("BOXVIRT_BENCH_GUEST_COLD", "1") != "0",
            boxvirt: PathBuf::from(env!("CARGO_BIN_EXE_boxvirt")),
            cache: env_or("BOXVIRT_CACHE_DIR", "/var/cache/boxvirt-test/image-build").into(),
            work,
            timeout: 900,
        })
    }

    /// `program` run with only PATH and HOME inherited, from the run's own
    /// directory; with `netns`, inside the live daemon's network namespace,
    /// where the guests' bridge is (their addresses are reachable only there).
    pub fn command(&self, program: &str, netns: bool) -> Command {
        let mut cmd = if netns {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &self.netns, program]);
            c
        } else {
            Command::new(program)
        };
        cmd.current_dir(&self.work).env_clear();
        for key in ["PATH", "HOME"] {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        cmd
    }

    /// boxvirt run the way a user runs it (its data dir is `./data` of the
    /// run's directory), with build cache `cache`.
    pub fn boxvirt_cmd(&self, cache: &std::path::Path, netns: bool) -> Command {
        let mut cmd = self.command(&self.boxvirt.display().to_string(), netns);
        cmd.env("BOXVIRT_CACHE_DIR", cache);
        cmd.arg("-c").arg(&self.uri);
        cmd
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

// --- interruption -----------------------------------------------------------

// --- the run ------------------------------------------------------------------

/// What one run measured.
pub struct Results {
    pub machine: report::Machine,
    pub builds: Option<build_time::BuildTimes>,
    /// Per contender, in run order.
    pub samples: Vec<(Contender, Vec<Sample>)>,
    /// Rounds asked for, and finished.
    pub rounds: usize,
    pub rounds_done: usize,
}

fn main() {
    // `cargo bench` passes --bench; nothing else is understood.
    if std::env::args().skip(1).any(|a| a != "--bench") {
        eprintln!("guest: no arguments are taken (see the environment in benches/guest/main.rs)");
        std::process::exit(2);
    }
    install_signal_handlers();
    match run() {
        Ok(()) => {}
        Err(e) => {
            eprintln!("guest: error: {e}");
            std::process::exit(1);
        }
    }
}

fn run() -> Result<(), String> {
    let cfg = Config::from_env()?;
    let libvirt = boxvirt::libvirt::Libvirt::open(&cfg.uri, "").map_err(|e| {
        format!(
            "{}: start it with bash tests/harness/live-libvirtd.sh start",
            e.message
        )
    })?;
    cleanup::sweep_stale(&cfg, &libvirt);
    let made = Made::new(&cfg, &libvirt)?;
    let mut results = Results {
        machine: report::Machine::probe(&libvirt),
        builds: None,
        samples: Contender::ALL.iter().map(|c| (*c, Vec::new())).collect(),
        rounds: cfg.rounds,
        rounds_done: 0,
    };

    eprintln!("guest: the debian12 base: image build debian12 (cached) into pool 'default'");
    let base = build_time::base_volume(&cfg)?;
    // The builds first: bounded, and then every finished round is written.
    results.builds = Some(build_time::measure(&cfg)?);
    let key = contenders::make_key(&cfg)?;
    for round in 0..cfg.rounds {
        run_round(&cfg, &made, &base, &key, round, &mut results)?;
        results.rounds_done = round + 1;
        results.machine.finish();
        publish(&results, round + 1 == cfg.rounds)?;
    }
    Ok(())
}

/// One round: each contender once, who goes first alternating (to spread
/// the machine's drift); each VM removed right after its run.
fn run_round(
    cfg: &Config,
    made: &Made,
    base: &build_time::Base,
    key: &contenders::Key,
    round: usize,
    results: &mut Results,
) -> Result<(), String> {
    let mut order = Contender::ALL;
    if round % 2 == 1 {
        order.reverse();
    }
    for who in order {
        check_stop()?;
        let name = made.track(
            who,
            &format!("{PREFIX}{}-{}-{round}", who.tag(), std::process::id()),
        );
        eprintln!(
            "guest: round {}/{}: {} ({name})",
            round + 1,
            cfg.rounds,
            who.label()
        );
        let sample = contenders::run(cfg, who, &name, base, key);
        match &sample.error {
            None => eprintln!("guest:   ready in {:.1} s", sample.wall),
            Some(e) => eprintln!("guest:   FAILED after {:.1} s: {e}", sample.wall),
        }
        made.remove(&name);
        if let Some(s) = results.samples.iter_mut().find(|(c, _)| *c == who) {
            s.1.push(sample);
        }
    }
    Ok(())
}

/// Prints the results (at the end) and writes them into BENCHMARKS.md
/// after every round, so an interrupted run still leaves what it measured.
fn publish(results: &Results, last: bool) -> Result<(), String> {
    let text = report::markdown(results);
    if last {
        println!("{text}");
    }
    report::publish(&text)?;
    Ok(())
}
