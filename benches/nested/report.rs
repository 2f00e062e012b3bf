//! The results as a Markdown section (printed, and written into
//! BENCHMARKS.md between the `nested` markers).

use crate::common::machine::{boxvirt_commit, command_line};
use crate::common::measure::{median, ms};
use crate::common::section::verdict;
use crate::{Row, Samples, ROWS};

const BEGIN: &str = "<!-- nested:begin -->";
const END: &str = "<!-- nested:end -->";

/// Aims from issue 9.
const AIM_UP_VS_FASTEST_FLOOR: f64 = 1.3;
const AIM_DOWN_VS_STOP: f64 = 1.2;
const AIM_ALREADY_UP_MS: f64 = 50.0;

pub struct Machine {
    date: String,
    commit: String,
    cores: usize,
    kernel: String,
    docker: String,
    load: String,
}

impl Machine {
    pub fn probe() -> Machine {
        Machine {
            date: command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            commit: boxvirt_commit(),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel: command_line("uname", &["-r"]),
            docker: command_line("docker", &["version", "--format", "{{.Server.Version}}"]),
            load: std::fs::read_to_string("/proc/loadavg")
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
        }
    }
}

pub fn markdown(m: &Machine, rounds: usize, s: &Samples) -> String {
    let mut out = String::new();
    let mut line = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    line(format!(
        "Run of {}: boxvirt {}, {rounds} rounds.\n",
        m.date, m.commit
    ));
    line(format!(
        "Machine: {} cores, kernel {}, Docker {}; load average at the start {}.\n",
        m.cores, m.kernel, m.docker, m.load
    ));
    line("| row | median ms | min ms | max ms |".into());
    line("|---|---:|---:|---:|".into());
    for row in ROWS {
        let v = s.of(row);
        let (min, max) = (
            v.iter().min().copied().unwrap_or_default(),
            v.iter().max().copied().unwrap_or_default(),
        );
        line(format!(
            "| {} | {:.0} | {:.0} | {:.0} |",
            row.label(),
            ms(median(&v)),
            ms(min),
            ms(max)
        ));
    }
    let up = ms(median(&s.of(Row::Up)));
    let floor = s.of(Row::Floor);
    let fastest = ms(floor.iter().min().copied().unwrap_or_default());
    let slowest = ms(floor.iter().max().copied().unwrap_or_default());
    let down = ms(median(&s.of(Row::Down)));
    let stop = ms(median(&s.of(Row::Stop)));
    let already = ms(median(&s.of(Row::Already)));
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    line(String::new());
    line("Aims (issue 9):\n".into());
    line(format!(
        "- warm `up` within {AIM_UP_VS_FASTEST_FLOOR}x of the fastest floor: {up:.0} ms vs {fastest:.0} ms = {:.2}x: {}",
        ratio(up, fastest),
        verdict(ratio(up, fastest) <= AIM_UP_VS_FASTEST_FLOOR)
    ));
    line(format!(
        "- the floor fast in every start (not bimodal): slowest ÷ fastest = {slowest:.0} ÷ {fastest:.0} ms = {:.2}x",
        ratio(slowest, fastest)
    ));
    line(format!(
        "- `down` within {AIM_DOWN_VS_STOP}x of `docker stop` (medians): {down:.0} ms vs {stop:.0} ms = {:.2}x: {}",
        ratio(down, stop),
        verdict(ratio(down, stop) <= AIM_DOWN_VS_STOP)
    ));
    let version = ms(median(&s.of(Row::Version)));
    line(format!(
        "- `up` when already up at most {AIM_ALREADY_UP_MS:.0} ms: {already:.1} ms: {} (of which starting the binary, `--version`: {version:.1} ms)",
        verdict(already <= AIM_ALREADY_UP_MS)
    ));
    out
}

/// This bench's section of BENCHMARKS.md (see common::section::publish).
pub fn publish(text: &str) -> Result<(), String> {
    crate::common::section::publish("nested", BEGIN, END, text)
}
