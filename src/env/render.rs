//! `env plan` for people (one table row per action, then one summary line)
//! and for programs (JSON, README "env plan" documents the schema).

use serde::Serialize;
use tabled::Tabled;

use super::plan::{Object, Plan, Verb};

#[derive(Debug, Clone, Tabled)]
pub struct Row {
    #[tabled(rename = "HOST")]
    pub host: String,
    #[tabled(rename = "KIND")]
    pub kind: &'static str,
    #[tabled(rename = "NAME")]
    pub name: String,
    #[tabled(rename = "ACTION")]
    pub action: &'static str,
    #[tabled(rename = "DETAIL")]
    pub detail: String,
}

pub fn rows(plan: &Plan) -> Vec<Row> {
    plan.hosts
        .iter()
        .flat_map(|h| {
            h.actions.iter().map(|a| Row {
                host: h.host.clone(),
                kind: match a.object {
                    Object::Network => "network",
                    Object::Vm => "vm",
                },
                name: a.name.clone(),
                action: a.action.as_str(),
                detail: a.detail.clone(),
            })
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub create: usize,
    pub keep: usize,
    pub change: usize,
    pub adopt: usize,
    pub delete: usize,
    /// True when apply would change nothing.
    pub converged: bool,
}

pub fn summary(plan: &Plan) -> Summary {
    Summary {
        create: plan.count(Verb::Create),
        keep: plan.count(Verb::Keep),
        change: plan.count(Verb::Change),
        adopt: plan.count(Verb::Adopt),
        delete: plan.count(Verb::Delete),
        converged: plan.is_converged(),
    }
}

/// The JSON document: the plan and its summary.
#[derive(Debug, Clone, Serialize)]
pub struct PlanJson<'a> {
    #[serde(flatten)]
    pub plan: &'a Plan,
    pub summary: Summary,
}

/// The line under the table.
pub fn summary_line(plan: &Plan) -> String {
    let s = summary(plan);
    if s.converged {
        return format!("environment '{}' is up to date: nothing to do", plan.env);
    }
    let mut line = format!(
        "environment '{}': {} to create, {} to change, {} to delete, {} unchanged",
        plan.env, s.create, s.change, s.delete, s.keep
    );
    if s.adopt > 0 {
        line.push_str(&format!(", {} to adopt", s.adopt));
    }
    if s.change > 0 {
        line.push_str("; changes need 'env apply --replace'");
    }
    line
}
