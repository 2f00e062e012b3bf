use std::io::Write;

fn main() {
    // SIGPIPE stays ignored (Rust's default): a libvirt daemon that goes
    // away mid-call must be an error, not a kill. A closed stdout is handled
    // where output is written (output::write_stdout).
    let code = boxvirt::main_entry();
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // libvirt's event-loop thread (remote transports) may still sit inside
    // the ssh/TLS library when main returns; exit() would run those
    // libraries' atexit cleanups under it and crash. Everything boxvirt owns
    // is already closed, flushed or removed by now.
    // SAFETY: _exit ends the process at once; nothing runs after it.
    unsafe { libc::_exit(i32::from(code)) }
}
