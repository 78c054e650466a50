//! The native debugger: which one is installed, and the `gdb` hand-off,
//! a real gdb attached to this process on the same terminal while the
//! tree lock is held.

/// Attaches a native debugger to this process on the same terminal and
/// waits for it to detach. Blocks the calling thread on purpose: the
/// whole process is stopped under the debugger anyway, and the thread's
/// stack is what the debugger shows. Without gdb on `PATH` it says so,
/// and how to get it, and returns.
pub(crate) fn hand_to_gdb() {
    let Some(gdb) = native_debugger() else {
        println!("{NO_GDB}");
        return;
    };
    let pid = std::process::id().to_string();
    let status = with_ptrace_allowed(|| {
        std::process::Command::new(gdb)
            .args(["-q", "-p", &pid])
            .args(["-ex", "set pagination off", "-ex", "set confirm off"])
            .status()
    });
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => println!("*** {gdb} ended with {status}"),
        Err(e) => println!("*** cannot run {gdb}: {e}"),
    }
}

/// What the `gdb` command says where gdb is not installed.
pub const NO_GDB: &str = "*** gdb is not installed here: install it (e.g. `apt-get install gdb`, \
or your system's gdb package), then type `gdb` again";

/// The native debugger on `PATH`: rust-gdb (gdb with Rust's pretty
/// printers) when there, else gdb; none without gdb, which rust-gdb runs
/// (rustup installs rust-gdb with every toolchain, gdb or not).
pub fn native_debugger() -> Option<&'static str> {
    if !on_path("gdb") {
        return None;
    }
    Some(if on_path("rust-gdb") {
        "rust-gdb"
    } else {
        "gdb"
    })
}

/// Runs `f` (which starts a debugger on this process) with any process
/// allowed to attach: Yama's `ptrace_scope=1` lets only ancestors attach
/// unless the process allows it.
pub(crate) fn with_ptrace_allowed<T>(f: impl FnOnce() -> T) -> T {
    let _ = rustix::process::set_ptracer(rustix::process::PTracer::Any);
    let out = f();
    let _ = rustix::process::set_ptracer(rustix::process::PTracer::None);
    out
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}
