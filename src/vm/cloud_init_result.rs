//! cloud-init's own verdict on a boot: `/run/cloud-init/result.json`, which
//! it writes when its last stage ends (`{"v1": {"datasource", "errors",
//! "recoverable_errors"}}`). Pure parsing, so the rules are unit-tested
//! against files real cloud-init wrote (tests/fixtures/cloud-init).

use serde::{Deserialize, Serialize};

/// Where cloud-init writes the result; absent until it has finished.
pub const RESULT_JSON: &str = "/run/cloud-init/result.json";

/// The longest error detail put into a one-line message (JSON has it all).
const DETAIL_MAX: usize = 300;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CloudInitResult {
    pub datasource: Option<String>,
    /// Unrecoverable errors: the boot did not do everything it was asked.
    pub errors: Vec<String>,
    /// Warnings (cloud-init 23.4+): logged problems it carried on after.
    pub recoverable_errors: Vec<Recoverable>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recoverable {
    /// cloud-init's log level: WARNING, DEPRECATED, ERROR, CRITICAL.
    pub level: String,
    pub message: String,
}

#[derive(Deserialize)]
struct File {
    v1: V1,
}

#[derive(Deserialize)]
struct V1 {
    #[serde(default)]
    datasource: Option<String>,
    #[serde(default)]
    errors: Vec<serde_json::Value>,
    /// `{"LEVEL": ["message", ...]}`; tolerated as a plain list too.
    #[serde(default)]
    recoverable_errors: serde_json::Value,
}

/// Parses the file's text; the error says what is wrong with it.
pub fn parse(text: &str) -> Result<CloudInitResult, String> {
    let file: File =
        serde_json::from_str(text).map_err(|e| format!("is not valid cloud-init JSON: {e}"))?;
    Ok(CloudInitResult {
        datasource: file.v1.datasource,
        errors: file.v1.errors.iter().map(as_text).collect(),
        recoverable_errors: recoverable(&file.v1.recoverable_errors),
    })
}

fn as_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn recoverable(v: &serde_json::Value) -> Vec<Recoverable> {
    let entry = |level: &str, m: &serde_json::Value| Recoverable {
        level: level.to_string(),
        message: as_text(m),
    };
    match v {
        serde_json::Value::Object(levels) => levels
            .iter()
            .flat_map(|(level, msgs)| match msgs {
                serde_json::Value::Array(list) => list.iter().map(|m| entry(level, m)).collect(),
                one => vec![entry(level, one)],
            })
            .collect(),
        serde_json::Value::Array(list) => list.iter().map(|m| entry("WARNING", m)).collect(),
        _ => Vec::new(),
    }
}

impl CloudInitResult {
    /// `cloud-init reported an error in module M: DETAIL` for the first
    /// error (with how many more there are), or None when there is none.
    pub fn first_error(&self) -> Option<String> {
        let first = self.errors.first()?;
        let (module, detail) = describe(first);
        let mut line = match module {
            Some(m) => format!("cloud-init reported an error in module {m}: {detail}"),
            None => format!("cloud-init reported an error: {detail}"),
        };
        if self.errors.len() > 1 {
            line.push_str(&format!(" (and {} more)", self.errors.len() - 1));
        }
        Some(line)
    }
}

/// Splits cloud-init's error text into the module and a one-line detail.
/// Module failures are Python reprs of `(name, exception)`, e.g.
/// `('locale', ProcessExecutionError("Unexpected error ...\nCommand: ..."))`;
/// stage failures are plain text ("No instance datasource found.").
pub fn describe(error: &str) -> (Option<String>, String) {
    match module_failure(error.trim()) {
        Some((module, detail)) => (Some(module), one_line(&detail)),
        None => (None, one_line(error)),
    }
}

fn module_failure(text: &str) -> Option<(String, String)> {
    let inner = text.strip_prefix('(')?.strip_suffix(')')?;
    let (module, rest) = python_string(inner)?;
    let exception = rest.strip_prefix(',')?.trim_start();
    let (kind, args) = exception.split_once('(')?;
    let args = args.strip_suffix(')')?.trim_end_matches(',').trim();
    // The usual exception has one message argument; show others as given.
    let message = match python_string(args) {
        Some((msg, tail)) if tail.trim_start_matches(',').trim().is_empty() => msg,
        _ => args.to_string(),
    };
    Some((module, format!("{kind}: {message}")))
}

/// A Python string literal at the start of `text` (`'...'` or `"..."`,
/// backslash escapes undone): its value and the text after it.
fn python_string(text: &str) -> Option<(String, &str)> {
    let quote = text.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let mut value = String::new();
    let mut chars = text.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                other => value.push(other),
            },
            c if c == quote => return Some((value, &text[i + 1..])),
            c => value.push(c),
        }
    }
    None
}

