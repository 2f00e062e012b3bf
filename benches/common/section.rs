//! A bench's figures live in BENCHMARKS.md between its own two markers;
//! a run replaces that text and keeps the rest of the file.

use std::path::Path;

/// Replaces the text between `begin` and `end` in `path` (appends the
/// markers when they are missing).
pub fn write(path: &Path, begin: &str, end: &str, section: &str) -> Result<(), String> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let new = match (old.find(begin), old.find(end)) {
        (Some(b), Some(e)) if b < e => format!("{}{begin}\n{section}{}", &old[..b], &old[e..]),
        _ => format!("{old}\n{begin}\n{section}{end}\n"),
    };
    std::fs::write(path, new).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes a bench's `text` between its markers in BENCHMARKS.md, unless
/// BOXVIRT_BENCH_WRITE=0 (then the printed text is all).
pub fn publish(bench: &str, begin: &str, end: &str, text: &str) -> Result<(), String> {
    if std::env::var("BOXVIRT_BENCH_WRITE").as_deref() == Ok("0") {
        return Ok(());
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    write(&path, begin, end, text)?;
    eprintln!("{bench}: results written to {}", path.display());
    Ok(())
}

/// a ÷ b (NaN when b is zero).
pub fn ratio(a: std::time::Duration, b: std::time::Duration) -> f64 {
    if b.is_zero() {
        f64::NAN
    } else {
        a.as_secs_f64() / b.as_secs_f64()
    }
}

/// How an aim reads in the section.
pub fn verdict(met: bool) -> &'static str {
    if met {
        "**met**"
    } else {
        "**not met**"
    }
}
