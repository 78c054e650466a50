//! The actor tree with real processes: every test runs the `actor_tree`
//! example, follows the pids its actors print, and checks that none is
//! left behind, not even as a zombie.

#![cfg(feature = "runtime")]

mod common;

use std::time::Duration;

use common::{actor_pids, assert_reaped, pid_on, Running};

const T: Duration = Duration::from_secs(20);

#[test]
fn spawn_and_return_a_value() {
    let root = Running::start("actor_tree", &["return"], &[]);
    let root_pid = root.pid();
    let (status, lines) = root.finish(T);
    assert!(status.success(), "{lines:#?}");
    assert!(lines.iter().any(|l| l == "result 42"), "{lines:#?}");
    let pids = actor_pids(&lines);
    assert_eq!(pids.len(), 2, "root and child: {lines:#?}");
    assert!(!pids[1..].contains(&root_pid));
    assert_reaped(&pids);
}

#[test]
fn an_error_three_levels_down_reaches_the_root_naming_every_hop() {
    let root = Running::start("actor_tree", &["nested_error"], &[]);
    let (status, lines) = root.finish(T);
    assert_eq!(status.code(), Some(1), "{lines:#?}");
    let report = lines
        .iter()
        .find(|l| l.starts_with("error "))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(
        report,
        "error type=NameError src=name_error msg=name 'doggypants' is not defined \
         relay=spawn_until_0,spawn_until_1,spawner0"
    );
    // The root also prints the boxed error as it exits.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("RemoteActorError: ('name_error'")),
        "{lines:#?}"
    );
    // root, spawner0, spawn_until_1, spawn_until_0, name_error
    let pids = actor_pids(&lines);
    assert_eq!(pids.len(), 5, "{lines:#?}");
    assert_reaped(&pids);
}

#[test]
fn one_failing_child_cancels_its_siblings() {
    let mut root = Running::start("actor_tree", &["one_cancels_all"], &[]);
    let pids = root.expect_all(&["sleeper_a pid", "sleeper_b pid"], T);
    let (a, b) = (pid_on(&pids[0]), pid_on(&pids[1]));
    assert!(common::running(a) && common::running(b));
    root.expect("joined with NameError from fail_after", T);
    // The sleepers would sleep forever: only the cancel ends them, and
    // the graceful message is enough.
    let (status, lines) = root.finish(T);
    assert!(status.success(), "{lines:#?}");
    assert!(
        !lines.iter().any(|l| l.contains("still running")),
        "{lines:#?}"
    );
    assert_reaped(&actor_pids(&lines));
}

/// A child that cannot act on the cancel message (its thread is blocked)
/// gets SIGTERM after the grace period, and is reaped.
#[test]
fn a_child_deaf_to_cancel_is_terminated() {
    let mut root = Running::start("actor_tree", &["stubborn"], &[]);
    let stuck = pid_on(&root.expect("block_forever pid", T));
    root.expect("joined with NameError from fail_after", T);
    let (status, lines) = root.finish(T);
    assert!(status.success(), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("(pid {stuck}) still running")) && l.contains("TERM")),
        "{lines:#?}"
    );
    assert_reaped(&actor_pids(&lines));
    // Killed, it cleaned nothing up: its parent removed its socket dir.
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let prefix = format!("smol-devx-{stuck}-");
    let left: Vec<_> = std::fs::read_dir(base)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_daemon_is_served_then_cancelled() {
    let root = Running::start("actor_tree", &["daemon"], &[]);
    let (status, lines) = root.finish(T);
    assert!(status.success(), "{lines:#?}");
    let echoes: Vec<_> = lines.iter().filter(|l| l.starts_with("echo ")).collect();
    assert_eq!(echoes, ["echo hello 0", "echo hello 1", "echo hello 2"]);
    let cancelled = lines.iter().position(|l| l == "daemon cancelled");
    assert!(cancelled.is_some(), "{lines:#?}");
    assert_reaped(&actor_pids(&lines));
}

#[test]
fn the_tcp_transport_works_too() {
    let root = Running::start(
        "actor_tree",
        &["nested_error"],
        &[("SMOL_DEVX_TRANSPORT", "tcp")],
    );
    let (status, lines) = root.finish(T);
    assert_eq!(status.code(), Some(1), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.contains("listening tcp:127.0.0.1:")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("relay=spawn_until_0,spawn_until_1,spawner0")),
        "{lines:#?}"
    );
    assert_reaped(&actor_pids(&lines));
}

