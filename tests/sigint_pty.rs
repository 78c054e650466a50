//! ctrl-c and the terminal mode through a real pseudo-terminal:
//! scenarios 10, 17 and 18 of SCENARIOS.md.

#![cfg(feature = "runtime")]

mod common;

use std::time::Duration;

use common::pty::{assert_before, in_prompt_msg, Pty};
use common::{assert_reaped, kill9, own_pids};
use rustix::process::Signal;
use smol_devx::actor::CANCELLED_EXIT;
use smol_devx::debug::repl::{PAUSE_MSG, PROMPT};

/// Waits until `text` has been shown (maybe already), keeping all of the
/// output in `shown`.
fn until(pty: &mut Pty, shown: &mut String, text: &str) {
    if !shown.contains(text) {
        *shown += &pty.expect(text);
        *shown += text;
    }
}

/// Presses ctrl-c `n` times at a live prompt; each must bring a fresh
/// prompt and leave the session usable.
fn ctrl_c_at_prompt(pty: &mut Pty, n: usize) {
    for i in 0..n {
        pty.send_raw(b"\x03");
        let before = pty.expect_prompt();
        assert!(!before.contains("Error"), "ctrl-c {i}: {before}");
    }
    // Still a working REPL.
    pty.send_line("h");
    assert_before(&pty.expect_prompt(), &["commands:"]);
}

/// Scenario 17, in the root and two levels down: 100 ctrl-c's at the
/// prompt, then `c`, then one ctrl-c ends the tree with no process left.
fn scenario_17(where_: &str, holder: &str, actors: usize) {
    let mut pty = Pty::spawn_with_args("ctrlc_in_tree", &[where_], &[]);
    let before = pty.expect_prompt();
    assert!(
        in_prompt_msg(&before, &[PAUSE_MSG, &format!("('{holder}', '")]),
        "{before}"
    );
    let mut shown = before;
    ctrl_c_at_prompt(&mut pty, 100);
    // A SIGINT to every process while the REPL is live (`kill -INT`, or a
    // ctrl-c typed while no editor has the terminal raw): the holder's
    // line editor takes it, a root that is not the holder says it ignores
    // it, no actor in between cancels anything: the REPL still answers.
    pty.signal_group(Signal::INT);
    if holder != "root" {
        let ignoring = format!("ignoring ctrl-c: ('{holder}', '");
        until(&mut pty, &mut shown, &ignoring);
    }
    pty.send_line("h");
    assert_before(&pty.expect_prompt(), &["commands:"]);
    pty.send_line("c");
    until(&mut pty, &mut shown, &format!("released in {holder}"));
    // The REPL gave the terminal back (cooked mode): this ctrl-c is a
    // SIGINT to every process, and only the root acts on it.
    std::thread::sleep(Duration::from_millis(100));
    pty.send_raw(b"\x03");
    let (rest, code) = pty.expect_exit();
    shown += &rest;
    assert_eq!(code, i32::from(CANCELLED_EXIT), "{rest}");
    assert!(rest.contains("cancelling the actor tree"), "{rest}");
    let pids = own_pids(&shown);
    assert_eq!(pids.len(), actors, "{shown}");
    assert_reaped(&pids);
}

#[test]
fn scenario_17_ctrl_c_in_the_root_repl() {
    scenario_17("root", "root", 2);
}

#[test]
fn scenario_17_ctrl_c_in_a_grandchild_repl() {
    scenario_17("grandchild", "leaf", 3);
}

/// Scenario 10: the root cancels its nursery while its child is in a
/// REPL; neither the cancel nor ctrl-c (typed, or a SIGINT to the whole
/// process group) ends the REPL; after `c` the teardown completes.
#[test]
fn scenario_10_root_cancelled_but_child_is_in_tty_lock() {
    let mut pty = Pty::spawn("root_cancelled_but_child_is_in_tty_lock", &[]);
    let before = pty.expect_prompt();
    assert_before(&before, &[PAUSE_MSG, "('bp_then_hang', '"]);
    let mut shown = before;
    ctrl_c_at_prompt(&mut pty, 5);
    // A SIGINT while the lock is held by a connected child: the root says
    // so once and does nothing else.
    pty.signal_group(Signal::INT);
    until(&mut pty, &mut shown, "ignoring ctrl-c: ('bp_then_hang', '");
    pty.send_line("p nothing");
    shown += &pty.expect_prompt();
    pty.send_line("c");
    until(&mut pty, &mut shown, "bp_then_hang released the terminal");
    let (rest, code) = pty.expect_exit();
    shown += &rest;
    assert_eq!(code, 0, "{shown}");
    let cancelling = shown.find("root: cancelling the nursery").expect(&shown);
    let released = shown.find("bp_then_hang released the terminal").unwrap();
    let complete = shown.find("root: teardown complete").expect(&shown);
    // The cancel was asked for during the REPL and completed after it.
    assert!(cancelling < released && released < complete, "{shown}");
    assert_reaped(&own_pids(&shown));
}

