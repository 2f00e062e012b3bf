//! One error type that carries the exit code the user sees.
//!
//! Library layers build a [`Failure`] with the kind that fits (not found,
//! conflict, ...) and a one-line message that names the object and the next
//! step; `main` prints it and exits with [`Exit`]'s code.

use std::fmt;

/// Documented exit codes (README "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Failed = 1,
    Usage = 2,
    NotFound = 3,
    Conflict = 4,
    Connect = 5,
    Timeout = 6,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// A failure the user can act on: its message is printed as `error: <message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Failure {
            exit,
            message: message.into(),
        }
    }
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(Exit::Failed, message)
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Exit::NotFound, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(Exit::Conflict, message)
    }
    pub fn connect(message: impl Into<String>) -> Self {
        Self::new(Exit::Connect, message)
    }
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(Exit::Timeout, message)
    }
    /// Prefix the message with what was being done, keeping the exit kind.
    pub fn context(self, what: impl fmt::Display) -> Self {
        Failure {
            exit: self.exit,
            message: format!("{what}: {}", self.message),
        }
    }
}

pub type Result<T, E = Failure> = std::result::Result<T, E>;

/// The exit code for any error: the first [`Failure`] in the chain decides.
pub fn exit_of(err: &anyhow::Error) -> Exit {
    err.chain()
        .find_map(|e| e.downcast_ref::<Failure>().map(|f| f.exit))
        .unwrap_or(Exit::Failed)
}

/// The one line printed for an error: the outermost message, then causes that
/// add information (anyhow context chains), joined with ": ".
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_code_comes_from_the_failure_in_the_chain() {
        let err = anyhow::Error::new(Failure::not_found("vm 'x' not found")).context("deleting");
        assert_eq!(exit_of(&err), Exit::NotFound);
        assert_eq!(one_line(&err), "deleting: vm 'x' not found");
        assert_eq!(exit_of(&anyhow::anyhow!("plain")), Exit::Failed);
    }
}
