//! The REPL of `pause!` through a real pseudo-terminal: scenarios 1, 2
//! and 4 of SCENARIOS.md, typed as a user would.

#![cfg(feature = "runtime")]

mod common;

use common::pause_site;
use common::pty::{assert_before, in_prompt_msg, Pty};
use smol_devx::debug::repl::{CRASH_MSG, PAUSE_MSG};

#[test]
fn scenario_1_root_actor_breakpoint() {
    let mut pty = Pty::spawn("root_actor_breakpoint", &[]);
    let before = pty.expect_prompt();
    assert_before(
        &before,
        &[
            PAUSE_MSG,
            "('root', '",
            &pause_site("root_actor_breakpoint"),
        ],
    );
    assert!(!before.contains("Error"), "{before}");
    pty.send_line("p answer");
    assert_before(&pty.expect_prompt(), &["answer = 42"]);
    // Line editing on a terminal: the up arrow brings the last command back.
    pty.send_raw(b"\x1b[A\r");
    pty.expect("answer = 42");
    pty.expect_prompt();
    pty.send_line("c");
    let (rest, code) = pty.expect_exit();
    assert_eq!(code, 0, "{rest}");
    assert!(rest.contains("after the pause"), "{rest}");
}

#[test]
fn scenario_2_root_actor_breakpoint_forever() {
    let mut pty = Pty::spawn("root_actor_breakpoint_forever", &[]);
    for round in 0..4 {
        let before = pty.expect_prompt();
        assert_before(&before, &[PAUSE_MSG, "('root', '"]);
        pty.send_line("p round");
        assert_before(&pty.expect_prompt(), &[&format!("round = {round}")]);
        pty.send_line(if round < 3 { "c" } else { "q" });
    }
    let (rest, code) = pty.expect_exit();
    assert_ne!(code, 0, "{rest}");
    assert!(rest.contains("quit from the REPL in ('root'"), "{rest}");
}

#[test]
fn scenario_4_subactor_breakpoint() {
    let mut pty = Pty::spawn("subactor_breakpoint", &[]);
    for i in 0..4 {
        let before = pty.expect_prompt();
        assert!(
            in_prompt_msg(&before, &[PAUSE_MSG, "('breakpoint_forever', '"]),
            "prompt {i}: {before}"
        );
        assert!(!before.contains("('root'"), "{before}");
        pty.send_line(if i < 3 { "c" } else { "q" });
    }
    // The quit climbs to the root, whose crash REPL shows it boxed.
    let before = pty.expect_prompt();
    assert_before(
        &before,
        &[
            CRASH_MSG,
            "('root', '",
            "RemoteActorError: ('breakpoint_forever', '",
            "raised Quit: quit from the REPL",
        ],
    );
    assert!(
        before.find(CRASH_MSG) < before.find("RemoteActorError"),
        "{before}"
    );
    pty.send_line("c");
    let (rest, code) = pty.expect_exit();
    assert_ne!(code, 0, "{rest}");
    assert!(
        rest.contains("RemoteActorError: ('breakpoint_forever'"),
        "{rest}"
    );
}

/// Scenario 19: `gdb` attaches a real debugger on the same terminal; its
/// backtrace runs through the example's pause site, and the REPL comes
/// back when it detaches.
#[test]
fn scenario_19_gdb_hand_off() {
    if !common::gdb_installed() {
        return;
    }
    let mut pty = Pty::spawn("root_actor_breakpoint", &[]);
    pty.expect_prompt();
    pty.send_line("gdb");
    pty.expect_gdb_prompt();
    pty.send_line("bt");
    let bt = pty.expect_gdb_prompt();
    let site = pause_site("root_actor_breakpoint");
    let file_line = site.trim_start_matches("examples/");
    assert!(
        bt.contains(file_line),
        "{file_line} not in gdb's backtrace:\n{bt}"
    );
    pty.send_line("detach");
    pty.expect_gdb_prompt();
    pty.send_line("quit");
    let before = pty.expect_prompt();
    assert_before(&before, &[PAUSE_MSG, "('root', '"]);
    pty.send_line("c");
    let (rest, code) = pty.expect_exit();
    assert_eq!(code, 0, "{rest}");
    assert!(rest.contains("after the pause"), "{rest}");
}

