fn main() {
    // A closed stdout (e.g. `boxvirt vm list | head -1`) is not an error.
    reset_sigpipe();
    std::process::exit(i32::from(boxvirt::main_entry()));
}

fn reset_sigpipe() {
    // SAFETY: restoring the default disposition of SIGPIPE has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
