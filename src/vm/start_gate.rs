//! Keeps the creates running together in one process (`env apply`'s
//! workers) from looking at the daemon's domains while one of their
//! domains starts. libvirt holds a domain's lock while QEMU launches, and
//! listing the domains (the address-slot claim, the leftover check) waits
//! for that lock: creates that mix claims and starts ran one start at a
//! time. Through the gate, the workers' preparations (everything before
//! the start) run together, then their starts together, as the floor's
//! plain define + start threads do.

use std::sync::{Condvar, Mutex};

#[derive(Debug, Default)]
pub struct StartGate {
    inside: Mutex<Inside>,
    changed: Condvar,
}

/// How many are inside, per phase; only one phase at a time.
#[derive(Debug, Default)]
struct Inside {
    preparing: usize,
    starting: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Everything of a create before its start (reads other domains).
    Prepare,
    /// The domain start.
    Start,
}

/// Held while in a phase; leaving lets the other phase in.
#[derive(Debug)]
pub struct Pass<'a> {
    gate: &'a StartGate,
    phase: Phase,
}

impl StartGate {
    /// Waits until no one is in the other phase, then enters `phase`.
    pub fn enter(&self, phase: Phase) -> Pass<'_> {
        let mut inside = self.inside.lock().unwrap_or_else(|e| e.into_inner());
        while inside.others(phase) > 0 {
            inside = self.changed.wait(inside).unwrap_or_else(|e| e.into_inner());
        }
        *inside.count(phase) += 1;
        Pass { gate: self, phase }
    }
}

impl Inside {
    fn count(&mut self, phase: Phase) -> &mut usize {
        match phase {
            Phase::Prepare => &mut self.preparing,
            Phase::Start => &mut self.starting,
        }
    }

    fn others(&self, phase: Phase) -> usize {
        match phase {
            Phase::Prepare => self.starting,
            Phase::Start => self.preparing,
        }
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let mut inside = self.gate.inside.lock().unwrap_or_else(|e| e.into_inner());
        *inside.count(self.phase) -= 1;
        drop(inside);
        self.gate.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn the_two_phases_never_overlap_and_each_runs_together() {
        let gate = Arc::new(StartGate::default());
        let (preparing, starting) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (gate, preparing, starting) = (
                    Arc::clone(&gate),
                    Arc::clone(&preparing),
                    Arc::clone(&starting),
                );
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        {
                            let _p = gate.enter(Phase::Prepare);
                            preparing.fetch_add(1, Ordering::SeqCst);
                            assert_eq!(starting.load(Ordering::SeqCst), 0);
                            std::thread::sleep(Duration::from_millis(5));
                            preparing.fetch_sub(1, Ordering::SeqCst);
                        }
                        let _s = gate.enter(Phase::Start);
                        starting.fetch_add(1, Ordering::SeqCst);
                        assert_eq!(preparing.load(Ordering::SeqCst), 0);
                        std::thread::sleep(Duration::from_millis(5));
                        starting.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }

    #[test]
    fn a_second_preparation_enters_while_the_first_is_inside() {
        let gate = Arc::new(StartGate::default());
        let first = gate.enter(Phase::Prepare);
        let (tx, rx) = std::sync::mpsc::channel();
        let g = Arc::clone(&gate);
        std::thread::spawn(move || {
            let _second = g.enter(Phase::Prepare);
            tx.send(()).unwrap();
        });
        rx.recv().unwrap();
        drop(first);
    }
}
