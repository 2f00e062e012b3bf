//! What `env apply` and `env destroy` did, object by object: the summary
//! table (VM, host, action, state, IP, seconds), its JSON, and the exit-1
//! error that names every failure.

use serde::Serialize;
use tabled::Tabled;

use crate::error::Failure;

/// One VM or network at the end of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// "vm" or "network".
    pub kind: &'static str,
    pub name: String,
    pub host: String,
    /// created, replaced, adopted, unchanged, deleted, kept, or (when it
    /// failed) what was being done.
    pub action: &'static str,
    /// defined, running, ready, deleted, failed, not started, ...
    pub state: String,
    pub ip: Option<String>,
    pub seconds: f64,
    /// Why it failed (the whole one-line error), or a note.
    pub error: Option<String>,
}

impl Outcome {
    pub fn failed(&self) -> bool {
        self.error.is_some()
    }
}

#[derive(Debug, Clone, Tabled)]
pub struct Row {
    #[tabled(rename = "KIND")]
    pub kind: &'static str,
    #[tabled(rename = "NAME")]
    pub name: String,
    #[tabled(rename = "HOST")]
    pub host: String,
    #[tabled(rename = "ACTION")]
    pub action: &'static str,
    #[tabled(rename = "STATE")]
    pub state: String,
    #[tabled(rename = "IP")]
    pub ip: String,
    #[tabled(rename = "SECONDS")]
    pub seconds: String,
    #[tabled(rename = "ERROR")]
    pub error: String,
}

pub fn rows(outcomes: &[Outcome]) -> Vec<Row> {
    outcomes
        .iter()
        .map(|o| Row {
            kind: o.kind,
            name: o.name.clone(),
            host: o.host.clone(),
            action: o.action,
            state: o.state.clone(),
            ip: o.ip.clone().unwrap_or_else(|| "-".into()),
            seconds: format!("{:.1}", o.seconds),
            error: o.error.clone().unwrap_or_default(),
        })
        .collect()
}

/// `env apply|destroy -o json`.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub env: &'a str,
    /// False when the run changed nothing.
    pub changed: bool,
    pub failed: usize,
    pub objects: &'a [Outcome],
}

/// Exit 1 naming each failure, when there was one.
pub fn failure(verb: &str, outcomes: &[Outcome]) -> Option<Failure> {
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.failed()).collect();
    if failed.is_empty() {
        return None;
    }
    let each: Vec<String> = failed
        .iter()
        .map(|o| {
            format!(
                "{} '{}' on host '{}': {}",
                o.kind,
                o.name,
                o.host,
                o.error.as_deref().unwrap_or_default()
            )
        })
        .collect();
    Some(Failure::failed(format!(
        "{verb}: {} of {} failed: {}",
        failed.len(),
        outcomes.len(),
        each.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(name: &str, error: Option<&str>) -> Outcome {
        Outcome {
            kind: "vm",
            name: name.into(),
            host: "current".into(),
            action: "created",
            state: if error.is_some() { "failed" } else { "running" }.into(),
            ip: None,
            seconds: 1.24,
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn the_failure_names_each_failed_vm() {
        assert!(failure("env apply", &[vm("a", None)]).is_none());
        let f = failure(
            "env apply",
            &[vm("a", None), vm("b", Some("boom")), vm("c", Some("bang"))],
        )
        .unwrap();
        assert_eq!(f.exit, crate::error::Exit::Failed);
        assert_eq!(
            f.message,
            "env apply: 2 of 3 failed: vm 'b' on host 'current': boom; vm 'c' on host 'current': bang"
        );
        assert_eq!(rows(&[vm("a", None)])[0].seconds, "1.2");
    }
}
