//! Undo steps for a multi-step operation: if a later step fails, what this
//! run created is removed again, newest first, and the error says so.

use crate::error::Failure;

type Undo<'a> = Box<dyn FnOnce() -> Result<(), Failure> + 'a>;

#[derive(Default)]
pub struct Rollback<'a> {
    steps: Vec<(String, Undo<'a>)>,
}

impl<'a> Rollback<'a> {
    pub fn new() -> Self {
        Rollback { steps: Vec::new() }
    }

    /// Register how to undo something just created (`what` names it).
    pub fn push(
        &mut self,
        what: impl Into<String>,
        undo: impl FnOnce() -> Result<(), Failure> + 'a,
    ) {
        self.steps.push((what.into(), Box::new(undo)));
    }

    /// The operation succeeded: keep everything.
    pub fn commit(mut self) {
        self.steps.clear();
    }

    /// Undo everything, then return `err` with a note of what was undone
    /// (and what could not be, so the user can clean up by hand).
    pub fn fail(mut self, err: Failure) -> Failure {
        let mut undone = Vec::new();
        let mut stuck = Vec::new();
        while let Some((what, undo)) = self.steps.pop() {
            match undo() {
                Ok(()) => undone.push(what),
                Err(e) => stuck.push(format!("{what} ({})", e.message)),
            }
        }
        let mut msg = err.message.clone();
        if !undone.is_empty() {
            msg.push_str(&format!("; rolled back: {}", undone.join(", ")));
        }
        if !stuck.is_empty() {
            msg.push_str(&format!("; could NOT roll back: {}", stuck.join(", ")));
        }
        Failure {
            exit: err.exit,
            message: msg,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn undoes_newest_first_and_reports() {
        let log = RefCell::new(Vec::new());
        let mut rb = Rollback::new();
        rb.push("volume v", || {
            log.borrow_mut().push("v");
            Ok(())
        });
        rb.push("domain d", || {
            log.borrow_mut().push("d");
            Err(Failure::failed("busy"))
        });
        let err = rb.fail(Failure::timeout("starting failed"));
        assert_eq!(*log.borrow(), vec!["d", "v"]);
        assert_eq!(err.exit, crate::error::Exit::Timeout);
        assert!(err.message.contains("rolled back: volume v"));
        assert!(err.message.contains("could NOT roll back: domain d (busy)"));
    }
}
