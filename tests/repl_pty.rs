//! The REPL of `pause!` through a real pseudo-terminal: scenarios 1, 2
//! and 4 of SCENARIOS.md, typed as a user would.

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

/// The children of `multi_subactors`.
const CHILDREN: [&str; 3] = ["breakpoint_forever", "pauser_a", "pauser_b"];

/// The actor named in a prompt's header.
fn holder(before: &str) -> &'static str {
    CHILDREN
        .into_iter()
        .find(|c| before.contains(&format!("{PAUSE_MSG} ('{c}', '")))
        .unwrap_or_else(|| panic!("no child's header in:\n{before}"))
}

/// Scenario 20, and the README's main demo: prompts never interleave,
/// each `c` hands the terminal to the next waiter, and each header says
/// how many actors wait and which.
#[test]
fn scenario_20_queue_banner_in_the_main_demo() {
    let mut pty = Pty::spawn("multi_subactors", &[]);
    let first = holder(&pty.expect_prompt());
    // Let every child reach its pause and queue behind the first.
    std::thread::sleep(std::time::Duration::from_millis(500));
    pty.send_line("c");
    let before = pty.expect_prompt();
    let second = holder(&before);
    let banner = before
        .lines()
        .find(|l| l.contains("waiting for the terminal: "))
        .unwrap_or_else(|| panic!("no queue banner in:\n{before}"));
    // "N actor(s) waiting for the terminal: a, b"
    let (count, names) = banner.split_once(" waiting for the terminal: ").unwrap();
    let count: usize = count.split_whitespace().next().unwrap().parse().unwrap();
    let names: Vec<&str> = names.trim().split(", ").collect();
    assert_eq!(count, names.len(), "{banner}");
    // Everyone but the holder waits: the third child, and the first one
    // (if it pauses again).
    assert!(!names.contains(&second), "{banner}");
    let third = CHILDREN
        .into_iter()
        .find(|c| *c != first && *c != second)
        .unwrap();
    assert!(names.contains(&third), "{banner}");
    // Hand on until breakpoint_forever holds, then quit there.
    let mut before = before;
    for _ in 0..10 {
        if holder(&before) == "breakpoint_forever" {
            break;
        }
        pty.send_line("c");
        before = pty.expect_prompt();
    }
    assert_eq!(holder(&before), "breakpoint_forever");
    pty.send_line("q");
    // Pausers still queued get the terminal first (FIFO), then the root
    // opens its crash REPL on the quit.
    let mut before = pty.expect_prompt();
    for _ in 0..10 {
        if before.contains(CRASH_MSG) {
            break;
        }
        pty.send_line("c");
        before = pty.expect_prompt();
    }
    assert_before(&before, &[CRASH_MSG, "('root', '", "raised Quit"]);
    pty.send_line("c");
    let (rest, code) = pty.expect_exit();
    assert_ne!(code, 0, "{rest}");
    assert!(
        rest.contains("RemoteActorError: ('breakpoint_forever'"),
        "{rest}"
    );
}
