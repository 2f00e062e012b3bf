//! A bench's knobs from the environment, and the tools it compares with.

/// A positive number from `key`, or `default` when it is not set.
pub fn env_usize(key: &str, default: usize) -> Result<usize, String> {
    match std::env::var(key) {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{key}={v}: want a positive number")),
        Err(_) => Ok(default),
    }
}

/// An error naming the first of `tools` that is not on PATH.
pub fn require_tools(tools: &[&str]) -> Result<(), String> {
    for tool in tools {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            return Err(format!(
                "'{tool}' is not installed; the bench compares against it"
            ));
        }
    }
    Ok(())
}
