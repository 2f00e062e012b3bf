//! The results as a Markdown section (printed, and written into
//! BENCHMARKS.md between the `results` markers), with the machine it ran on.

use std::time::Duration;

use crate::common::machine::Machine;
use crate::common::section::{ratio, verdict};
use crate::measure::{median, ms, Sample};
use crate::trace::Trace;
use crate::Contender;

const BEGIN: &str = "<!-- results:begin -->";
const END: &str = "<!-- results:end -->";

/// Aims from the issue.
const AIM_CREATE_WALL_VS_FLOOR: f64 = 1.1;
const AIM_CPU_LESS_THAN_VIRT_INSTALL: f64 = 5.0;
const AIM_LIST_WALL_VS_VIRSH: f64 = 1.0;
const AIM_DELETE_WALL_VS_FLOOR: f64 = 1.2;
const AIM_DOCTOR_MS: f64 = 1000.0;

pub struct List {
    pub boxvirt: Vec<Sample>,
    pub virsh: Vec<Sample>,
    /// Domains on the daemon while listing (the bench's plus any others).
    pub domains: usize,
    /// (label, one traced run)
    pub traces: Vec<(String, Trace)>,
}

pub struct Results {
    pub machine: Machine,
    pub iterations: usize,
    pub list_iterations: usize,
    /// Per contender, in `Contender::ALL` order.
    pub create: Vec<Vec<Sample>>,
    /// (label, one traced run) per contender.
    pub create_traces: Vec<(String, Trace)>,
    pub list: List,
    pub teardown: crate::teardown::Teardown,
}

/// Medians of one contender's samples.
struct Stats {
    wall: Duration,
    min: Duration,
    max: Duration,
    cpu: Duration,
    daemon: Option<Duration>,
}

impl Stats {
    fn of(samples: &[Sample]) -> Stats {
        let wall: Vec<Duration> = samples.iter().map(|s| s.wall).collect();
        let daemon: Vec<Duration> = samples.iter().filter_map(|s| s.daemon_cpu).collect();
        Stats {
            wall: median(&wall),
            min: wall.iter().copied().min().unwrap_or_default(),
            max: wall.iter().copied().max().unwrap_or_default(),
            cpu: median(&samples.iter().map(|s| s.cpu).collect::<Vec<_>>()),
            daemon: (daemon.len() == samples.len() && !daemon.is_empty()).then(|| median(&daemon)),
        }
    }

    fn cells(&self) -> String {
        let daemon = self
            .daemon
            .map(|d| format!("{:.1}", ms(d)))
            .unwrap_or_else(|| "-".into());
        format!(
            "{:.1} | {:.0}–{:.0} | {:.1} | {daemon}",
            ms(self.wall),
            ms(self.min),
            ms(self.max),
            ms(self.cpu)
        )
    }
}

impl Results {
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let stats: Vec<Stats> = self.create.iter().map(|s| Stats::of(s)).collect();
        let at = |who: Contender| &stats[Contender::ALL.iter().position(|c| *c == who).unwrap()];
        let (floor, vi) = (at(Contender::Floor), at(Contender::VirtInstall));
        let (bxb, bx, bxs) = (
            at(Contender::BoxvirtBare),
            at(Contender::Boxvirt),
            at(Contender::BoxvirtSeeded),
        );
        let mut s = String::new();
        let mut line = |t: String| {
            s.push_str(&t);
            s.push('\n');
        };

        line(format!(
            "Run of {}: boxvirt {}, {} create+start rounds, {} list rounds.",
            m.date, m.commit, self.iterations, self.list_iterations
        ));
        line(String::new());
        line(format!(
            "Machine: {} cores ({}), kernel {}, libvirt {}, QEMU {}, virt-install {}; load average at the start {}.",
            m.cores, m.cpu, m.kernel, m.libvirt, m.qemu, m.virt_install, m.load
        ));
        line(String::new());
        line("#### Create + start of the tiny guest".into());
        line(String::new());
        line("Medians; the timed region ends when the start call returns (QEMU spawned), not at guest boot.".into());
        line(String::new());
        line("| contender | wall ms | wall min–max | client CPU ms | libvirtd CPU ms | wall ÷ floor | virt-install CPU ÷ this |".into());
        line("|---|---:|---:|---:|---:|---:|---:|".into());
        for (who, st) in Contender::ALL.iter().zip(&stats) {
            line(format!(
                "| {} | {} | {:.2}x | {:.1}x |",
                who.label(),
                st.cells(),
                ratio(st.wall, floor.wall),
                ratio(vi.cpu, st.cpu)
            ));
        }
        line(String::new());

