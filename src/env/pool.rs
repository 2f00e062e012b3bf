//! A bounded worker pool for `env apply` and `env destroy`: N threads take
//! the jobs in order, each with its own state (its libvirt connections:
//! one per worker and host, never shared between threads), and one job's
//! failure is just its result.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::hosts::Target;
use crate::error::Result;
use crate::libvirt::Libvirt;

/// Runs `work` on every job with at most `workers` at a time; the results
/// in job order (`None`: the worker died on that job).
pub fn run<J, S, R>(
    jobs: &[J],
    workers: usize,
    init: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, &J) -> R + Sync,
) -> Vec<Option<R>>
where
    J: Sync,
    R: Send,
{
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<R>>> = jobs.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers.clamp(1, jobs.len().max(1)))
            .map(|_| {
                scope.spawn(|| {
                    let mut state = init();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(job) = jobs.get(i) else { break };
                        let r = work(&mut state, job);
                        if let Ok(mut slot) = results[i].lock() {
                            *slot = Some(r);
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            // A panicked worker leaves its job's slot empty.
            let _ = h.join();
        }
    });
    results
        .into_iter()
        .map(|m| m.into_inner().ok().flatten())
        .collect()
}

/// A worker's connections, one per host, opened on first use.
pub struct Conns<'a> {
    targets: &'a [Target],
    /// The connections the command opened first, one per host.
    shared: &'a [Libvirt],
    own: HashMap<usize, Libvirt>,
}

impl<'a> Conns<'a> {
    pub fn new(targets: &'a [Target], shared: &'a [Libvirt]) -> Self {
        Conns {
            targets,
            shared,
            own: HashMap::new(),
        }
    }

    /// The worker's connection to host `h`. The test driver's file URIs
    /// give every connection a world of its own, so there the workers use
    /// the command's one connection (libvirt connections are thread-safe).
    pub fn get(&mut self, h: usize) -> Result<&Libvirt> {
        let t = &self.targets[h];
        if self.shared[h].is_test_driver() {
            return Ok(&self.shared[h]);
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = self.own.entry(h) {
            slot.insert(super::observe::connect(t)?);
        }
        Ok(&self.own[&h])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_runs_once_and_results_keep_the_job_order() {
        let jobs: Vec<u32> = (0..20).collect();
        let out = run(
            &jobs,
            3,
            || 0u32,
            |seen, j| {
                *seen += 1;
                j * 2
            },
        );
        let got: Vec<u32> = out.into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(got, jobs.iter().map(|j| j * 2).collect::<Vec<_>>());
        assert!(run(&Vec::<u32>::new(), 4, || (), |_, j| *j).is_empty());
    }
}
