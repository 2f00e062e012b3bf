//! What a domain carries when an environment made it: the environment's
//! name, its file's digest and the config fields the VM was made with, as
//! an `<env>` element inside boxvirt's metadata (`<vm>`). State lives in
//! libvirt: `env plan` and `env list` read it back from any directory.

use std::collections::BTreeMap;

use crate::xml;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvMark {
    pub env: String,
    /// sha256 (hex) of the file's bytes at the apply that made the VM.
    pub digest: String,
    /// [`super::expand::VmSpec::config`] at that apply.
    pub config: BTreeMap<String, String>,
}

impl EnvMark {
    /// The element to put inside boxvirt's `<vm>` metadata element.
    pub fn to_xml(&self) -> String {
        use quick_xml::escape::escape;
        let mut s = format!(
            "<env name='{}' digest='{}'>",
            escape(self.env.as_str()),
            escape(self.digest.as_str())
        );
        for (k, v) in &self.config {
            s.push_str(&format!(
                "<field key='{}' value='{}'/>",
                escape(k.as_str()),
                escape(v.as_str())
            ));
        }
        s.push_str("</env>");
        s
    }

    /// The mark in a domain's boxvirt metadata; `None` when the VM belongs
    /// to no environment.
    pub fn parse(metadata: &str) -> Option<EnvMark> {
        let env = xml::find_first(metadata, &["vm", "env"])?;
        Some(EnvMark {
            env: env.attr("name")?.to_string(),
            digest: env.attr("digest").unwrap_or_default().to_string(),
            config: xml::find_all(metadata, &["vm", "env", "field"])
                .into_iter()
                .filter_map(|f| Some((f.attr("key")?.to_string(), f.attr("value")?.to_string())))
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_inside_the_vm_element_with_libvirts_prefix() {
        let mark = EnvMark {
            env: "lab".into(),
            digest: "ab12".into(),
            config: [("memory", "1024"), ("networks", "a,b'<&")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let ours = format!("<vm template='tiny'>{}</vm>", mark.to_xml());
        assert_eq!(EnvMark::parse(&ours), Some(mark.clone()));
        let libvirt_form = "<boxvirt:vm xmlns:boxvirt=\"urn:boxvirt:vm:1\" template=\"tiny\"><boxvirt:env name=\"lab\" digest=\"ab12\"><boxvirt:field key=\"memory\" value=\"1024\"/><boxvirt:field key=\"networks\" value=\"a,b'&lt;&amp;\"/></boxvirt:env></boxvirt:vm>";
        assert_eq!(EnvMark::parse(libvirt_form), Some(mark));
    }

    #[test]
    fn a_vm_without_an_env_has_no_mark() {
        assert_eq!(EnvMark::parse("<vm template='tiny'/>"), None);
        assert_eq!(EnvMark::parse(""), None);
    }
}
