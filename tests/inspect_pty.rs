//! `locals`, `p <expr>`, `up` and `down` through a real terminal: gdb
//! reads a paused actor's frames (`examples/locals.rs`), and a crash
//! REPL's frames that are still on the stack (`examples/pm_locals.rs`,
//! and a panic under `crash_handler`, whose REPL opens before it
//! unwinds); without gdb the commands explain and the REPL goes on.

#![cfg(feature = "runtime")]

mod common;

use common::pty::{assert_before, Pty};
use smol_devx::debug::native::NO_GDB_TO_INSPECT;
use smol_devx::debug::repl::{CRASH_MSG, PAUSE_MSG};

/// The pids of `pid`'s children, from every one of its threads.
fn children_of(pid: u32) -> Vec<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// A fresh directory holding one executable `program`, a shell `script`:
/// a `PATH` with a stand-in for a real tool.
fn path_with_stand_in(dir: &str, program: &str, script: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = common::fresh_tmpdir(dir);
    let path = bin.join(program);
    std::fs::write(&path, format!("#!/bin/sh\n{script}")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// The actor runtime's own state, which `locals` leaves out.
const INTERNALS: [&str; 3] = ["__awaitee", "_task_context", "_ref__"];

/// The walk: `locals` in the paused `fn_with_state`, `p port`,
/// `up` to the entry (its own variables, not the callee's), `down`, `c`;
/// the tree ends with 0 and leaves no process and no file behind.
#[test]
fn locals_p_up_and_down_read_the_paused_frames_through_gdb() {
    if !common::gdb_installed() {
        return;
    }
    let tmp = common::fresh_tmpdir("locals");
    let mut pty = Pty::spawn("locals", &[("TMPDIR", tmp.to_str().unwrap())]);
    let banner = pty.expect_prompt();
    assert_before(&banner, &[PAUSE_MSG, "('inspector', '"]);
    let mut pids = children_of(pty.pid());
    assert_eq!(pids.len(), 1, "one subactor: {pids:?}");
    pids.push(pty.pid());

    pty.send_line("locals");
    let locals = pty.expect_prompt();
    assert_before(
        &locals,
        &["name = \"devx\"", "nums = [1, 2, 3]", "port = 8080"],
    );
    for internal in INTERNALS {
        assert!(!locals.contains(internal), "{internal} shown:\n{locals}");
    }

    pty.send_line("p port");
    assert_before(&pty.expect_prompt(), &["port = 8080"]);
    pty.send_line("p nums.len + port as usize");
    assert_before(&pty.expect_prompt(), &["nums.len + port as usize = 8083"]);
    // A Vec, which gdb shows only through Rust's pretty printer, indexes.
    pty.send_line("p nums[1]");
    assert_before(&pty.expect_prompt(), &["nums[1] = 2"]);
    pty.send_line("p nums[7]");
    assert_before(&pty.expect_prompt(), &["*** index 7 out of range for nums"]);
    pty.send_line("p no_such_name");
    let unknown = pty.expect_prompt();
    assert_before(
        &unknown,
        &["*** No symbol 'no_such_name' in current context"],
    );

    pty.send_line("up");
    assert_before(&pty.expect_prompt(), &["#1 locals::inspector"]);
    pty.send_line("locals");
    let caller = pty.expect_prompt();
    assert_before(&caller, &["rounds = 1", "total = 0"]);
    for callee_s in ["name =", "nums =", "port ="] {
        assert!(!caller.contains(callee_s), "{callee_s} in:\n{caller}");
    }
    pty.send_line("bt");
    let bt = pty.expect_prompt();
    assert!(bt.contains("->locals::inspector"), "{bt}");

    pty.send_line("down");
    assert_before(&pty.expect_prompt(), &["#0 locals::fn_with_state"]);
    pty.send_line("p name");
    assert_before(&pty.expect_prompt(), &["name = \"devx\""]);

    pty.send_line("c");
    let (rest, code) = pty.expect_exit();
    assert_eq!(code, 0, "{rest}");
    assert!(
        rest.contains("devx serves 3 numbers on port 8080"),
        "{rest}"
    );
    common::assert_reaped(&pids);
    common::assert_left_nothing_in(&tmp);
}

/// A ctrl-c sent to the terminal's process group while gdb answers (it
/// holds the actor stopped meanwhile) reaches neither gdb nor the answer:
/// the REPL shields it, gdb runs in a group of its own.
#[test]
fn ctrl_c_while_gdb_answers_leaves_the_answer_and_the_actor_whole() {
    if !common::gdb_installed() {
        return;
    }
    let mut pty = Pty::spawn("locals", &[]);
    pty.expect_prompt();
    pty.send_line("locals");
    // gdb takes a good half second: ctrl-c through all of it, at
    // start-up, while it reads symbols, while it holds the actor stopped.
    for _ in 0..12 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        pty.signal_group(rustix::process::Signal::INT);
    }
    assert_before(&pty.expect_prompt(), &["name = \"devx\"", "port = 8080"]);
    pty.send_line("p port");
    assert_before(&pty.expect_prompt(), &["port = 8080"]);
    pty.send_line("c");
    let (rest, code) = pty.expect_exit();
    assert_eq!(code, 0, "{rest}");
}

/// Without gdb on `PATH`, `locals` and `p` of what was not captured say
/// what is missing and how to get it, once each; `bt`, `up`, `l` and `c`
/// work as ever.
#[test]
fn without_gdb_locals_and_p_explain_and_nothing_breaks() {
    let mut pty = Pty::spawn("locals", &[("PATH", "/nonexistent")]);
    pty.expect_prompt();
    for command in ["locals", "p port"] {
        pty.send_line(command);
        let said = pty.expect_prompt();
        assert_eq!(said.matches(NO_GDB_TO_INSPECT).count(), 1, "{said}");
    }
    pty.send_line("up");
    assert_before(&pty.expect_prompt(), &["#1 locals::inspector"]);
    pty.send_line("l");
    assert_before(
        &pty.expect_prompt(),
        &["->         total += fn_with_state().await?.len();"],
    );
    pty.send_line("c");
    let (rest, code) = pty.expect_exit();
    assert_eq!(code, 0, "{rest}");
}

/// rustup puts a `rust-gdb` on `PATH` with every toolchain, which runs
/// gdb: with no gdb beside it, `locals` and `gdb` say gdb is missing
/// (never run it to fail obscurely).
#[test]
fn a_rust_gdb_without_gdb_is_no_debugger() {
    let script = "echo 'rust-gdb: gdb: not found' >&2\nexit 127\n";
    let bin = path_with_stand_in("rust-gdb-alone", "rust-gdb", script);
    let mut pty = Pty::spawn("locals", &[("PATH", bin.to_str().unwrap())]);
    pty.expect_prompt();
    pty.send_line("locals");
    assert_before(&pty.expect_prompt(), &[NO_GDB_TO_INSPECT]);
    pty.send_line("gdb");
    assert_before(&pty.expect_prompt(), &[smol_devx::debug::gdb::NO_GDB]);
    pty.send_line("c");
    let (rest, code) = pty.expect_exit();
    assert_eq!(code, 0, "{rest}");
    std::fs::remove_dir_all(&bin).unwrap();
}

/// Where gdb cannot attach (ptrace denied: Yama's `ptrace_scope`, a
/// container without `CAP_SYS_PTRACE`), `locals` says why and what to
/// allow, in one line, and the REPL goes on. The denial is gdb's own
/// message, from a stand-in `gdb` on `PATH` that fails as gdb does.
#[test]
fn ptrace_denied_is_explained_in_one_line_and_the_repl_goes_on() {
    let denial = "ptrace: Operation not permitted.";
    let script = format!("echo '{denial}' >&2\nexit 1\n");
    let bin = path_with_stand_in("denied-gdb", "gdb", &script);
    let mut pty = Pty::spawn("locals", &[("PATH", bin.to_str().unwrap())]);
    pty.expect_prompt();
    pty.send_line("locals");
    let said = pty.expect_prompt();
    assert_before(
        &said,
        &[
            "*** gdb could not attach to this process (",
            denial,
            "allow ptrace",
        ],
    );
    assert_eq!(said.trim().lines().count(), 2, "one line: {said}");
    pty.send_line("bt");
    assert_before(&pty.expect_prompt(), &["->locals::fn_with_state"]);
    pty.send_line("c");
    let (rest, code) = pty.expect_exit();
    assert_eq!(code, 0, "{rest}");
    std::fs::remove_dir_all(&bin).unwrap();
}

/// A crash REPL opened by `post_mortem` where the error is held: the
/// function that raised it has returned (one line says so), its caller
/// is still running (`up`, then its variables as they are now).
#[test]
fn post_mortem_s_caller_shows_its_locals_the_returned_frame_says_it_is_gone() {
    if !common::gdb_installed() {
        return;
    }
    let mut pty = Pty::spawn("pm_locals", &[]);
    assert_before(&pty.expect_prompt(), &[CRASH_MSG, "('checker', '"]);
    pty.send_line("locals");
    let gone = pty.expect_prompt();
    assert_before(
        &gone,
        &["*** pm_locals::parse_port has returned: its frame is gone"],
    );
    assert_eq!(gone.trim().lines().count(), 2, "one line: {gone}");
    pty.send_line("up");
    pty.expect_prompt();
    pty.send_line("locals");
    let caller = pty.expect_prompt();
    assert_before(
        &caller,
        &["(this frame is at ", "text = \"eighty\"", "fallback = 8080"],
    );
    pty.send_line("c");
    let (rest, code) = pty.expect_exit();
    assert_eq!(code, 0, "{rest}");
}

/// `crash_handler`'s REPL on a panic opens before the panic unwinds: the
/// panicking closure's variables are there to read; `q` then lets the
/// same panic go on (exit 101).
#[test]
fn a_panic_s_crash_repl_opens_before_unwinding_with_its_locals() {
    if !common::gdb_installed() {
        return;
    }
    let mut pty = Pty::spawn_with_args("sync_crash_handler", &["panic"], &[]);
    assert_before(&pty.expect_prompt(), &[CRASH_MSG, "raised panic"]);
    pty.send_line("locals");
    assert_before(&pty.expect_prompt(), &["what = \"panic\"", "empty = []"]);
    pty.send_line("p empty.len");
    assert_before(&pty.expect_prompt(), &["empty.len = 0"]);
    pty.send_line("q");
    let (rest, code) = pty.expect_exit();
    assert_eq!(code, 101, "the same panic: {rest}");
}