/// One line for an error message: lines joined with "; ", the empty
/// "Stdout: -" kind left out, and long text cut.
fn one_line(text: &str) -> String {
    let joined = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.ends_with(": -"))
        .collect::<Vec<_>>()
        .join("; ");
    if joined.chars().count() <= DETAIL_MAX {
        return joined;
    }
    let cut: String = joined.chars().take(DETAIL_MAX).collect();
    format!("{cut}...")
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! sample {
        ($name:literal) => {
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/cloud-init/",
                $name
            ))
        };
    }

    #[test]
    fn success_from_cloud_init_22_4_has_the_datasource_and_no_errors() {
        let r = parse(sample!("result-22.4-done.json")).unwrap();
        assert_eq!(
            r.datasource.as_deref(),
            Some("DataSourceNoCloud [seed=/dev/vdb][dsmode=net]")
        );
        assert!(r.errors.is_empty() && r.recoverable_errors.is_empty());
        assert_eq!(r.first_error(), None);
    }

    #[test]
    fn a_failed_module_is_named_with_its_exception_on_one_line() {
        let r = parse(sample!("result-22.4-locale.json")).unwrap();
        assert_eq!(
            r.first_error().unwrap(),
            "cloud-init reported an error in module locale: ProcessExecutionError: \
             Unexpected error while running command.; Command: ['locale-gen', 'en_US.UTF-8']; \
             Reason: [Errno 2] No such file or directory: b'locale-gen'"
        );
        let r = parse(sample!("result-22.4-scripts.json")).unwrap();
        assert_eq!(
            r.first_error().unwrap(),
            "cloud-init reported an error in module scripts-user: RuntimeError: \
             Runparts: 1 failures (part-001) in 1 attempted commands"
        );
    }

    #[test]
    fn a_stage_error_without_a_module_is_shown_as_written() {
        let r = parse(sample!("result-22.4-nodatasource.json")).unwrap();
        assert_eq!(r.datasource, None);
        assert_eq!(
            r.first_error().unwrap(),
            "cloud-init reported an error: No instance datasource found."
        );
    }

    #[test]
    fn recoverable_errors_of_cloud_init_23_4_are_warnings_not_errors() {
        let r = parse(sample!("result-23.4-warnings.json")).unwrap();
        assert_eq!(r.first_error(), None);
        assert_eq!(r.recoverable_errors.len(), 2);
        assert_eq!(r.recoverable_errors[0].level, "WARNING");
        assert!(r.recoverable_errors[1].message.contains("sources.list"));
        let r = parse(sample!("result-23.4-error.json")).unwrap();
        assert_eq!(
            r.first_error().unwrap(),
            "cloud-init reported an error in module timezone: OSError: Invalid timezone \
             Mars/Olympus, no file found at /usr/share/zoneinfo/Mars/Olympus"
        );
        let levels: Vec<&str> = r
            .recoverable_errors
            .iter()
            .map(|e| e.level.as_str())
            .collect();
        assert_eq!(levels, ["DEPRECATED", "WARNING"]);
    }

    #[test]
    fn more_errors_are_counted_and_odd_reprs_kept() {
        let text = r#"{"v1": {"datasource": "x", "errors": [
            "('timezone', OSError('Invalid timezone X',))",
            "('write_files', OSError(2, 'No such file or directory'))",
            "Consuming user data failed!"]}}"#;
        let r = parse(text).unwrap();
        assert_eq!(
            r.first_error().unwrap(),
            "cloud-init reported an error in module timezone: OSError: Invalid timezone X (and 2 more)"
        );
        assert_eq!(
            describe(&r.errors[1]),
            (
                Some("write_files".to_string()),
                "OSError: 2, 'No such file or directory'".to_string()
            )
        );
    }

    #[test]
    fn what_the_tiny_guest_writes_is_success() {
        let r = parse(r#"{"v1": {"datasource": "DataSourceNoCloud", "errors": []}}"#).unwrap();
        assert_eq!(r.first_error(), None);
        assert_eq!(r.datasource.as_deref(), Some("DataSourceNoCloud"));
    }

    #[test]
    fn text_that_is_not_a_result_is_an_error() {
        for bad in ["", "{", "not json", "{\"v2\": {}}", "[]"] {
            let err = parse(bad).unwrap_err();
            assert!(
                err.starts_with("is not valid cloud-init JSON"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn long_details_are_cut() {
        let long = format!("('m', RuntimeError('{}'))", "x".repeat(1000));
        let (_, detail) = describe(&long);
        assert!(detail.ends_with("...") && detail.len() < 320, "{detail}");
    }
}
