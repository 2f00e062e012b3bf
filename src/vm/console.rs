//! `vm console`: the serial console on this terminal (raw mode), Ctrl-]
//! detaches, like virsh console.

use std::io::{IsTerminal, Read, Write};
use std::sync::Arc;

use crate::error::{Failure, Result};
use crate::libvirt::Libvirt;

const DETACH: u8 = 0x1d; // Ctrl-]

/// Puts stdin in raw mode and restores it on drop.
struct RawMode {
    saved: Option<libc::termios>,
}

impl RawMode {
    fn enter() -> RawMode {
        if !std::io::stdin().is_terminal() {
            return RawMode { saved: None };
        }
        // SAFETY: termios is plain data; tcgetattr fills it for fd 0.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return RawMode { saved: None };
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(0, libc::TCSANOW, &t);
            RawMode { saved: Some(saved) }
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = self.saved {
            // SAFETY: restores the attributes read in `enter`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
}

pub fn attach(conn: &Libvirt, name: &str) -> Result<()> {
    if !conn.domain_summary(name)?.state.is_active() {
        return Err(Failure::failed(format!(
            "vm '{name}' is not running; start it with 'boxvirt vm start {name}'"
        )));
    }
    let console = Arc::new(conn.open_console(name, false)?);
    eprintln!("connected to the console of vm '{name}' (Ctrl-] to detach)\r");
    let raw = RawMode::enter();
    let reader = Arc::clone(&console);
    let printer = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut out = std::io::stdout();
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
            }
        }
    });
    let mut input = [0u8; 1024];
    let mut stdin = std::io::stdin();
    let result = loop {
        if printer.is_finished() {
            break Err(Failure::failed(format!(
                "the console of vm '{name}' closed"
            )));
        }
        match stdin.read(&mut input) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                if let Some(i) = input[..n].iter().position(|b| *b == DETACH) {
                    let _ = console.write(&input[..i]);
                    break Ok(());
                }
                if let Err(e) = console.write(&input[..n]) {
                    break Err(e);
                }
            }
            Err(e) => break Err(Failure::failed(format!("reading the terminal: {e}"))),
        }
    };
    drop(raw);
    eprintln!();
    result
}
