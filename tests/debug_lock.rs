//! The tree-wide TTY lock across real processes: mutual exclusion and
//! FIFO order under contention, and recovery from every fault.

mod common;

use std::time::Duration;

use common::{assert_reaped, pid_on, Running};

const T: Duration = Duration::from_secs(30);

fn actor_pids(lines: &[String]) -> Vec<u32> {
    lines
        .iter()
        .filter(|l| !l.starts_with("err: ") && l.contains(" pid "))
        .map(|l| pid_on(l))
        .collect()
}

fn kill9(pid: u32) {
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
}

/// 8 subactors x 50 rounds: no two critical sections overlap, and the
/// root granted in request order.
#[test]
fn eight_subactors_never_overlap_and_are_served_in_order() {
    let file = std::env::temp_dir().join(format!("smol-devx-contend-{}", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let root = Running::start(
        "debug_lock",
        &["contend", "8", "50", file.to_str().unwrap()],
        &[],
    );
    let (status, lines) = root.finish(Duration::from_secs(120));
    assert!(status.success(), "{lines:#?}");
    let markers = std::fs::read_to_string(&file).unwrap();
    let _ = std::fs::remove_file(&file);
    let markers: Vec<&str> = markers.lines().collect();
    assert_eq!(markers.len(), 8 * 50 * 2);
    for pair in markers.chunks(2) {
        let (b, e) = (pair[0], pair[1]);
        assert!(
            b.starts_with("B ") && e.starts_with("E "),
            "overlap: {b:?} then {e:?}"
        );
        assert_eq!(b[2..], e[2..], "overlap: {b:?} closed by {e:?}");
    }
    assert!(
        lines.iter().any(|l| l == "grants 400 out_of_order 0"),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l == "lock in use at exit: false"),
        "{lines:#?}"
    );
    assert_reaped(&actor_pids(&lines));
}

#[test]
fn a_killed_holder_does_not_keep_the_lock() {
    let mut root = Running::start("debug_lock", &["holder_killed"], &[]);
    let holder = pid_on(&root.expect("holder pid", T));
    root.expect("waiter queued", T);
    kill9(holder);
    // stdout and stderr arrive through separate pipes: check each line,
    // not their interleaving.
    let (status, lines) = root.finish(T);
    assert!(status.success(), "{lines:#?}");
    let forced = lines
        .iter()
        .find(|l| l.contains("force-releasing the tree lock held by ('holder'"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(forced.contains("the peer is gone"), "{forced}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("waiter pid") && l.ends_with("locked")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l == "holder ended: ActorFailed"),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l == "lock in use at exit: false"),
        "{lines:#?}"
    );
    assert_reaped(&actor_pids(&lines));
}

#[test]
fn a_waiter_killed_in_the_queue_leaves_it_and_the_next_is_served() {
    let mut root = Running::start("debug_lock", &["waiter_killed"], &[]);
    root.expect("queued w1 w2", T);
    let w1 = root
        .seen
        .iter()
        .find(|l| l.starts_with("w1 pid") && l.ends_with("requesting"))
        .map(|l| pid_on(l))
        .unwrap();
    kill9(w1);
    // The holder releases only once the queue is exactly [w2].
    root.expect("sees queue [\"w2\"]", T);
    let (status, lines) = root.finish(T);
    assert!(status.success(), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("w2 pid") && l.ends_with("locked")),
        "{lines:#?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("w1 pid") && l.ends_with("locked")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l == "lock in use at exit: false"),
        "{lines:#?}"
    );
    assert_reaped(&actor_pids(&lines));
}

#[test]
fn the_same_task_asking_twice_is_refused_not_deadlocked() {
    let root = Running::start("debug_lock", &["double"], &[]);
    let (status, lines) = root.finish(T);
    assert!(status.success(), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("refused: double lock request")),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.ends_with(" released")), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l == "lock in use at exit: false"),
        "{lines:#?}"
    );
    assert_reaped(&actor_pids(&lines));
}

#[test]
fn requests_abandoned_at_every_await_point_leave_the_lock_free() {
    let root = Running::start("debug_lock", &["cancel_at_each_poll"], &[]);
    let (status, lines) = root.finish(T);
    assert!(status.success(), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("survived 30 abandoned requests")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l == "lock in use at exit: false"),
        "{lines:#?}"
    );
    assert_reaped(&actor_pids(&lines));
}
