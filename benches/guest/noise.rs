//! How busy the machine was when a run started: the bench shares it with
//! other work, and a guest under TCG competes for the same cores.

/// The 1-minute load average.
pub fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// QEMU processes running now (other guests, anyone's).
pub fn guests_running() -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm"))
                .map(|c| c.trim_end().starts_with("qemu-system"))
                .unwrap_or(false)
        })
        .count()
}

/// What was running when a run started.
#[derive(Clone, Copy)]
pub struct Busy {
    pub load1: f64,
    pub guests: usize,
}

impl Busy {
    pub fn now() -> Busy {
        Busy {
            load1: load1(),
            guests: guests_running(),
        }
    }
}
