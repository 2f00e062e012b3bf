//! The results as Markdown: printed, and written into BENCHMARKS.md between
//! the `guest-results` markers (the rest of the file is kept).

use std::path::Path;

use crate::common::machine::{boxvirt_commit, command_line, cpu_model};
use crate::contenders::{Contender, Sample};
use crate::noise::Busy;
use crate::Results;

const BEGIN: &str = "<!-- guest-results:begin -->";
const END: &str = "<!-- guest-results:end -->";

/// Where and with what the run ran.
pub struct Machine {
    date: String,
    commit: String,
    cores: usize,
    cpu: String,
    kernel: String,
    versions: String,
    accel: String,
    start: Busy,
    end: Option<Busy>,
}

impl Machine {
    pub fn probe(libvirt: &boxvirt::libvirt::Libvirt) -> Machine {
        let cpu = cpu_model();
        let (lib, hyp) = libvirt
            .versions()
            .unwrap_or_else(|_| ("?".into(), "?".into()));
        Machine {
            date: command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            commit: boxvirt_commit(),
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            cpu,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            versions: format!(
                "libvirt {lib}, QEMU {hyp}, virt-install {}",
                command_line("virt-install", &["--version"])
            ),
            accel: kvm_note(),
            start: Busy::now(),
            end: None,
        }
    }

    pub fn finish(&mut self) {
        self.end = Some(Busy::now());
    }
}

/// Both contenders run under TCG here (see PLATFORM-FACTS.md: the KVM
/// module is PVM, which boots no stock kernel).
fn kvm_note() -> String {
    if Path::new("/sys/module/kvm_pvm").exists() {
        "TCG (`type='qemu'`: /dev/kvm is PVM here, which boots no stock kernel)".into()
    } else if Path::new("/dev/kvm").exists() {
        "boxvirt picks its accelerator; virt-install runs `--virt-type qemu` (TCG)".into()
    } else {
        "TCG (`type='qemu'`, no /dev/kvm)".into()
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn range(v: &[f64]) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if v.is_empty() {
        "-".into()
    } else {
        format!("{min:.1}–{max:.1}")
    }
}

/// Seconds to the millisecond (cached builds take a few of them).
fn fine(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "-".into()
    }
}

fn fine_range(v: &[f64]) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if v.is_empty() {
        "-".into()
    } else {
        format!("{min:.3}–{max:.3}")
    }
}

/// Median wall of the runs that succeeded, its range and the started part.
struct Stats {
    ok: usize,
    all: usize,
    wall: f64,
    range: String,
    started: f64,
}

impl Stats {
    fn of(samples: &[Sample]) -> Stats {
        let ok: Vec<&Sample> = samples.iter().filter(|s| s.error.is_none()).collect();
        let walls: Vec<f64> = ok.iter().map(|s| s.wall).collect();
        let started: Vec<f64> = ok.iter().filter_map(|s| s.started).collect();
        Stats {
            ok: ok.len(),
            all: samples.len(),
            wall: median(&walls),
            range: range(&walls),
            started: median(&started),
        }
    }
}

fn secs(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}")
    } else {
        "-".into()
    }
}

pub fn markdown(r: &Results) -> String {
    let m = &r.machine;
    let mut out = Vec::<String>::new();
    let mut line = |s: String| out.push(s);
    let partial = if r.rounds_done < r.rounds {
        format!(
            " (partial: {} of {} finished so far)",
            r.rounds_done, r.rounds
        )
    } else {
        String::new()
    };
    line(format!(
        "Run of {}: boxvirt {}, {} round(s){partial}, the contenders alternating.",
        m.date, m.commit, r.rounds
    ));
    line(String::new());
    line(format!(
        "Machine: {} cores ({}), kernel {}, {}; guests under {}.",
        m.cores, m.cpu, m.kernel, m.versions, m.accel
    ));
    line(String::new());
    create_to_ready(r, &mut line);
    image_build(r, &mut line);
    noise(r, &mut line);
    out.join("\n") + "\n"
}