        let (lb, lv) = (Stats::of(&self.list.boxvirt), Stats::of(&self.list.virsh));
        line(format!(
            "#### List with {} defined domains ({} on the daemon in all)",
            crate::LIST_DOMAINS,
            self.list.domains
        ));
        line(String::new());
        line("| contender | wall ms | wall min–max | client CPU ms | libvirtd CPU ms | wall ÷ virsh |".into());
        line("|---|---:|---:|---:|---:|---:|".into());
        line(format!(
            "| boxvirt vm list | {} | {:.2}x |",
            lb.cells(),
            ratio(lb.wall, lv.wall)
        ));
        line(format!("| virsh list --all | {} | 1.00x |", lv.cells()));
        line(String::new());

        let td = &self.teardown;
        let (db, df, doc) = (
            Stats::of(&td.boxvirt),
            Stats::of(&td.floor),
            Stats::of(&td.doctor),
        );
        line("#### Delete of a running tiny guest, and doctor".into());
        line(String::new());
        line("| contender | wall ms | wall min–max | client CPU ms | libvirtd CPU ms | wall ÷ floor |".into());
        line("|---|---:|---:|---:|---:|---:|".into());
        line(format!(
            "| boxvirt vm delete --yes (made by the default vm create --start) | {} | {:.2}x |",
            db.cells(),
            ratio(db.wall, df.wall)
        ));
        line(format!(
            "| floor: minimal Rust program (open, destroy, undefine) | {} | 1.00x |",
            df.cells()
        ));
        line(format!(
            "| boxvirt doctor (local socket) | {} | - |",
            doc.cells()
        ));
        line(String::new());

        let list_ratio = ratio(lb.wall, lv.wall);
        line("#### Aims".into());
        line(String::new());
        for (who, st) in [
            (Contender::BoxvirtBare, bxb),
            (Contender::Boxvirt, bx),
            (Contender::BoxvirtSeeded, bxs),
        ] {
            let create_ratio = ratio(st.wall, floor.wall);
            let cpu_less = ratio(vi.cpu, st.cpu);
            line(format!("`{}`:", who.label()));
            line(String::new());
            line(format!(
                "- create+start wall within {AIM_CREATE_WALL_VS_FLOOR}x of the floor: {:.1} ms vs {:.1} ms = {create_ratio:.2}x: {}",
                ms(st.wall),
                ms(floor.wall),
                verdict(create_ratio <= AIM_CREATE_WALL_VS_FLOOR)
            ));
            line(format!(
                "- at least {AIM_CPU_LESS_THAN_VIRT_INSTALL}x less CPU than virt-install: {:.1} ms vs {:.1} ms = {cpu_less:.1}x less: {}",
                ms(st.cpu),
                ms(vi.cpu),
                verdict(cpu_less >= AIM_CPU_LESS_THAN_VIRT_INSTALL)
            ));
            line(String::new());
        }
        line(format!(
            "`boxvirt vm list`: wall within {AIM_LIST_WALL_VS_VIRSH}x of `virsh list --all`: {:.1} ms vs {:.1} ms = {list_ratio:.2}x: {}",
            ms(lb.wall),
            ms(lv.wall),
            verdict(list_ratio <= AIM_LIST_WALL_VS_VIRSH)
        ));
        line(String::new());
        let delete_ratio = ratio(db.wall, df.wall);
        line(format!(
            "`boxvirt vm delete` of a running VM: wall within {AIM_DELETE_WALL_VS_FLOOR}x of the floor (destroy + undefine): {:.1} ms vs {:.1} ms = {delete_ratio:.2}x: {}",
            ms(db.wall),
            ms(df.wall),
            verdict(delete_ratio <= AIM_DELETE_WALL_VS_FLOOR)
        ));
        line(String::new());
        line(format!(
            "`boxvirt doctor` on the local socket under {AIM_DOCTOR_MS:.0} ms: {:.1} ms: {}",
            ms(doc.wall),
            verdict(ms(doc.wall) < AIM_DOCTOR_MS)
        ));
        line(String::new());

        line(
            "#### libvirt round trips (one more, untimed run of each, libvirt's client RPC log)"
                .into(),
        );
        line(String::new());
        line("| command | calls | which | calls of 5 ms or more (call to reply) |".into());
        line("|---|---:|---|---|".into());
        for (label, t) in self.create_traces.iter().chain(&self.list.traces) {
            line(format!(
                "| {label} | {} | {} | {} |",
                t.calls,
                t.summary(),
                t.slow_summary()
            ));
        }
        if let Some(pid) = m.daemon_pid {
            line(String::new());
            line(format!(
                "libvirtd CPU: all threads of pid {pid} (from /proc/{pid}/task/*/schedstat), not QEMU's; other clients of the same daemon add noise."
            ));
        }
        s
    }
}

/// This bench's section of BENCHMARKS.md (see common::section::publish).
pub fn publish(text: &str) -> Result<(), String> {
    crate::common::section::publish("lifecycle", BEGIN, END, text)
}