/// The actors of `multi_subactors`.
const ACTORS: [&str; 5] = [
    "breakpoint_forever",
    "name_error_1",
    "name_error",
    "spawn_error",
    "root",
];

/// Which actor's REPL a prompt belongs to, and whether it is a crash.
fn holder(before: &str) -> (&'static str, bool) {
    for actor in ACTORS {
        for (msg, crash) in [(PAUSE_MSG, false), (CRASH_MSG, true)] {
            if before.contains(&format!("{msg} ('{actor}', '")) {
                return (actor, crash);
            }
        }
    }
    panic!("no actor's header in:\n{before}")
}

/// Scenario 6, the README's main demo, and scenario 20 (queue banner):
/// prompts never interleave, each `c` hands the terminal on, both crashes
/// are shown before the root's final crash REPL, and everything exits.
#[test]
fn scenario_6_and_20_the_main_demo() {
    // `c` until every crash was shown, then `q` in the actor that pauses
    // forever.
    main_demo(&["name_error", "name_error_1", "spawn_error"]);
}

#[test]
fn scenario_6_quit_while_a_crash_still_climbs() {
    // `q` as soon as the leaves' crashes were shown: spawn_error's crash,
    // still climbing from name_error_1, must not be lost to the root's
    // teardown (the lock is free the moment breakpoint_forever quits).
    main_demo(&["name_error", "name_error_1"]);
}

