//! Where a node of a YAML file is: line and column of the value at a path
//! such as `vms[1].networks[0]`, for errors found after parsing (undeclared
//! networks, duplicate names). serde_norway gives no spans, but it does put
//! the position of the current node on every error a visitor raises; so we
//! walk the document to the path and fail there on purpose.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One step of a path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// `vms[1].networks` style, for messages and tests.
pub fn show(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => s.push_str(&format!(".{k}")),
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Builds a path (an array of [`Seg`]): `yaml_path!["vms", 1, "host"]`.
#[macro_export]
macro_rules! yaml_path {
    ($($seg:expr),* $(,)?) => { [$($crate::env::locate::Seg::from($seg)),*] };
}

impl From<&str> for Seg {
    fn from(k: &str) -> Seg {
        Seg::Key(k.to_string())
    }
}

impl From<usize> for Seg {
    fn from(i: usize) -> Seg {
        Seg::Index(i)
    }
}

/// The error text that marks "found it" (no real error contains a NUL).
const HERE: &str = "\u{0}here";

/// 1-based (line, column) of the node at `path` in `text`; `None` when the
/// path is not in the document (or the text does not parse).
pub fn locate(text: &str, path: &[Seg]) -> Option<(usize, usize)> {
    let de = serde_norway::Deserializer::from_str(text);
    match Walk(path).deserialize(de) {
        Ok(()) => None,
        Err(e) if e.to_string().contains(HERE) => e.location().map(|l| (l.line(), l.column())),
        Err(_) => None,
    }
}

/// Descends along the path, skipping everything else.
struct Walk<'a>(&'a [Seg]);

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.0 {
            [] => d.deserialize_any(Here),
            _ => d.deserialize_any(self),
        }
    }
}

/// A mapping key as text, whatever its YAML type (`1:` reads as "1").
fn key_text(key: &serde_norway::Value) -> String {
    match key {
        serde_norway::Value::String(s) => s.clone(),
        other => serde_norway::to_string(other)
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (first, rest) = match self.0.split_first() {
            Some((Seg::Key(k), rest)) => (k, rest),
            _ => return skip_map(map),
        };
        while let Some(key) = map.next_key::<serde_norway::Value>()? {
            if key_text(&key) == *first {
                return map.next_value_seed(Walk(rest));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (want, rest) = match self.0.split_first() {
            Some((Seg::Index(i), rest)) => (*i, rest),
            _ => return skip_seq(seq),
        };
        for _ in 0..want {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Walk(rest)).map(|_| ())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// At the target: fails on whatever the node is, so the error carries its
/// position.
struct Here;

impl<'de> Visitor<'de> for Here {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(HERE))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(HERE))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(HERE))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(HERE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = "name: lab\nnetworks:\n  mgmt: {template: default}\nvms:\n  - name: ctrl\n    networks: [mgmt, data]\n  - name: node\n    count: 3\n    host: right\n    networks:\n      - mgmt\n      - data\n";

    #[test]
    fn finds_block_and_flow_nodes() {
        assert_eq!(locate(LAB, &yaml_path!["vms", 1, "host"]), Some((9, 11)));
        assert_eq!(
            locate(LAB, &yaml_path!["vms", 0, "networks", 1]),
            Some((6, 22))
        );
        assert_eq!(
            locate(LAB, &yaml_path!["vms", 1, "networks", 1]),
            Some((12, 9))
        );
        assert_eq!(locate(LAB, &yaml_path!["vms", 1]), Some((7, 5)));
        assert_eq!(locate(LAB, &yaml_path!["networks", "mgmt"]), Some((3, 9)));
        assert_eq!(locate(LAB, &yaml_path!["name"]), Some((1, 7)));
    }

    #[test]
    fn a_path_not_in_the_file_has_no_position() {
        assert_eq!(locate(LAB, &yaml_path!["vms", 5]), None);
        assert_eq!(locate(LAB, &yaml_path!["hosts", "left"]), None);
        assert_eq!(locate(LAB, &yaml_path!["name", "x"]), None);
        assert_eq!(locate("a: 1\nb: \"open\n", &yaml_path!["c"]), None);
    }

    #[test]
    fn paths_read_as_written() {
        assert_eq!(
            show(&yaml_path!["vms", 1, "networks", 0]),
            "vms[1].networks[0]"
        );
    }
}
