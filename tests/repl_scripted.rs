//! The REPL of `pause!` in scripted mode (`SMOL_DEVX_REPL_SCRIPT`, for
//! CI) and on plain piped input: real actor processes, no terminal.
//! Pseudo-terminal tests come with the line editor.

#![cfg(feature = "runtime")]

mod common;

use std::time::Duration;

use common::{actor_pids, assert_reaped, has, pause_site, Running};
use smol_devx::debug::repl::{CRASH_MSG, PAUSE_MSG, PROMPT};

const T: Duration = Duration::from_secs(30);

/// The location line a REPL shows for `example`'s pause.
fn pause_line(example: &str) -> String {
    format!("> {}", pause_site(example))
}

fn index(lines: &[String], pred: impl Fn(&str) -> bool) -> usize {
    lines
        .iter()
        .position(|l| pred(l))
        .unwrap_or_else(|| panic!("{lines:#?}"))
}

#[test]
fn scenario_1_the_root_pauses_shows_its_values_and_continues() {
    let root = Running::start(
        "root_actor_breakpoint",
        &[],
        &[("SMOL_DEVX_REPL_SCRIPT", "p answer;bt;c")],
    );
    let (status, lines) = root.finish(T);
    assert!(status.success(), "{lines:#?}");
    let header = index(&lines, |l| {
        l.starts_with(PAUSE_MSG) && l.contains(" ('root', '")
    });
    let location = index(&lines, |l| l == pause_line("root_actor_breakpoint"));
    let value = index(&lines, |l| l == "answer = 42");
    // The innermost of the program's frames, selected: marked `->`.
    let own_frame = index(&lines, |l| {
        l.trim() == "->root_actor_breakpoint::main::{{closure}}::{{closure}}"
    });
    let after = index(&lines, |l| l == "after the pause");
    assert!(header < location && location < value && value < own_frame && own_frame < after);
    // Runtime frames stay hidden: only the example's own are listed.
    let frames: Vec<&String> = lines[own_frame..after]
        .iter()
        .filter(|l| l.starts_with("  ") && !l.starts_with("      at") && !l.contains("hidden"))
        .collect();
    assert!(
        frames
            .iter()
            .all(|f| f.trim().starts_with("root_actor_breakpoint::")),
        "{frames:#?}"
    );
    assert!(
        has(&lines, |l| l.contains("runtime frames hidden")),
        "{lines:#?}"
    );
    assert_eq!(lines.iter().filter(|l| l.starts_with(PROMPT)).count(), 3);
}

#[test]
fn scenario_4_a_subactor_pauses_three_times_then_quits_to_its_parent() {
    let root = Running::start(
        "subactor_breakpoint",
        &[],
        &[("SMOL_DEVX_REPL_SCRIPT", "c;p round;c;c;q")],
    );
    let (status, lines) = root.finish(T);
    assert_eq!(status.code(), Some(1), "{lines:#?}");
    let headers = lines
        .iter()
        .filter(|l| l.starts_with(PAUSE_MSG) && l.contains(" ('breakpoint_forever', '"))
        .count();
    assert_eq!(headers, 4, "{lines:#?}");
    // The root's own copy of the script continues its crash REPL.
    assert!(
        has(&lines, |l| l.starts_with(CRASH_MSG)
            && l.contains(" ('root', '")),
        "{lines:#?}"
    );
    assert!(has(&lines, |l| l == "round = 1"), "{lines:#?}");
    assert!(
        has(&lines, |l| l
            .starts_with("err: RemoteActorError: ('breakpoint_forever'")
            && l.contains("raised Quit: quit from the REPL")),
        "{lines:#?}"
    );
    let pids = actor_pids(&lines);
    assert_eq!(pids.len(), 1, "{lines:#?}");
    assert_reaped(&pids);
}

#[test]
fn tasks_shows_the_paused_task_waiting_in_its_repl() {
    let root = Running::start(
        "root_actor_breakpoint",
        &[],
        &[("SMOL_DEVX_REPL_SCRIPT", "tasks;tasks json;c")],
    );
    let (status, lines) = root.finish(T);
    assert!(status.success(), "{lines:#?}");
    // The root's body is a tracked task; the REPL it waits on is its span.
    let root_task = index(&lines, |l| {
        l.contains("task #") && l.contains(" root - idle")
    });
    let repl_span = index(&lines, |l| {
        l.trim_start().starts_with("await \"REPL\" <- waiting")
    });
    assert!(root_task < repl_span, "{lines:#?}");
    let json = lines
        .iter()
        .find(|l| l.starts_with("{\"tasks\""))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    let tree: smol_devx::task::TaskTree = serde_json::from_str(json).unwrap();
    assert!(tree.tasks.iter().any(|t| t.name == "root"), "{json}");
}

#[test]
fn end_of_input_continues() {
    let mut root = Running::start("root_actor_breakpoint", &[], &[("RUST_LOG", "info")]);
    root.expect(PAUSE_MSG, T);
    root.close_stdin();
    let (status, lines) = root.finish(T);
    assert!(status.success(), "{lines:#?}");
    assert!(
        has(&lines, |l| l.contains("end of REPL input, continuing")),
        "{lines:#?}"
    );
    assert!(has(&lines, |l| l == "after the pause"), "{lines:#?}");
}

#[test]
fn pause_blocking_from_a_plain_thread_of_a_subactor() {
    let root = Running::start(
        "pause_from_thread",
        &[],
        &[("SMOL_DEVX_REPL_SCRIPT", "p step;c")],
    );
    let (status, lines) = root.finish(T);
    assert!(status.success(), "{lines:#?}");
    let header = index(&lines, |l| {
        l.starts_with(PAUSE_MSG) && l.contains(" ('worker', '")
    });
    let location = index(&lines, |l| l == pause_line("pause_from_thread"));
    let value = index(&lines, |l| l == "step = \"halfway\"");
    let done = index(&lines, |l| l == "thread done");
    assert!(
        header < location && location < value && value < done,
        "{lines:#?}"
    );
}