#[test]
fn debug_mode_is_inherited_down_the_tree_unless_overridden() {
    let root = Running::start("actor_tree", &["debug_modes"], &[]);
    let (status, lines) = root.finish(T);
    assert!(status.success(), "{lines:#?}");
    let mut modes: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("debug "))
        .map(String::as_str)
        .collect();
    modes.sort();
    assert_eq!(
        modes,
        [
            "debug inherits true",
            "debug inherits_child true",
            "debug overridden false",
            "debug overridden_child false",
            "debug root true",
        ]
    );
}

/// `/proc/<pid>/stat` field `n` (1-based, after the command name).
fn stat_field(pid: u32, n: usize) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = stat.rsplit_once(')').unwrap().1;
    after_name.split_whitespace().nth(n - 3).unwrap().to_owned()
}

/// Children stay in the root's process group (so they may read the
/// terminal) and ignore SIGINT from before exec (so a ctrl-c reaches
/// only the root, which supervises them).
#[test]
fn children_share_the_root_process_group_and_ignore_sigint() {
    let mut root = Running::start("actor_tree", &["serve"], &[]);
    let daemon = pid_on(&root.expect("echo_daemon pid", T));
    assert_eq!(stat_field(daemon, 5), stat_field(root.pid(), 5), "pgrp");
    let status = std::fs::read_to_string(format!("/proc/{daemon}/status")).unwrap();
    let ignored = status.lines().find(|l| l.starts_with("SigIgn:")).unwrap();
    let mask = u64::from_str_radix(ignored.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_ne!(mask & (1 << (2 - 1)), 0, "SIGINT not ignored: {ignored}");
    // And it really survives one.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(daemon as i32).unwrap(),
        rustix::process::Signal::INT,
    )
    .unwrap();
    root.expect("echo ok", T);
    root.expect("echo ok", T);
    assert!(common::running(daemon));
    root.close_stdin();
    let (status, lines) = root.finish(T);
    assert!(status.success(), "{lines:#?}");
    assert_reaped(&actor_pids(&lines));
}

#[test]
fn a_panic_reaches_the_parent_with_its_message_and_location() {
    let root = Running::start("actor_tree", &["panic"], &[]);
    let (status, lines) = root.finish(T);
    assert!(status.success(), "{lines:#?}");
    let line = lines
        .iter()
        .find(|l| l.starts_with("joined with panic from panicker: the panicker panicked (at examples/actor_tree.rs:"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/actor_tree.rs"
    ))
    .unwrap();
    let n = source
        .lines()
        .position(|l| l.contains("panic!(\"the panicker panicked\")"))
        .unwrap()
        + 1;
    assert!(line.contains(&format!("actor_tree.rs:{n}:")), "{line}");
    assert_reaped(&actor_pids(&lines));
}

/// A `$TMPDIR` too long for a Unix socket path does not stop the tree:
/// its sockets go to a short private place, and nothing stays behind.
#[test]
fn a_temp_dir_too_long_for_a_socket_path_still_runs() {
    let long = std::env::temp_dir().join(format!(
        "smol-devx-test-a-very-long-temp-dir-name-{}-{}",
        std::process::id(),
        "x".repeat(60)
    ));
    std::fs::create_dir_all(&long).unwrap();
    let root = Running::start(
        "actor_tree",
        &["return"],
        &[("TMPDIR", long.to_str().unwrap())],
    );
    let (status, lines) = root.finish(T);
    assert!(status.success(), "{lines:#?}");
    assert!(lines.iter().any(|l| l == "result 42"), "{lines:#?}");
    assert_reaped(&actor_pids(&lines));
    let left: Vec<_> = std::fs::read_dir(&long).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    std::fs::remove_dir(&long).unwrap();
}

/// A nursery dropped while its child is in a REPL (as a `?` or a timeout
/// drops it) leaves the child alone until the debugger is free: the
/// child's REPL goes on, and nothing is left behind at the end.
#[test]
fn a_dropped_nursery_kills_no_repl() {
    use std::io::Write;
    let mut root = Running::start("nursery_dropped_in_repl", &[], &[]);
    let child = pid_on(&root.expect("breakpoint_forever pid", T));
    root.expect("nursery dropped", T);
    std::thread::sleep(Duration::from_millis(300));
    assert!(common::running(child), "the child in its REPL was killed");
    let stdin = root.child.stdin.as_mut().unwrap();
    stdin.write_all(b"p round\nc\n").unwrap();
    root.expect("round = 0", T);
    root.expect("> examples/common/mod.rs", T);
    assert!(common::running(child));
    let stdin = root.child.stdin.as_mut().unwrap();
    stdin.write_all(b"p round\nq\n").unwrap();
    root.expect("round = 1", T);
    let (status, lines) = root.finish(T);
    assert!(status.success(), "{lines:#?}");
    assert!(lines.iter().any(|l| l.ends_with("root done")), "{lines:#?}");
    assert_reaped(&[child]);
}
