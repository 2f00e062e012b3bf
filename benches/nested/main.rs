//! Nested-host benchmark (`cargo bench --bench nested`, BENCHMARKS.md).
//!
//! Side by side, in one run, on one instance of its own (a container, a data
//! dir under /tmp), N rounds:
//!   up        `boxvirt up` after `boxvirt down` (the same, stopped container)
//!   floor     `docker start` of the same, stopped container, then polling
//!             until libvirt answers on the socket (virt crate, as boxvirt)
//!   down      `boxvirt down` (stop; the container is kept)
//!   stop      `docker stop` of the same container
//!   already   `boxvirt up` when the instance is already up
//!   version   `boxvirt --version`: the process start alone, for reference
//! Each round is one of two sequences, alternating, so neither pair always
//! runs first: A = stop, floor, already, down, up; B = down, up, already,
//! stop, floor. Every contender is a separate process (the floor: the docker
//! CLI plus the poll in this process).
//!
//! Environment: BOXVIRT_BENCH_NESTED_ITER (rounds, default 7),
//! BOXVIRT_BENCH_NESTED_INSTANCE (default bench-nested),
//! BOXVIRT_BENCH_NESTED_DATA (default /tmp/boxvirt-bench-nested),
//! BOXVIRT_BENCH_NESTED_PORT (default 2391; --auto-ports moves it when taken),
//! BOXVIRT_BENCH_WRITE=0 (do not update BENCHMARKS.md).
//! A bench, not a test: nothing asserts on timings.

#[path = "../common/mod.rs"]
mod common;
mod report;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use virt::connect::Connect;

use common::measure::ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    Up,
    Floor,
    Down,
    Stop,
    Already,
    /// `boxvirt --version`: what starting the binary costs (dynamic
    /// linking of libvirt and its libraries), the part of `Already` that is
    /// not its work.
    Version,
}

pub const ROWS: [Row; 6] = [
    Row::Up,
    Row::Floor,
    Row::Down,
    Row::Stop,
    Row::Already,
    Row::Version,
];

impl Row {
    pub fn label(self) -> &'static str {
        match self {
            Row::Up => "`boxvirt up` after `down`",
            Row::Floor => "floor: `docker start` + libvirt answers",
            Row::Down => "`boxvirt down`",
            Row::Stop => "`docker stop`",
            Row::Already => "`boxvirt up`, already up",
            Row::Version => "`boxvirt --version` (process start)",
        }
    }
}

struct Bench {
    boxvirt: PathBuf,
    instance: String,
    data: PathBuf,
    port: u16,
}

impl Bench {
    fn from_env() -> Bench {
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
        Bench {
            boxvirt: PathBuf::from(env!("CARGO_BIN_EXE_boxvirt")),
            instance: var("BOXVIRT_BENCH_NESTED_INSTANCE", "bench-nested"),
            data: PathBuf::from(var(
                "BOXVIRT_BENCH_NESTED_DATA",
                "/tmp/boxvirt-bench-nested",
            )),
            port: var("BOXVIRT_BENCH_NESTED_PORT", "2391")
                .parse()
                .unwrap_or(2391),
        }
    }

    fn container(&self) -> String {
        format!("boxman-libvirt-{}", self.instance)
    }

    fn uri(&self) -> String {
        format!(
            "qemu+unix:///system?socket={}",
            self.data.join("libvirt-run/libvirt-sock").display()
        )
    }

    fn boxvirt(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.boxvirt);
        c.arg("--instance")
            .arg(&self.instance)
            .arg("--data-dir")
            .arg(&self.data)
            .arg("--ssh-port")
            .arg(self.port.to_string())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        c
    }

    fn up(&self) -> Result<Duration, String> {
        let t = timed(self.boxvirt(&["-q", "up", "--auto-ports", "--no-link-ssh"]))?;
        // `up` returned: libvirt must answer now (correctness, untimed).
        answers(&self.uri()).map_err(|e| format!("libvirt does not answer after up: {e}"))?;
        Ok(t)
    }

    fn down(&self) -> Result<Duration, String> {
        timed(self.boxvirt(&["-q", "down"]))
    }

    fn docker(&self, verb: &str) -> Command {
        let mut c = Command::new("docker");
        c.arg(verb).arg(self.container()).stdout(Stdio::null());
        c
    }

    /// `docker start`, then open + versions until libvirt answers.
    fn floor(&self) -> Result<Duration, String> {
        let started = Instant::now();
        timed(self.docker("start"))?;
        let uri = self.uri();
        while answers(&uri).is_err() {
            if started.elapsed() > Duration::from_secs(120) {
                return Err("libvirt did not answer within 120 s of docker start".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(started.elapsed())
    }

    fn round(&self, i: usize, samples: &mut Samples) -> Result<(), String> {
        let pairs_first = i.is_multiple_of(2);
        if pairs_first {
            samples.push(Row::Stop, timed(self.docker("stop"))?);
            samples.push(Row::Floor, self.floor()?);
        }
        samples.push(Row::Already, self.up()?);
        let mut version = Command::new(&self.boxvirt);
        version.arg("--version").stdout(Stdio::null());
        samples.push(Row::Version, timed(version)?);
        samples.push(Row::Down, self.down()?);
        samples.push(Row::Up, self.up()?);
        if !pairs_first {
            samples.push(Row::Stop, timed(self.docker("stop"))?);
            samples.push(Row::Floor, self.floor()?);
        }
        Ok(())
    }
}

/// Spawn to exit; a failure carries the command's stderr.
fn timed(mut cmd: Command) -> Result<Duration, String> {
    let started = Instant::now();
    let out = cmd
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let took = started.elapsed();
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(took)
}

fn answers(uri: &str) -> Result<(), String> {
    let conn = Connect::open(Some(uri)).map_err(|e| e.to_string())?;
    conn.lib_version().map_err(|e| e.to_string())?;
    conn.hyp_version().map_err(|e| e.to_string())?;
    Ok(())
}

#[derive(Default)]
pub struct Samples(Vec<(Row, Duration)>);

impl Samples {
    fn push(&mut self, row: Row, d: Duration) {
        eprintln!("nested: {:<45} {:>8.1} ms", row.label(), ms(d));
        self.0.push((row, d));
    }

    pub fn of(&self, row: Row) -> Vec<Duration> {
        self.0
            .iter()
            .filter(|(r, _)| *r == row)
            .map(|(_, d)| *d)
            .collect()
    }
}

fn run() -> Result<(), String> {
    virt::error::clear_error_callback();
    let bench = Bench::from_env();
    let rounds: usize = std::env::var("BOXVIRT_BENCH_NESTED_ITER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let machine = report::Machine::probe();
    eprintln!(
        "nested: instance {} in {}, {rounds} rounds",
        bench.instance,
        bench.data.display()
    );
    // Untimed: builds the image when missing or changed, fills the caches.
    let mut warm = bench.boxvirt(&["up", "--auto-ports", "--no-link-ssh"]);
    warm.stdout(Stdio::inherit());
    timed(warm)?;
    let mut samples = Samples::default();
    let result = (0..rounds).try_for_each(|i| bench.round(i, &mut samples));
    // The instance goes away whatever happened; its data dir stays for the
    // next run (delete it to measure a first `up`).
    let _ = bench.down();
    let _ = bench
        .boxvirt(&["-q", "clean", "containers", "--yes"])
        .status();
    result?;
    let text = report::markdown(&machine, rounds, &samples);
    println!("{text}");
    report::publish(&text)?;
    Ok(())
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not run it.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if let Err(e) = run() {
        eprintln!("nested bench: {e}");
        std::process::exit(1);
    }
}
