//! Patch values into a template's XML while keeping every other byte as it
//! was (comments, quoting, indentation): the document is read with
//! quick-xml's event reader only to find the byte ranges to replace.

use std::ops::Range;

use quick_xml::escape::escape;
use quick_xml::events::Event;
use quick_xml::Reader;

use super::params::Target;
use crate::error::{Failure, Result};

/// One value to write at one target.
#[derive(Debug, Clone)]
pub struct Edit {
    pub target: Target,
    pub value: String,
}

/// The rendered document and, per edit, whether its target was found.
#[derive(Debug)]
pub struct Rendered {
    pub xml: String,
    pub matched: Vec<bool>,
}

/// Checks that `xml` is well-formed; the error names `source`, line and column.
pub fn check_well_formed(source: &str, xml: &str) -> Result<()> {
    render(source, xml, &[]).map(|_| ())
}

pub fn render(source: &str, xml: &str, edits: &[Edit]) -> Result<Rendered> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<String> = Vec::new();
    let mut splices: Vec<(Range<usize>, String)> = Vec::new();
    let mut matched = vec![false; edits.len()];
    // Text edits waiting for their element's end tag: (edit index, depth, content start).
    let mut open_text: Vec<(usize, usize, usize)> = Vec::new();
    let mut roots = 0;

    loop {
        let start = reader.buffer_position() as usize;
        let event = next_event(&mut reader, source, xml)?;
        let end = reader.buffer_position() as usize;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let is_empty = matches!(event, Event::Empty(_));
                if stack.is_empty() {
                    roots += 1;
                }
                if let Some((child_of, _, _)) =
                    open_text.last().filter(|(_, d, _)| *d == stack.len())
                {
                    let path = describe(&edits[*child_of].target);
                    return Err(Failure::failed(format!(
                        "template {source}: <{}> has child elements, so the text of {path} cannot be set",
                        stack.last().map(String::as_str).unwrap_or("?")
                    )));
                }
                stack.push(e.name().as_ref().to_string());
                let mut tag = xml[start..end].to_string();
                let mut tag_changed = false;
                for (i, edit) in edits.iter().enumerate() {
                    match edit.target {
                        Target::Attr(path, attr) if path_is(&stack, path) => {
                            tag = set_attr(&tag, attr, &edit.value);
                            tag_changed = true;
                            matched[i] = true;
                        }
                        Target::FixedAttr(path, attr, fixed) if path_is(&stack, path) => {
                            tag = set_attr(&tag, attr, fixed);
                            tag_changed = true;
                            matched[i] = true;
                        }
                        Target::Text(path) if path_is(&stack, path) => {
                            matched[i] = true;
                            if is_empty {
                                // `<kernel/>` becomes `<kernel>value</kernel>`.
                                let open = format!("{}>", tag.trim_end_matches("/>").trim_end());
                                tag = format!(
                                    "{open}{}</{}>",
                                    escape(edit.value.as_str()),
                                    stack.last().map(String::as_str).unwrap_or("")
                                );
                                tag_changed = true;
                            } else {
                                open_text.push((i, stack.len(), end));
                            }
                        }
                        _ => {}
                    }
                }
                if tag_changed {
                    splices.push((start..end, tag));
                }
                if is_empty {
                    stack.pop();
                }
            }
            Event::End(_) => {
                while let Some(&(i, depth, content_start)) = open_text.last() {
                    if depth != stack.len() {
                        break;
                    }
                    open_text.pop();
                    // Several edits may target one element; the last one wins.
                    splices.retain(|(r, _)| r.start != content_start);
                    splices.push((
                        content_start..start,
                        escape(edits[i].value.as_str()).into_owned(),
                    ));
                }
                stack.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some(open) = stack.last() {
        let (line, col) = line_col(xml, xml.len());
        return Err(Failure::failed(format!(
            "template {source} is not well-formed XML at line {line}, column {col}: <{open}> is not closed"
        )));
    }
    if roots != 1 {
        return Err(Failure::failed(format!(
            "template {source} is not well-formed XML: expected one root element, found {roots}"
        )));
    }
    splices.sort_by_key(|(r, _)| r.start);
    let mut out = String::with_capacity(xml.len() + 64);
    let mut pos = 0;
    for (range, text) in splices {
        out.push_str(&xml[pos..range.start]);
        out.push_str(&text);
        pos = range.end;
    }
    out.push_str(&xml[pos..]);
    Ok(Rendered { xml: out, matched })
}

