//! Guideline 5, AppArmor half: a profile only means something where the
//! kernel has AppArmor enabled.

use std::path::Path;

const ENABLED: &str = "/sys/module/apparmor/parameters/enabled";

/// True when this machine's kernel has AppArmor enabled ("Y").
pub fn kernel_has_apparmor() -> bool {
    enabled_in(Path::new(ENABLED))
}

fn enabled_in(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .map(|s| s.trim() == "Y")
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_y_means_enabled() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("enabled");
        assert!(!enabled_in(&f));
        std::fs::write(&f, "N\n").unwrap();
        assert!(!enabled_in(&f));
        std::fs::write(&f, "Y\n").unwrap();
        assert!(enabled_in(&f));
    }
}