/// Drives scenario 6: `c` at each prompt, `q` in `breakpoint_forever`
/// once the crashes of `quit_after` were shown; checks that every crash
/// REPL came, innermost first, before the root's.
fn main_demo(quit_after: &[&str]) {
    let mut pty = Pty::spawn("multi_subactors", &[]);
    let mut seen: Vec<(&str, bool)> = Vec::new();
    let mut banners = 0;
    for i in 0..300 {
        let before = pty.expect_prompt();
        if i == 0 {
            // Let every actor reach the terminal's queue behind the first.
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        // One header per prompt: nothing interleaved.
        let headers = before.matches(PAUSE_MSG).count() + before.matches(CRASH_MSG).count();
        assert_eq!(headers, 1, "{before}");
        if let Some(banner) = before
            .lines()
            .find(|l| l.contains(" waiting for the terminal: "))
        {
            // "N actor(s) waiting for the terminal: a, b"
            let (count, names) = banner.split_once(" waiting for the terminal: ").unwrap();
            let count: usize = count.split_whitespace().next().unwrap().parse().unwrap();
            assert_eq!(count, names.trim().split(", ").count(), "{banner}");
            banners += 1;
        }
        let (actor, crash) = holder(&before);
        seen.push((actor, crash));
        let crashes_shown = quit_after.iter().all(|c| seen.contains(&(c, true)));
        if actor == "root" {
            assert!(crash, "{before}");
            pty.send_line("c");
            break;
        }
        if actor == "breakpoint_forever" && crashes_shown {
            pty.send_line("q");
        } else {
            pty.send_line("c");
        }
    }
    let (rest, code) = pty.expect_exit();
    assert_ne!(code, 0, "{rest}");
    assert!(banners > 0, "no queue banner in {seen:?}");
    let at = |entry: (&str, bool)| seen.iter().position(|s| *s == entry);
    let root = at(("root", true)).unwrap_or_else(|| panic!("no root crash REPL: {seen:?}"));
    for crashed in ["name_error", "name_error_1", "spawn_error"] {
        let shown = at((crashed, true)).unwrap_or_else(|| panic!("no {crashed} crash: {seen:?}"));
        assert!(shown < root, "{seen:?}");
    }
    assert!(
        at(("name_error_1", true)) < at(("spawn_error", true)),
        "innermost first: {seen:?}"
    );
}

/// A line holding bytes that are not UTF-8 (a Latin-1 key, a stray meta
/// bit) is refused with a message; the paused subactor's REPL goes on,
/// and the pause ends as typed.
#[test]
fn bytes_that_are_not_utf8_never_end_a_pause() {
    let mut pty = Pty::spawn("subactor_breakpoint", &[]);
    let before = pty.expect_prompt();
    assert_before(&before, &[PAUSE_MSG, "('breakpoint_forever', '"]);
    for bad in [&b"p \xe9\r"[..], b"\xff", b"\xc3\r"] {
        pty.send_raw(bad);
        pty.expect(smol_devx::debug::repl::NOT_UTF8);
        pty.expect_prompt();
    }
    pty.send_line("p round");
    let before = pty.expect("round = 0");
    assert!(!before.contains("refused"), "{before}");
    pty.expect_prompt();
    pty.send_line("q");
    let before = pty.expect_prompt();
    assert_before(&before, &[CRASH_MSG, "('root', '", "raised Quit"]);
    pty.send_line("c");
    let (rest, code) = pty.expect_exit();
    assert_ne!(code, 0, "{rest}");
    assert!(!rest.contains("pause refused"), "{rest}");
}

/// Lines typed ahead, in one burst while the REPL is busy, all reach it
/// in order: each pause of the loop takes its `p round` and its `c`.
#[test]
fn type_ahead_reaches_the_repl_in_order() {
    let mut pty = Pty::spawn("root_actor_breakpoint_forever", &[]);
    pty.expect_prompt();
    pty.send_raw(b"p round\rc\rp round\rc\rp round\rq\r");
    for round in 0..3 {
        pty.expect(&format!("round = {round}"));
    }
    let (rest, code) = pty.expect_exit();
    assert_ne!(code, 0, "{rest}");
    assert!(rest.contains("quit from the REPL in ('root'"), "{rest}");
}

/// Without gdb, the `gdb` command says how to get it, and the REPL goes
/// on.
#[test]
fn gdb_missing_is_explained_and_the_repl_goes_on() {
    let mut pty = Pty::spawn("root_actor_breakpoint", &[("PATH", "/nonexistent")]);
    pty.expect_prompt();
    pty.send_line("gdb");
    let before = pty.expect_prompt();
    assert_before(&before, &[smol_devx::debug::gdb::NO_GDB]);
    pty.send_line("p answer");
    assert_before(&pty.expect_prompt(), &["answer = 42"]);
    pty.send_line("c");
    let (rest, code) = pty.expect_exit();
    assert_eq!(code, 0, "{rest}");
}

/// `pause_blocking!` on the thread that runs the actor's tasks is refused
/// at once with an error that says what to use; the refusal climbs like
/// any failure and the program ends.
#[test]
fn pause_blocking_on_an_executor_thread_is_refused_at_once() {
    let mut pty = Pty::spawn_with_args("pause_from_thread", &["--on-executor"], &[]);
    let before = pty.expect_prompt();
    assert_before(
        &before,
        &[
            CRASH_MSG,
            "('worker_on_executor', '",
            "use `pause!().await` there",
        ],
    );
    assert!(!before.contains(PAUSE_MSG), "{before}");
    pty.send_line("c");
    assert_before(&pty.expect_prompt(), &[CRASH_MSG, "('root', '"]);
    pty.send_line("c");
    let (rest, code) = pty.expect_exit();
    assert_ne!(code, 0, "{rest}");
}

/// `lock` tells the tree lock's state when it is typed: actors that
/// queued after the REPL opened show up, in order.
#[test]
fn lock_shows_the_state_when_typed() {
    let mut pty = Pty::spawn("multi_subactors", &[]);
    pty.expect_prompt();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let state = loop {
        pty.send_line("lock");
        let state = pty.expect_prompt();
        if state.contains("waiting 2: ") || std::time::Instant::now() > deadline {
            break state;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_before(
        &state,
        &["tree lock held by ('", "waiting 1: ('", "waiting 2: ('"],
    );
    assert!(
        state.find("waiting 1: ") < state.find("waiting 2: "),
        "{state}"
    );
    drop(pty);
}
