//! Progress for long operations, on stderr: a spinner naming the stage for
//! waits (image builds, boots), a byte bar with rate and ETA for transfers
//! (downloads, uploads). On a terminal only; plain lines otherwise (CI logs
//! stay readable), nothing with -q.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::Output;

/// A spinner for waits whose stages matter more than their length.
pub struct Spinner {
    bar: Option<ProgressBar>,
    out: Output,
}

impl Spinner {
    pub fn new(out: &Output) -> Spinner {
        let bar = (!out.quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Spinner { bar, out: *out }
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

impl Drop for Spinner {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A byte bar for transfers: hidden until the size is known.
pub struct Transfer {
    bar: Option<ProgressBar>,
    out: Output,
}

impl Transfer {
    pub fn new(out: &Output) -> Transfer {
        let bar = (!out.quiet && std::io::stderr().is_terminal()).then(|| {
            // Hidden until the size is known, so it never shows "0 B/0 B".
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
            let template =
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}";
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Transfer { bar, out: *out }
    }

    /// A new stage; on a terminal it labels the bar.
    pub fn stage(&self, msg: impl AsRef<str>) {
        match &self.bar {
            Some(bar) => bar.set_message(msg.as_ref().to_string()),
            None => self.out.detail(msg),
        }
    }

    /// A line that must stay visible (printed above the bar on a terminal).
    pub fn line(&self, msg: impl AsRef<str>) {
        match &self.bar {
            Some(bar) => bar.println(msg.as_ref()),
            None => self.out.detail(msg),
        }
    }

    pub fn set_total(&self, total: Option<u64>) {
        if let Some(bar) = &self.bar {
            if bar.is_hidden() {
                bar.set_draw_target(ProgressDrawTarget::stderr());
            }
            match total {
                Some(t) => bar.set_length(t),
                None => bar.unset_length(),
            }
        }
    }

    pub fn set_position(&self, pos: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(pos);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        self.finish();
    }
}
