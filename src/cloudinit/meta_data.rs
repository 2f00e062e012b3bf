//! meta-data: the instance-id and the hostname.

use super::yaml::quote;
use super::SeedSpec;
use crate::error::Result;

/// `instance-id` and `local-hostname`; cloud-init runs its per-instance
/// modules again whenever the instance-id changes (a clone, a re-create).
pub fn meta_data(spec: &SeedSpec) -> String {
    format!(
        "instance-id: {}\nlocal-hostname: {}\n",
        quote(&spec.instance_id),
        quote(&spec.hostname)
    )
}

/// A new instance-id for VM `name`: `iid-<name>-<16 random hex digits>`, so
/// no two creates (and no clone) share one.
pub fn new_instance_id(name: &str) -> Result<String> {
    let random = super::random_bytes::<8>("the instance-id")?;
    Ok(format!("iid-{name}-{}", hex::encode(random)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_are_unique_and_valid_words() {
        let a = new_instance_id("tiny-1").unwrap();
        let b = new_instance_id("tiny-1").unwrap();
        assert_ne!(a, b);
        assert!(
            a.starts_with("iid-tiny-1-") && a.len() == "iid-tiny-1-".len() + 16,
            "{a}"
        );
        super::super::check_word("instance id", &a, 128).unwrap();
    }
}
