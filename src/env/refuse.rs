//! What `env apply` refuses before it touches any host: network changes,
//! and changed or dropped VMs without `--replace` (nothing is destroyed
//! silently).

use super::plan::{Object, Plan, Verb};
use crate::error::{Failure, Result};

/// Changes of networks are refused; changed VMs and deletions only with
/// `--replace`. Nothing is destroyed silently.
pub fn refusals(plan: &Plan, replace: bool) -> Result<()> {
    let actions = || {
        plan.hosts
            .iter()
            .flat_map(|h| h.actions.iter().map(move |a| (h, a)))
    };
    if let Some((h, a)) =
        actions().find(|(_, a)| a.object == Object::Network && a.action == Verb::Change)
    {
        return Err(Failure::conflict(format!(
            "network '{}' on host '{}' differs from {}: {}; change the file or delete the network (its VMs first)",
            a.name, h.host, plan.file, a.detail
        )));
    }
    let destructive: Vec<String> = actions()
        .filter(|(_, a)| a.object == Object::Vm && matches!(a.action, Verb::Change | Verb::Delete))
        .map(|(h, a)| format!("{} on host '{}' ({})", a.name, h.host, a.detail))
        .collect();
    if !replace && !destructive.is_empty() {
        return Err(Failure::conflict(format!(
            "needs replace: {}; pass --replace to delete and re-create them, nothing was changed",
            destructive.join("; ")
        )));
    }
    // An adopted VM that differs cannot be taken over as it is either.
    if let Some((h, a)) = actions().find(|(_, a)| a.action == Verb::Adopt && !a.changes.is_empty())
    {
        return Err(Failure::conflict(format!(
            "vm '{}' on host '{}' cannot be adopted as it is: {}",
            a.name, h.host, a.detail
        )));
    }
    Ok(())
}
