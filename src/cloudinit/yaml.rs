//! A small YAML emitter for the documents the seed carries.
//!
//! Why not the YAML library's serializer: cloud-init reads YAML with PyYAML,
//! which follows YAML 1.1 (`yes`, `on`, `0755`, `12:30` are not strings
//! there), and the tiny test guest reads our user-data with awk, which needs
//! one fixed layout. So: block style, two-space indentation, list items
//! indented under their key, a string plain only when it reads as the same
//! string under YAML 1.1 and 1.2, else single- or double-quoted.

use serde_norway::{Mapping, Value};

use crate::error::{Failure, Result};

/// The text of a document whose top level is a mapping, newline-terminated.
pub fn to_yaml(doc: &Mapping) -> Result<String> {
    let mut out = String::new();
    for line in map_lines(doc)? {
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

/// How a value is written: on its key's line, or as lines below it
/// (`header` is `|`, `|-` or `|+` for a literal block string).
enum Rendered {
    Inline(String),
    Block {
        header: Option<&'static str>,
        lines: Vec<String>,
    },
}

fn render(v: &Value) -> Result<Rendered> {
    Ok(match v {
        Value::Null => Rendered::Inline("null".into()),
        Value::Bool(b) => Rendered::Inline(b.to_string()),
        Value::Number(n) => Rendered::Inline(number(n)),
        Value::String(s) => match literal_block(s) {
            Some((header, lines)) => Rendered::Block {
                header: Some(header),
                lines,
            },
            None => Rendered::Inline(quote(s)),
        },
        Value::Sequence(items) if items.is_empty() => Rendered::Inline("[]".into()),
        Value::Mapping(map) if map.is_empty() => Rendered::Inline("{}".into()),
        Value::Sequence(items) => {
            let mut lines = Vec::new();
            for item in items {
                match render(item)? {
                    Rendered::Inline(text) => lines.push(format!("- {text}")),
                    Rendered::Block {
                        header: Some(h),
                        lines: body,
                    } => {
                        lines.push(format!("- {h}"));
                        lines.extend(indented(body));
                    }
                    // A nested list or mapping starts on the dash's line.
                    Rendered::Block {
                        header: None,
                        lines: body,
                    } => {
                        let mut body = body.into_iter();
                        if let Some(first) = body.next() {
                            lines.push(format!("- {first}"));
                        }
                        lines.extend(indented(body.collect()));
                    }
                }
            }
            Rendered::Block {
                header: None,
                lines,
            }
        }
        Value::Mapping(map) => Rendered::Block {
            header: None,
            lines: map_lines(map)?,
        },
        Value::Tagged(t) => {
            return Err(Failure::usage(format!(
                "YAML tag {} is not supported in cloud-config; write the value without a tag",
                t.tag
            )))
        }
    })
}

fn map_lines(map: &Mapping) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for (k, v) in map {
        let key = key_text(k)?;
        match render(v)? {
            Rendered::Inline(text) => lines.push(format!("{key}: {text}")),
            Rendered::Block {
                header: Some(h),
                lines: body,
            } => {
                lines.push(format!("{key}: {h}"));
                lines.extend(indented(body));
            }
            Rendered::Block {
                header: None,
                lines: body,
            } => {
                lines.push(format!("{key}:"));
                lines.extend(indented(body));
            }
        }
    }
    Ok(lines)
}

fn key_text(k: &Value) -> Result<String> {
    match k {
        Value::String(s) => Ok(quote(s)),
        Value::Null | Value::Bool(_) | Value::Number(_) => match render(k)? {
            Rendered::Inline(text) => Ok(text),
            Rendered::Block { .. } => Err(Failure::usage(
                "a cloud-config mapping key must be one line",
            )),
        },
        _ => Err(Failure::usage(
            "a cloud-config mapping key must be a plain value, not a list or mapping",
        )),
    }
}

/// Two more spaces for every line; empty lines stay empty (no trailing blanks).
fn indented(lines: Vec<String>) -> Vec<String> {
    lines
        .into_iter()
        .map(|l| if l.is_empty() { l } else { format!("  {l}") })
        .collect()
}

/// Numbers as PyYAML reads them back: a float needs a '.' and a signed exponent.
fn number(n: &serde_norway::Number) -> String {
    let text = n.to_string();
    match n.as_f64() {
        Some(f) if n.is_f64() && f.is_finite() => {
            let (mantissa, exp) = match text.split_once(['e', 'E']) {
                Some((m, e)) => (m.to_string(), Some(e)),
                None => (text.clone(), None),
            };
            let mantissa = if mantissa.contains('.') {
                mantissa
            } else {
                format!("{mantissa}.0")
            };
            match exp {
                Some(e) if e.starts_with(['-', '+']) => format!("{mantissa}e{e}"),
                Some(e) => format!("{mantissa}e+{e}"),
                None => mantissa,
            }
        }
        _ => text,
    }
}

/// A multi-line string as a literal block (`|`), when it can be written so
/// that every YAML reader gets the same text back; else None.
fn literal_block(s: &str) -> Option<(&'static str, Vec<String>)> {
    if !s.contains('\n') || s.starts_with(['\n', ' ', '\t']) {
        return None;
    }
    if s.chars().any(|c| c != '\n' && c != '\t' && needs_escape(c)) {
        return None;
    }
    let body = s.trim_end_matches('\n');
    let trailing = s.len() - body.len();
    let mut lines: Vec<String> = body.split('\n').map(str::to_string).collect();
    // Whitespace-only lines and lines ending in blanks read back differently
    // between parsers; tabs after indentation too.
    if lines
        .iter()
        .any(|l| l.ends_with([' ', '\t']) || l.starts_with('\t'))
    {
        return None;
    }
    let header = match trailing {
        0 => "|-",
        1 => "|",
        n => {
            lines.extend(std::iter::repeat_n(String::new(), n - 1));
            "|+"
        }
    };
    Some((header, lines))
}

/// A one-line scalar: plain when safe, else quoted.
pub fn quote(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_string()
    } else if s.chars().any(needs_escape) {
        double_quoted(s)
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// Characters a YAML reader would not keep as they are outside double quotes
/// (controls, and what YAML 1.1 counts as line breaks or a byte-order mark).
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')
}

/// True when `s` written without quotes reads back as the same string under
/// both YAML 1.1 (PyYAML, cloud-init) and 1.2. Deliberately narrow: it must
/// start with a letter, '/' or '_' (so never a number, date, null or
/// indicator), hold no ": ", " #", flow brackets or commas, and not be a
/// 1.1 boolean or null word.
fn is_plain_safe(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let second = chars.next();
    let first_ok = first.is_ascii_alphabetic()
        || first == '/'
        || first == '_'
        || (!first.is_ascii() && first.is_alphanumeric())
        || (first == '-' && second.is_some_and(|c| c.is_ascii_alphabetic()));
    let chars_ok = s.chars().all(|c| {
        c == ' '
            || (c.is_ascii_graphic() && !matches!(c, ',' | '[' | ']' | '{' | '}'))
            || (!c.is_ascii() && !needs_escape(c) && !c.is_whitespace())
    });
    let words = ["y", "n", "yes", "no", "true", "false", "on", "off", "null"];
    first_ok
        && chars_ok
        && !s.ends_with([' ', ':'])
        && !s.contains(": ")
        && !s.contains(" #")
        && !words.contains(&s.to_ascii_lowercase().as_str())
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\0' => out.push_str("\\0"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if (c as u32) < 0x100 && needs_escape(c) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if needs_escape(c) => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Mapping {
        serde_norway::from_str(text).unwrap()
    }

    #[test]
    fn plain_only_when_it_reads_back_the_same_everywhere() {
        for s in [
            "tiny-1",
            "boxvirt",
            "/bin/sh",
            "ALL=(ALL) NOPASSWD:ALL",
            "ssh-ed25519 AAAAC3 me@host",
            "-c",
            "it's",
            "über",
        ] {
            assert_eq!(quote(s), s);
        }
        let quoted = [
            ("yes", "'yes'"),
            ("On", "'On'"),
            ("n", "'n'"),
            ("NULL", "'NULL'"),
            ("123", "'123'"),
            ("0755", "'0755'"),
            ("12:30", "'12:30'"),
            ("2024-01-01", "'2024-01-01'"),
            (".inf", "'.inf'"),
            ("~", "'~'"),
            ("", "''"),
            ("a: b", "'a: b'"),
            ("key #c", "'key #c'"),
            ("x:", "'x:'"),
            ("- x", "'- x'"),
            ("-1", "'-1'"),
            ("a, b", "'a, b'"),
            ("[x]", "'[x]'"),
            (" lead", "' lead'"),
            ("it's: x", "'it''s: x'"),
            ("52:54:00:12:34:56", "'52:54:00:12:34:56'"),
            ("*ref", "'*ref'"),
            ("!tag", "'!tag'"),
            ("%x", "'%x'"),
            ("@x", "'@x'"),
            ("`x", "'`x'"),
            ("|x", "'|x'"),
            (">x", "'>x'"),
            ("&a", "'&a'"),
            ("?x", "'?x'"),
        ];
        for (s, want) in quoted {
            assert_eq!(quote(s), want, "{s:?}");
        }
        assert_eq!(quote("a\tb\"\\\u{7}\u{2028}"), "\"a\\tb\\\"\\\\\\x07\\L\"");
        assert_eq!(quote("two\nlines"), "\"two\\nlines\"");
    }

    #[test]
    fn every_scalar_reads_back_as_written() {
        let odd = [
            "yes",
            "12:30",
            "a: b",
            "x #y",
            "'q'",
            "\"dq\"",
            "tab\there",
            "nl\nx",
            "\u{feff}bom",
            "\\",
            "-",
            "?",
            ":",
        ];
        let mut m = Mapping::new();
        for (i, s) in odd.iter().enumerate() {
            m.insert(Value::String(format!("k{i}")), Value::String(s.to_string()));
            m.insert(Value::String(s.to_string()), Value::Bool(true));
        }
        let text = to_yaml(&m).unwrap();
        assert_eq!(doc(&text), m, "{text}");
    }

    #[test]
    fn layout_matches_the_tiny_guest_parser() {
        let m = doc("a: x\nl:\n- name: nm\n  keys:\n  - k1\n  - k2\n- plain\n- - nested\n  - list\nm:\n  block: \"one\\ntwo\\n\"\n  empty: []\n  none: {}\n");
        let text = to_yaml(&m).unwrap();
        assert_eq!(
            text,
            "a: x\nl:\n  - name: nm\n    keys:\n      - k1\n      - k2\n  - plain\n  - - nested\n    - list\nm:\n  block: |\n    one\n    two\n  empty: []\n  none: {}\n"
        );
        assert_eq!(doc(&text), m);
    }

    #[test]
    fn literal_blocks_keep_their_exact_text() {
        for s in [
            "a\nb",
            "a\nb\n",
            "a\nb\n\n\n",
            "a\n\nb\n",
            "a\n  indented\n",
            " lead\nx",
            "trail \nx",
            "\nfirst",
            "a\n \nb",
        ] {
            let mut m = Mapping::new();
            m.insert("k".into(), Value::String(s.to_string()));
            let mut seq_doc = Mapping::new();
            seq_doc.insert(
                "l".into(),
                Value::Sequence(vec![Value::String(s.to_string())]),
            );
            for d in [m, seq_doc] {
                let text = to_yaml(&d).unwrap();
                assert_eq!(doc(&text), d, "{s:?} as\n{text}");
            }
        }
    }

    #[test]
    fn numbers_stay_numbers_for_pyyaml() {
        let m = doc("i: 42\nneg: -7\nf: 1.5\nbig: 1e300\nsmall: 1.5e-7\n");
        let text = to_yaml(&m).unwrap();
        assert!(
            text.contains("big: 1.0e+300\n")
                && text.contains("small: 1.5e-7\n")
                && text.contains("f: 1.5\n"),
            "{text}"
        );
        assert_eq!(doc(&text), m);
    }
}