/// Scenario 18: the holder is SIGKILLed in its REPL (its line editor had
/// the terminal in raw mode). The root names it, releases the lock and
/// restores the terminal mode; the waiter's prompt appears; the mode is
/// the saved one again afterwards, like `stty -g` before the run.
#[test]
fn scenario_18_stale_lock() {
    let mut pty = Pty::spawn("stale_lock", &[]);
    let saved = pty.stty_g();
    let before = pty.expect_prompt();
    assert_before(&before, &[PAUSE_MSG, "('holder', '"]);
    let raw = pty.stty_g();
    assert_ne!(raw, saved, "the REPL's editor should have the terminal raw");
    let mut shown = before;
    // The waiter queues behind the holder.
    until(&mut pty, &mut shown, "waiter pid ");
    let holder: u32 = shown
        .lines()
        .find_map(|l| l.strip_prefix("holder pid "))
        .and_then(|pid| pid.trim().parse().ok())
        .expect(&shown);
    std::thread::sleep(Duration::from_millis(200));
    kill9(holder);
    let before = pty.expect_prompt();
    shown += &before;
    assert_before(
        &before,
        &[
            "force-releasing the tree lock held by ('holder', '",
            "the peer is gone",
            PAUSE_MSG,
            "('waiter', '",
        ],
    );
    assert!(
        before.find("force-releasing") < before.find("('waiter', '"),
        "{before}"
    );
    pty.send_line("c");
    until(&mut pty, &mut shown, "waiter released the terminal");
    // The waiter's editor restored what it found on entry: the mode the
    // root had restored, not the dead holder's raw one.
    assert_eq!(pty.stty_g(), saved);
    let (rest, code) = pty.expect_exit();
    shown += &rest;
    assert_ne!(code, 0, "the root's child was killed: {shown}");
    assert!(!shown.contains(&format!("{PROMPT}{PROMPT}")), "{shown}");
    assert_reaped(&own_pids(&shown));
}

/// Scenarios 17 and 14 together: ctrl-c with no REPL live cancels the
/// tree; the cancelled worker's teardown opens a REPL, which the root's
/// cancel waits for (well past its grace) instead of killing it.
#[test]
fn ctrl_c_cancels_the_tree_and_waits_for_a_teardown_repl() {
    let mut pty = Pty::spawn_with_args("shielded_pause", &["ctrlc"], &[]);
    let mut shown = pty.expect("root: waiting for ctrl-c");
    shown += "root: waiting for ctrl-c";
    until(&mut pty, &mut shown, "cancelled_worker pid ");
    std::thread::sleep(Duration::from_millis(200));
    pty.send_raw(b"\x03");
    let before = pty.expect_prompt();
    shown += &before;
    assert_before(
        &before,
        &[
            "cancelling the actor tree",
            "INSIDE CANCELLED TEARDOWN",
            PAUSE_MSG,
            "('cancelled_worker', '",
        ],
    );
    // The root's grace is 1 s: the REPL outlives it.
    std::thread::sleep(Duration::from_millis(1500));
    pty.send_line("p step");
    assert_before(&pty.expect_prompt(), &["step = \"teardown\""]);
    pty.send_line("c");
    until(&mut pty, &mut shown, "teardown done");
    let (rest, code) = pty.expect_exit();
    shown += &rest;
    assert_eq!(code, i32::from(CANCELLED_EXIT), "{shown}");
    assert_reaped(&own_pids(&shown));
}

/// SIGTERM or SIGHUP to the root while a subactor's REPL is live: the
/// tree ends in order, the terminal is cooked again, no socket directory
/// stays, and the root exits with 128 + the signal.
fn terminated_in_a_repl(signal: rustix::process::Signal) {
    let tmp = common::fresh_tmpdir(&format!("term-{}", signal.as_raw()));
    let env = [("TMPDIR", tmp.to_str().unwrap()), ("XDG_RUNTIME_DIR", "")];
    let mut pty = Pty::spawn("subactor_breakpoint", &env);
    let before = pty.expect_prompt();
    assert_before(&before, &[PAUSE_MSG, "('breakpoint_forever', '"]);
    assert!(!pty.cooked(), "the REPL's editor runs in raw mode");
    let root = rustix::process::Pid::from_raw(pty.pid() as i32).unwrap();
    rustix::process::kill_process(root, signal).unwrap();
    let (rest, code, cooked) = pty.expect_exit_cooked();
    assert_eq!(code, 128 + signal.as_raw(), "{rest}");
    assert!(cooked, "the terminal was left raw: {rest}");
    common::assert_left_nothing_in(&tmp);
}

#[test]
fn sigterm_to_the_root_ends_the_tree_in_a_repl() {
    terminated_in_a_repl(rustix::process::Signal::TERM);
}

#[test]
fn sighup_to_the_root_ends_the_tree_in_a_repl() {
    terminated_in_a_repl(rustix::process::Signal::HUP);
}

/// The root SIGKILLed while a subactor's REPL holds the terminal in raw
/// mode: the subactor gets its parent-death signal, puts the terminal
/// back in cooked mode, and ends.
#[test]
fn a_repl_holder_whose_root_is_killed_leaves_the_terminal_cooked() {
    let mut pty = Pty::spawn_under_shell("subactor_breakpoint");
    let before = pty.expect_prompt();
    assert_before(&before, &[PAUSE_MSG, "('breakpoint_forever', '"]);
    let child = own_pids(&before)[0];
    assert!(!pty.cooked(), "the REPL's editor runs in raw mode");
    kill9(parent_of(child));
    let left = common::wait_not_running(&[child], Duration::from_secs(5));
    assert!(left.is_empty(), "the REPL holder outlived its root");
    assert!(pty.cooked(), "the terminal was left raw");
    kill9(pty.pid());
}

/// A process's parent, from `/proc/<pid>/stat`.
fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = stat.rsplit_once(')').unwrap().1;
    after_name
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}
