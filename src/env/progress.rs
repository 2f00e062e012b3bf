//! What `env apply` and `env destroy` show while VMs are made in
//! parallel: on a terminal one line per VM (its stage and elapsed time,
//! indicatif MultiProgress); elsewhere plain lines `[node-1] domain defined`;
//! nothing with -q.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::output::Output;

pub struct Board {
    multi: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
    out: Output,
}

impl Board {
    /// One line per name, waiting for its turn.
    pub fn new(out: &Output, names: &[String]) -> Board {
        let on_terminal = !out.quiet && std::io::stderr().is_terminal();
        let multi = on_terminal.then(MultiProgress::new);
        let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
        let mut bars = HashMap::new();
        if let Some(m) = &multi {
            let template = format!("{{prefix:<{width}}} {{spinner}} {{msg}} ({{elapsed}})");
            for n in names {
                let bar = m.add(ProgressBar::new_spinner());
                if let Ok(style) = ProgressStyle::with_template(&template) {
                    bar.set_style(style);
                }
                bar.set_prefix(n.clone());
                bar.set_message("queued");
                bar.enable_steady_tick(Duration::from_millis(120));
                bars.insert(n.clone(), bar);
            }
        }
        Board {
            multi,
            bars,
            out: *out,
        }
    }

    /// The VM's work begins: its clock starts now.
    pub fn begin(&self, name: &str, msg: &str) {
        if let Some(bar) = self.bars.get(name) {
            bar.reset_elapsed();
        }
        self.stage(name, msg);
    }

    pub fn stage(&self, name: &str, msg: &str) {
        match self.bars.get(name) {
            Some(bar) => bar.set_message(msg.to_string()),
            None => self.out.note(format!("[{name}] {msg}")),
        }
    }

    /// The VM's last word; its line stays (without a spinner).
    pub fn finish(&self, name: &str, msg: &str) {
        match self.bars.get(name) {
            Some(bar) => bar.finish_with_message(msg.to_string()),
            None => self.out.note(format!("[{name}] {msg}")),
        }
    }

    /// A line above the VM lines (or plainly).
    pub fn line(&self, msg: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(msg);
            }
            None => self.out.note(msg),
        }
    }
}

/// What a finished create step means, for people.
pub fn step_done(step: &str) -> String {
    match step {
        "volume" => "disk volume made".into(),
        "seed" => "cloud-init seed written".into(),
        "reservation" => "address reserved".into(),
        "define" => "domain defined".into(),
        "metadata" => "metadata written".into(),
        "start" => "started".into(),
        other => format!("{other} done"),
    }
}