fn create_to_ready(r: &Results, line: &mut impl FnMut(String)) {
    let stats: Vec<(Contender, Stats)> =
        r.samples.iter().map(|(c, s)| (*c, Stats::of(s))).collect();
    let vi_wall = stats
        .iter()
        .find(|(c, _)| *c == Contender::VirtInstall)
        .map(|(_, s)| s.wall)
        .unwrap_or(f64::NAN);
    line("#### Create to ready of the Debian 12 guest (`image build debian12`)".into());
    line(String::new());
    line("Seconds, medians of the runs that succeeded; ready means cloud-init reported done. \"started\" is the part until the VM was defined and running (boxvirt: wall minus the wait it reports; virt-install: when `virt-install` returned); the rest is boot to ready.".into());
    line(String::new());
    line("| contender | wall s | wall min–max | started s | boot to ready s | wall ÷ virt-install | runs ok |".into());
    line("|---|---:|---:|---:|---:|---:|---:|".into());
    for (c, s) in &stats {
        line(format!(
            "| {} | {} | {} | {} | {} | {:.2}x | {}/{} |",
            c.label(),
            secs(s.wall),
            s.range,
            secs(s.started),
            secs(s.wall - s.started),
            s.wall / vi_wall,
            s.ok,
            s.all
        ));
    }
    line(String::new());
    line("Every run, in order (the machine's 1-minute load average and the QEMU processes running, anyone's, when it started):".into());
    line(String::new());
    line("| round | contender | wall s | started s | load | guests running | result |".into());
    line("|---:|---|---:|---:|---:|---:|---|".into());
    let mut runs: Vec<(usize, usize, Contender, &Sample)> = Vec::new();
    for (c, samples) in &r.samples {
        for (round, s) in samples.iter().enumerate() {
            // Within a round the order alternated: first is who ran first.
            let first = if round % 2 == 0 {
                Contender::ALL[0]
            } else {
                Contender::ALL[1]
            };
            runs.push((round, usize::from(*c != first), *c, s));
        }
    }
    runs.sort_by_key(|(round, pos, _, _)| (*round, *pos));
    for (round, _, c, s) in runs {
        line(format!(
            "| {} | {} | {} | {} | {:.1} | {} | {} |",
            round + 1,
            c.tag_long(),
            secs(s.wall),
            s.started.map(secs).unwrap_or_else(|| "-".into()),
            s.busy.load1,
            s.busy.guests,
            s.error.as_deref().unwrap_or("ready")
        ));
    }
    line(String::new());
}

fn image_build(r: &Results, line: &mut impl FnMut(String)) {
    let Some(b) = &r.builds else {
        return;
    };
    line("#### `boxvirt image build debian12`".into());
    line(String::new());
    line("| build | wall s |".into());
    line("|---|---:|".into());
    let cold = match &b.cold {
        None => "not run (BOXVIRT_BENCH_GUEST_COLD=0)".to_string(),
        Some(Ok(s)) => secs(*s),
        Some(Err(e)) => format!("failed: {e}"),
    };
    line(format!(
        "| cold: `--rebuild --no-upload`, into an empty cache of the run's own | {cold} |"
    ));
    line(format!(
        "| cached: `--no-upload` (median of {}, {}) | {} |",
        b.cached.len(),
        fine_range(&b.cached),
        fine(median(&b.cached))
    ));
    line(format!(
        "| cached and already in the pool: no flags (median of {}, {}) | {} |",
        b.cached_in_pool.len(),
        fine_range(&b.cached_in_pool),
        fine(median(&b.cached_in_pool))
    ));
    line(String::new());
}

fn noise(r: &Results, line: &mut impl FnMut(String)) {
    let m = &r.machine;
    let end = m
        .end
        .map(|b| format!("{:.1} with {} QEMU processes", b.load1, b.guests))
        .unwrap_or_else(|| "?".into());
    line(format!(
        "Noise: the 1-minute load average was {:.1} at the start ({} QEMU processes running) and {end} at the end, on {} cores: other work shared the machine during the run, so single runs vary; compare the contenders within a round.",
        m.start.load1, m.start.guests, m.cores
    ));
}

/// This bench's section of BENCHMARKS.md (see common::section::publish).
pub fn publish(text: &str) -> Result<(), String> {
    crate::common::section::publish("guest", BEGIN, END, text)
}