/// Inserts `fragment` as the last child of the first element at `path`
/// (e.g. a seed `<disk>` into `<domain><devices>`), keeping every other byte.
pub fn append_child(source: &str, xml: &str, path: &[&str], fragment: &str) -> Result<String> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<String> = Vec::new();
    loop {
        let start = reader.buffer_position() as usize;
        let event = next_event(&mut reader, source, xml)?;
        match event {
            Event::Start(ref e) => stack.push(e.name().as_ref().to_string()),
            Event::Empty(ref e) => {
                stack.push(e.name().as_ref().to_string());
                if path_is(&stack, path) {
                    // `<devices/>` becomes `<devices>fragment</devices>`.
                    let end = reader.buffer_position() as usize;
                    let tag = &xml[start..end];
                    let open = format!("{}>", tag.trim_end_matches("/>").trim_end());
                    return Ok(format!(
                        "{}{open}{fragment}</{}>{}",
                        &xml[..start],
                        path[path.len() - 1],
                        &xml[end..]
                    ));
                }
                stack.pop();
            }
            Event::End(_) => {
                if path_is(&stack, path) {
                    // Indent like the closing tag's line so the result reads well.
                    let line_start = xml[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
                    let indent = &xml[line_start..start];
                    let indent = if indent.trim().is_empty() { indent } else { "" };
                    return Ok(format!(
                        "{}  {fragment}\n{indent}{}",
                        &xml[..start],
                        &xml[start..]
                    ));
                }
                stack.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Err(Failure::failed(format!(
        "template {source} has no <{}> to add to",
        path.join("/")
    )))
}

/// The next event; a syntax error names the template, line and column.
fn next_event<'a>(reader: &mut Reader<&'a [u8]>, source: &str, xml: &str) -> Result<Event<'a>> {
    reader.read_event().map_err(|e| {
        let (line, col) = line_col(xml, reader.error_position() as usize);
        Failure::failed(format!(
            "template {source} is not well-formed XML at line {line}, column {col}: {e}"
        ))
    })
}

fn path_is(stack: &[String], path: &[&str]) -> bool {
    stack.len() == path.len() && stack.iter().zip(path).all(|(a, b)| a == b)
}

pub fn describe(target: &Target) -> String {
    match target {
        Target::Text(p) => format!("<{}>", p.join("/")),
        Target::Attr(p, a) | Target::FixedAttr(p, a, _) => {
            format!("<{}> attribute {a}", p.join("/"))
        }
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map(|i| before.len() - i)
        .unwrap_or(before.len() + 1);
    (line, col)
}

/// Replace (or add) one attribute in a raw start tag, keeping its quote style.
fn set_attr(tag: &str, name: &str, value: &str) -> String {
    let escaped = escape(value);
    if let Some((range, _quote)) = find_attr_value(tag, name) {
        return format!("{}{}{}", &tag[..range.start], escaped, &tag[range.end..]);
    }
    let close = if tag.ends_with("/>") {
        tag.len() - 2
    } else {
        tag.len() - 1
    };
    let head = tag[..close].trim_end();
    format!("{head} {name}='{escaped}'{}", &tag[close..])
}

/// Byte range of an attribute's value (inside the quotes) in a raw tag.
fn find_attr_value(tag: &str, name: &str) -> Option<(Range<usize>, char)> {
    let bytes = tag.as_bytes();
    // Skip `<` and the element name.
    let mut i = 1;
    while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' && bytes[i] != b'/'
    {
        i += 1;
    }
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key_start = i;
        while i < bytes.len()
            && bytes[i] != b'='
            && !bytes[i].is_ascii_whitespace()
            && bytes[i] != b'>'
            && bytes[i] != b'/'
        {
            i += 1;
        }
        if i == key_start {
            return None;
        }
        let key = &tag[key_start..i];
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'=') {
            i += 1;
        }
        let quote = *bytes.get(i)? as char;
        if quote != '\'' && quote != '"' {
            return None;
        }
        let value_start = i + 1;
        let value_end = value_start + tag[value_start..].find(quote)?;
        if key == name {
            return Some((value_start..value_end, quote));
        }
        i = value_end + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "<?xml version='1.0'?>\n<!-- keep me -->\n<domain type='kvm'>\n  <name>a</name>\n  <devices>\n    <interface type=\"network\">\n      <source network='default' />\n    </interface>\n  </devices>\n  <os><kernel/></os>\n</domain>\n";

    fn edit(target: Target, value: &str) -> Edit {
        Edit {
            target,
            value: value.to_string(),
        }
    }

    #[test]
    fn no_edits_keeps_every_byte() {
        assert_eq!(render("t", DOC, &[]).unwrap().xml, DOC);
    }

    #[test]
    fn edits_touch_only_their_targets_and_escape() {
        let r = render(
            "t",
            DOC,
            &[
                edit(Target::Text(&["domain", "name"]), "x<&>'\"y"),
                edit(Target::Attr(&["domain"], "type"), "qemu"),
                edit(
                    Target::Attr(&["domain", "devices", "interface", "source"], "network"),
                    "n'&",
                ),
                edit(
                    Target::Attr(&["domain", "devices", "interface"], "trustGuestRxFilters"),
                    "yes",
                ),
                edit(Target::Text(&["domain", "os", "kernel"]), "/k"),
                edit(Target::Text(&["domain", "missing"]), "z"),
            ],
        )
        .unwrap();
        assert_eq!(r.matched, vec![true, true, true, true, true, false]);
        let expected = DOC
            .replace("<name>a</name>", "<name>x&lt;&amp;&gt;&apos;&quot;y</name>")
            .replace("type='kvm'", "type='qemu'")
            .replace("network='default'", "network='n&apos;&amp;'")
            .replace(
                "<interface type=\"network\">",
                "<interface type=\"network\" trustGuestRxFilters='yes'>",
            )
            .replace("<kernel/>", "<kernel>/k</kernel>");
        assert_eq!(r.xml, expected);
    }

    #[test]
    fn malformed_xml_names_source_line_and_column() {
        let err = render("my.xml", "<domain>\n  <name>a</nam>\n</domain>", &[]).unwrap_err();
        assert!(
            err.message.contains("my.xml") && err.message.contains("line 2"),
            "{}",
            err.message
        );
        let err = render("my.xml", "<domain>\n<name>a</name>\n", &[]).unwrap_err();
        assert!(err.message.contains("not closed"), "{}", err.message);
        let err = render("my.xml", "", &[]).unwrap_err();
        assert!(err.message.contains("one root"), "{}", err.message);
    }

    #[test]
    fn append_child_keeps_the_rest() {
        let doc = "<domain>\n  <devices>\n    <a/>\n  </devices>\n</domain>\n";
        let out = append_child("t", doc, &["domain", "devices"], "<b/>").unwrap();
        assert_eq!(
            out,
            "<domain>\n  <devices>\n    <a/>\n    <b/>\n  </devices>\n</domain>\n"
        );
        let out = append_child(
            "t",
            "<domain><devices/></domain>",
            &["domain", "devices"],
            "<b/>",
        )
        .unwrap();
        assert_eq!(out, "<domain><devices><b/></devices></domain>");
        assert!(append_child("t", "<domain/>", &["domain", "devices"], "<b/>").is_err());
    }

    #[test]
    fn line_col_is_one_based() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
