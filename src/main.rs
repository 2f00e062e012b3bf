use std::io::Write;

fn main() {
    // A closed stdout (e.g. `boxvirt vm list | head -1`) is not an error.
    reset_sigpipe();
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

fn reset_sigpipe() {
    // SAFETY: restoring the default disposition of SIGPIPE has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
