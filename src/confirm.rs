//! Asking before deleting: `--yes` skips the question; without a terminal
//! to ask on, boxvirt refuses rather than guess.

use std::io::{BufRead, IsTerminal, Write};

use crate::error::{Failure, Result};

pub fn confirm(yes: bool, question: &str) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(format!(
            "{question}: refusing without --yes (stdin is not a terminal)"
        )));
    }
    eprint!("{question}? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::failed(format!("reading the answer: {e}")))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure::failed("cancelled; nothing was deleted"))
    }
}
