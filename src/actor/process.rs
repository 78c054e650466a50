//! A child process as the operating system sees it: preparing it between
//! fork and exec, signalling it, reaping it.

use std::os::unix::process::CommandExt;

/// `pid` as the OS type; `None` when it cannot be one.
pub(super) fn os_pid(pid: u32) -> Option<rustix::process::Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
}

/// Sends `signal` to process `pid`.
pub(super) fn kill(pid: u32, signal: rustix::process::Signal) -> std::io::Result<()> {
    let pid = os_pid(pid).ok_or_else(|| std::io::Error::other(format!("no such pid {pid}")))?;
    Ok(rustix::process::kill_process(pid, signal)?)
}

/// SIGKILLs a child, reaps it, and removes what its death left behind.
pub(super) fn kill_and_reap(pid: u32) {
    let _ = kill(pid, rustix::process::Signal::KILL);
    if let Some(pid) = os_pid(pid) {
        let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
    }
    crate::ipc::transport::remove_dirs_of(pid);
}

/// Prepares the child between fork and exec:
/// - it ignores SIGINT: a ctrl-c at the terminal reaches the whole
///   foreground process group, and children stay in the root's group (in
///   their own, they would be stopped on reading the terminal); the root
///   supervises them instead;
/// - it gets SIGTERM when its parent dies, even when its own threads are
///   too stuck to notice the closed connection: no process outlives the
///   root. SIGTERM, not SIGKILL: a child that holds the REPL puts the
///   terminal back in cooked mode first (the debugger's watcher; without
///   one, SIGTERM ends it as SIGKILL would).
#[allow(unsafe_code)]
pub(super) fn prepare_child(cmd: &mut std::process::Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: between fork and exec only async-signal-safe calls are
    // allowed; signal(2), prctl(2), getppid(2) and _exit(2) are, and the
    // closure allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            // The parent may have died before the line above took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}
