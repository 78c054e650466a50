//! The REPL of `pause!` through a real pseudo-terminal: scenarios 1, 2
//! and 4 of SCENARIOS.md, typed as a user would.

mod common;

use common::pty::{assert_before, in_prompt_msg, Pty};
use smol_devx::debug::repl::PAUSE_MSG;

/// `examples/<name>.rs:<line of pause!>`.
fn pause_site(example: &str) -> String {
    let path = format!("examples/{example}.rs");
    let source = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let n = source.lines().position(|l| l.contains("pause!(")).unwrap() + 1;
    format!("{path}:{n}")
}

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
    let (rest, code) = pty.expect_exit();
    assert_ne!(code, 0, "{rest}");
    assert!(
        rest.contains("RemoteActorError: ('breakpoint_forever'"),
        "{rest}"
    );
    assert!(rest.contains("quit from the REPL"), "{rest}");
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
