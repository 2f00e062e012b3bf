//! The metadata element boxvirt stores in each domain it creates: which
//! template it came from and which volumes it made (only those are deleted
//! with the VM).

use crate::xml;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VmMetadata {
    pub template: String,
    /// (pool, volume name)
    pub volumes: Vec<(String, String)>,
}

impl VmMetadata {
    pub fn to_xml(&self) -> String {
        use quick_xml::escape::escape;
        let mut s = format!("<vm template='{}'>", escape(self.template.as_str()));
        for (pool, vol) in &self.volumes {
            s.push_str(&format!("<volume pool='{}' name='{}'/>", escape(pool.as_str()), escape(vol.as_str())));
        }
        s.push_str("</vm>");
        s
    }

    pub fn parse(text: &str) -> VmMetadata {
        VmMetadata {
            template: xml::root_attr(text, "template").unwrap_or_default(),
            volumes: xml::find_all(text, &["vm", "volume"])
                .into_iter()
                .filter_map(|v| Some((v.attr("pool")?.to_string(), v.attr("name")?.to_string())))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_a_namespace_prefix() {
        let m = VmMetadata { template: "t&1".into(), volumes: vec![("default".into(), "a.qcow2".into())] };
        assert_eq!(VmMetadata::parse(&m.to_xml()), m);
        let libvirt_form = "<boxvirt:vm xmlns:boxvirt=\"urn:boxvirt:vm:1\" template=\"rocky9\"><boxvirt:volume pool=\"p\" name=\"v\"/></boxvirt:vm>";
        let parsed = VmMetadata::parse(libvirt_form);
        assert_eq!(parsed.template, "rocky9");
        assert_eq!(parsed.volumes, vec![("p".to_string(), "v".to_string())]);
    }
}
