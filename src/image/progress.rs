//! Progress of byte transfers (download, upload): a bar with bytes, rate and
//! ETA on a terminal; otherwise one line per stage, and only with -v.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::Output;

pub struct Transfer {
    bar: Option<ProgressBar>,
    out: Output,
}

impl Transfer {
    pub fn new(out: &Output) -> Transfer {
        let bar = (!out.quiet && std::io::stderr().is_terminal()).then(|| {
            // Hidden until the size is known, so it never shows "0 B/0 B".
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
            let template = "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}";
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
