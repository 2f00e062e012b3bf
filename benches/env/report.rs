//! The results as a Markdown section (printed, and written into
//! BENCHMARKS.md between the `env-results` markers): per K, the median wall
//! of each contender and the ratios the issue asks about, then the aims.

use std::time::Duration;

use crate::common::machine::Machine;
use crate::common::measure::{median, ms};
use crate::common::section::{ratio, verdict};
use crate::{Config, Contender, Samples, Timed};

const BEGIN: &str = "<!-- env-results:begin -->";
const END: &str = "<!-- env-results:end -->";

/// Aims from the issue (at K = 10).
const AIM_APPLY_VS_FLOOR: f64 = 1.3;
const AIM_SEQUENTIAL_VS_APPLY: f64 = 3.0;
const AIM_DESTROY_VS_FLOOR: f64 = 1.3;
const AIM_K: usize = 10;

/// Medians of one K: create per contender (ALL order), and the removal of
/// apply's and the floor's VMs.
struct Row {
    k: usize,
    create: Vec<Duration>,
    destroy: Duration,
    floor_delete: Duration,
}

impl Row {
    fn of(k: usize, per: &[Vec<Timed>]) -> Row {
        let at = |who: Contender| &per[Contender::ALL.iter().position(|c| *c == who).unwrap_or(0)];
        let removes =
            |ts: &[Timed]| median(&ts.iter().filter_map(|t| t.remove).collect::<Vec<_>>());
        Row {
            k,
            create: per
                .iter()
                .map(|ts| median(&ts.iter().map(|t| t.create).collect::<Vec<_>>()))
                .collect(),
            destroy: removes(at(Contender::Apply)),
            floor_delete: removes(at(Contender::Floor)),
        }
    }

    fn get(&self, who: Contender) -> Duration {
        self.create[Contender::ALL.iter().position(|c| *c == who).unwrap_or(0)]
    }
}

pub fn markdown(cfg: &Config, m: &Machine, load_after: &str, samples: &Samples) -> String {
    let rows: Vec<Row> = cfg
        .ks
        .iter()
        .zip(samples)
        .map(|(k, per)| Row::of(*k, per))
        .collect();
    let n = cfg.parallel;
    let mut s = String::new();
    let mut line = |t: String| {
        s.push_str(&t);
        s.push('\n');
    };
    line(format!(
        "Run of {}: boxvirt {}, {} rounds per K, N = {n}.",
        m.date, m.commit, cfg.rounds
    ));
    line(String::new());
    line(format!(
        "Machine: {} cores ({}), kernel {}, libvirt {}, QEMU {} (TCG), virt-install {}. \
         Load average {} at the start, {load_after} at the end: {}.",
        m.cores,
        m.cpu,
        m.kernel,
        m.libvirt,
        m.qemu,
        m.virt_install,
        m.load,
        busy_or_quiet(&m.load, m.cores)
    ));
    line(String::new());
    line("#### Make and start K tiny guests (median wall, ms)".into());
    line(String::new());
    line(format!(
        "| K | floor (N threads) | env apply --parallel {n} --start | … --no-seed | K × vm create --start | K × virt-install ({n} at a time) | apply ÷ floor | sequential ÷ apply | sequential ÷ floor | virt-install ÷ apply |"
    ));
    line("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|".into());
    for r in &rows {
        let apply = r.get(Contender::Apply);
        line(format!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2}x | {:.2}x | {:.2}x | {:.2}x |",
            r.k,
            ms(r.get(Contender::Floor)),
            ms(apply),
            ms(r.get(Contender::ApplyNoSeed)),
            ms(r.get(Contender::Sequential)),
            ms(r.get(Contender::VirtInstall)),
            ratio(apply, r.get(Contender::Floor)),
            ratio(r.get(Contender::Sequential), apply),
            ratio(r.get(Contender::Sequential), r.get(Contender::Floor)),
            ratio(r.get(Contender::VirtInstall), apply),
        ));
    }
    line(String::new());
    line("#### Remove them (median wall, ms)".into());
    line(String::new());
    line(format!(
        "| K | env destroy -y | floor: destroy + undefine ({n} threads) | destroy ÷ floor |"
    ));
    line("|---:|---:|---:|---:|".into());
    for r in &rows {
        line(format!(
            "| {} | {:.0} | {:.0} | {:.2}x |",
            r.k,
            ms(r.destroy),
            ms(r.floor_delete),
            ratio(r.destroy, r.floor_delete)
        ));
    }
    line(String::new());
    if let Some(r) = rows.iter().find(|r| r.k == AIM_K) {
        let apply = r.get(Contender::Apply);
        let (af, sa, df) = (
            ratio(apply, r.get(Contender::Floor)),
            ratio(r.get(Contender::Sequential), apply),
            ratio(r.destroy, r.floor_delete),
        );
        line(format!("#### Aims (K = {AIM_K})"));
        line(String::new());
        line(format!(
            "- apply within {AIM_APPLY_VS_FLOOR}x of the floor: {af:.2}x: {}",
            verdict(af <= AIM_APPLY_VS_FLOOR)
        ));
        line(format!(
            "- apply at least {AIM_SEQUENTIAL_VS_APPLY}x faster than the sequential creates: {sa:.2}x: {} \
             (the floor itself is {:.2}x faster than them here: the most any tool reaches on this machine)",
            verdict(sa >= AIM_SEQUENTIAL_VS_APPLY),
            ratio(r.get(Contender::Sequential), r.get(Contender::Floor)),
        ));
        line(format!(
            "- destroy within {AIM_DESTROY_VS_FLOOR}x of its floor: {df:.2}x: {}",
            verdict(df <= AIM_DESTROY_VS_FLOOR)
        ));
        line(String::new());
    }
    s
}

/// "quiet" when the 1-minute load average at the start was below the core
/// count, else a warning that other work shared the machine.
fn busy_or_quiet(load: &str, cores: usize) -> &'static str {
    let first: f64 = load
        .split_whitespace()
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or(f64::MAX);
    if first < cores as f64 {
        "a quiet machine"
    } else {
        "**shared and busy** (other work ran meanwhile), so the figures are noisy"
    }
}

/// This bench's section of BENCHMARKS.md (see common::section::publish).
pub fn publish(text: &str) -> Result<(), String> {
    crate::common::section::publish("env", BEGIN, END, text)
}
