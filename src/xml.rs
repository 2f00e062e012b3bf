//! Reading values out of libvirt XML (capabilities, domain and network
//! descriptions) with quick-xml's event reader: no model of libvirt's schema,
//! just "the elements at this path, their attributes and text".

use std::collections::BTreeMap;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// One element found at a path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub attrs: BTreeMap<String, String>,
    /// Concatenated, unescaped text directly inside the element.
    pub text: String,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }
}

fn attrs_of(e: &BytesStart) -> BTreeMap<String, String> {
    e.attributes()
        .filter_map(|a| a.ok())
        .map(|a| {
            let key = a.key.as_ref().to_string();
            let value = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map(|v| v.into_owned())
                .unwrap_or_else(|_| a.value.to_string());
            (key, value)
        })
        .collect()
}

/// Every element whose path from the root equals `path` (e.g.
/// `["capabilities", "guest", "arch", "domain"]`), comparing local names
/// (`boxvirt:vm` matches `vm`). Malformed XML yields what was read before
/// the error.
pub fn find_all(xml: &str, path: &[&str]) -> Vec<Element> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<String> = Vec::new();
    let mut found: Vec<Element> = Vec::new();
    let mut open: Option<usize> = None; // index into `found` while inside a match
    while let Ok(event) = reader.read_event() {
        match event {
            Event::Start(e) => {
                stack.push(e.local_name().as_ref().to_string());
                if stack == path {
                    found.push(Element {
                        attrs: attrs_of(&e),
                        text: String::new(),
                    });
                    open = Some(found.len() - 1);
                }
            }
            Event::Empty(e) => {
                stack.push(e.local_name().as_ref().to_string());
                if stack == path {
                    found.push(Element {
                        attrs: attrs_of(&e),
                        text: String::new(),
                    });
                }
                stack.pop();
            }
            Event::Text(t) => {
                if let (Some(i), true) = (open, stack == path) {
                    found[i].text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let (Some(i), true) = (open, stack == path) {
                    let name = r.xml10_content();
                    let ch = match name.as_ref() {
                        "amp" => "&",
                        "lt" => "<",
                        "gt" => ">",
                        "apos" => "'",
                        "quot" => "\"",
                        _ => "",
                    };
                    found[i].text.push_str(ch);
                }
            }
            Event::End(_) => {
                if stack == path {
                    open = None;
                }
                stack.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    for el in &mut found {
        el.text = el.text.trim().to_string();
    }
    found
}

/// The first element at `path`, if any.
pub fn find_first(xml: &str, path: &[&str]) -> Option<Element> {
    find_all(xml, path).into_iter().next()
}

/// An attribute of the root element (e.g. a domain's `type`).
pub fn root_attr(xml: &str, attr: &str) -> Option<String> {
    let mut reader = Reader::from_str(xml);
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) | Event::Empty(e) => return attrs_of(&e).remove(attr),
            Event::Eof => return None,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_elements_attributes_and_text() {
        let xml = "<a x='1'><b k='v'>t &amp; u</b><b k='w'/><c><b>no</b></c></a>";
        let bs = find_all(xml, &["a", "b"]);
        assert_eq!(bs.len(), 2);
        assert_eq!(bs[0].attr("k"), Some("v"));
        assert_eq!(bs[0].text, "t & u");
        assert_eq!(bs[1].attr("k"), Some("w"));
        assert_eq!(root_attr(xml, "x").as_deref(), Some("1"));
        assert!(find_first(xml, &["a", "z"]).is_none());
    }
}
