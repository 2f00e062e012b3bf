//! Progress for long waits: a spinner naming the stage on a terminal, plain
//! lines otherwise (CI logs stay readable), nothing with -q.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::output::Output;

pub struct Progress {
    bar: Option<ProgressBar>,
    out: Output,
}

impl Progress {
    pub fn new(out: &Output) -> Progress {
        let bar = (!out.quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress { bar, out: *out }
    }

    /// A new stage: the spinner's text, or one line when not on a terminal.
    pub fn stage(&self, msg: impl AsRef<str>) {
        match &self.bar {
            Some(bar) => bar.set_message(msg.as_ref().to_string()),
            None => self.out.note(msg),
        }
    }

    /// A spinner-only update (nothing is printed when not on a terminal).
    pub fn tick(&self, msg: impl AsRef<str>) {
        if let Some(bar) = &self.bar {
            bar.set_message(msg.as_ref().to_string());
        }
    }

    /// A line printed above the spinner (or plainly).
    pub fn line(&self, msg: impl AsRef<str>) {
        match &self.bar {
            Some(bar) => bar.println(msg.as_ref()),
            None => eprintln!("{}", msg.as_ref()),
        }
    }

    pub fn is_terminal(&self) -> bool {
        self.bar.is_some()
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
