//! Several NICs from a template with one `<interface>`: the rendered
//! interface (the primary NIC, with its `mac` and `network` set) is copied
//! once per further NIC, right after it, with that NIC's MAC and network.
//! So each NIC keeps the template's model, driver and options.

use std::ops::Range;

use quick_xml::events::Event;
use quick_xml::Reader;

use super::params::Target;
use super::render::{self, Edit};
use crate::error::{Failure, Result};

const INTERFACE: &[&str] = &["domain", "devices", "interface"];
const MAC: Target = Target::Attr(&["interface", "mac"], "address");
const NETWORK: Target = Target::Attr(&["interface", "source"], "network");

/// How many `<interface>` elements the template's devices have.
pub fn count(xml: &str) -> usize {
    crate::xml::find_all(xml, &["domain", "devices", "interface", "source"]).len()
}

/// `xml` with one more interface per `(network, mac)` of `more`.
pub fn add(source: &str, xml: &str, more: &[(String, String)]) -> Result<String> {
    if more.is_empty() {
        return Ok(xml.to_string());
    }
    let range = first_interface(xml).ok_or_else(|| {
        Failure::usage(format!(
            "template {source} has no <interface> to copy for further networks"
        ))
    })?;
    let first = &xml[range.clone()];
    let line_start = xml[..range.start].rfind('\n').map_or(0, |i| i + 1);
    let indent = &xml[line_start..range.start];
    let indent = if indent.trim().is_empty() { indent } else { "" };
    let mut copies = String::new();
    for (network, mac) in more {
        copies.push('\n');
        copies.push_str(indent);
        copies.push_str(&copy(source, first, network, mac)?);
    }
    Ok(format!(
        "{}{copies}{}",
        &xml[..range.end],
        &xml[range.end..]
    ))
}

/// One interface element with its MAC and network replaced (added when
/// the template's element has none).
fn copy(source: &str, interface: &str, network: &str, mac: &str) -> Result<String> {
    let edits = [
        Edit {
            target: MAC,
            value: mac.to_string(),
        },
        Edit {
            target: NETWORK,
            value: network.to_string(),
        },
    ];
    let done = render::render(source, interface, &edits)?;
    if done.matched.iter().any(|m| !m) {
        return Err(Failure::usage(format!(
            "template {source}: its <interface> needs <mac address=...> and <source network=...> to be copied for further networks"
        )));
    }
    Ok(done.xml)
}

/// The byte range of the first `<interface>` element under `<devices>`.
fn first_interface(xml: &str) -> Option<Range<usize>> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<String> = Vec::new();
    let mut start = None;
    loop {
        let before = reader.buffer_position() as usize;
        match reader.read_event().ok()? {
            Event::Start(e) => {
                stack.push(e.name().as_ref().to_string());
                if stack == INTERFACE {
                    start = Some(before);
                }
            }
            Event::Empty(e) => {
                stack.push(e.name().as_ref().to_string());
                if stack == INTERFACE {
                    return Some(before..reader.buffer_position() as usize);
                }
                stack.pop();
            }
            Event::End(_) => {
                if stack == INTERFACE {
                    return start.map(|s| s..reader.buffer_position() as usize);
                }
                stack.pop();
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOM: &str = "<domain>\n  <devices>\n    <disk/>\n    <interface type='network'>\n      <mac address='52:54:00:00:00:01'/>\n      <source network='a'/>\n      <model type='e1000'/>\n    </interface>\n    <serial/>\n  </devices>\n</domain>";

    #[test]
    fn copies_follow_the_first_with_their_own_mac_and_network() {
        let more = [
            ("b".to_string(), "52:54:00:00:00:02".to_string()),
            ("c".to_string(), "52:54:00:00:00:03".to_string()),
        ];
        let xml = add("t", DOM, &more).unwrap();
        let sources: Vec<String> =
            crate::xml::find_all(&xml, &["domain", "devices", "interface", "source"])
                .iter()
                .map(|s| s.attr("network").unwrap().to_string())
                .collect();
        assert_eq!(sources, ["a", "b", "c"]);
        let macs = crate::xml::find_all(&xml, &["domain", "devices", "interface", "mac"]);
        assert_eq!(macs[2].attr("address"), Some("52:54:00:00:00:03"));
        assert_eq!(xml.matches("model type='e1000'").count(), 3);
        assert!(xml.contains("</interface>\n    <interface type='network'>"));
        assert!(xml.find("<serial/>") > xml.rfind("</interface>"));
        assert_eq!(count(&xml), 3);
    }

    #[test]
    fn no_more_nics_is_the_same_document_and_no_interface_is_an_error() {
        assert_eq!(add("t", DOM, &[]).unwrap(), DOM);
        let none = "<domain><devices><disk/></devices></domain>";
        let err = add("t", none, &[("b".into(), "52:54:00:00:00:02".into())]).unwrap_err();
        assert!(err.message.contains("no <interface>"), "{}", err.message);
    }
}
