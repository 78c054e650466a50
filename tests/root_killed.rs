//! No process outlives the root: SIGKILL the root of a three-level tree
//! and every descendant is gone within 2 s.
//!
//! Its own test binary: it makes this process the subreaper of the
//! orphans, and reaps them, which must not race other tests' children.

#![cfg(feature = "runtime")]

mod common;

use std::time::Duration;

use common::{
    assert_left_nothing_in, assert_reaped, fresh_tmpdir, pid_on, proc_state, running,
    wait_not_running, Running,
};
use rustix::process::{kill_process, set_child_subreaper, waitpid, Pid, Signal, WaitOptions};

/// Reaps the orphans that re-parented to us until none of `pids` is
/// left, for up to 5 s, then asserts that none is. Reaped while waiting:
/// a multi-threaded process shows as a zombie as soon as its main thread
/// exits, but cannot be reaped before its other threads have, so one
/// round of `waitpid` right after the zombies appear can come too early.
fn reap_orphans(pids: &[u32]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|&p| proc_state(p).is_some()) && std::time::Instant::now() < deadline {
        while let Ok(Some(_)) = waitpid(None, WaitOptions::NOHANG) {}
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_reaped(pids);
}

/// SIGKILLs the middle actor of `tree_stuck`, whose grandchild's only
/// thread is blocked: nothing but the kernel's parent-death signal can end
/// it. The root sees its child fail and exits with the error.
fn kill_middle_of_stuck_tree() {
    // A temp dir of this run's own: what the tree leaves there is its.
    let tmp = fresh_tmpdir("killed-middle");
    let env = [("TMPDIR", tmp.to_str().unwrap()), ("XDG_RUNTIME_DIR", "")];
    let mut root = Running::start("actor_tree", &["tree_stuck"], &env);
    let child = pid_on(&root.expect("child pid", Duration::from_secs(20)));
    let grandchild = pid_on(&root.expect("grandchild pid", Duration::from_secs(20)));
    kill_process(Pid::from_raw(child as i32).unwrap(), Signal::KILL).unwrap();
    let survivors = wait_not_running(&[grandchild], Duration::from_secs(2));
    assert!(survivors.is_empty(), "grandchild outlived its parent");
    let (status, lines) = root.finish(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.contains("ActorFailed")),
        "{lines:#?}"
    );
    reap_orphans(&[child, grandchild]);
    // The grandchild died without cleaning up: its socket directory went
    // with the root's.
    assert_left_nothing_in(&tmp);
}

/// Kills the root of `scenario`'s three-level tree and checks the rest.
fn kill_root_of(scenario: &str) {
    let mut root = Running::start("actor_tree", &[scenario], &[]);
    let child = pid_on(&root.expect("child pid", Duration::from_secs(20)));
    let grandchild = pid_on(&root.expect("grandchild pid", Duration::from_secs(20)));
    assert!(running(child) && running(grandchild));

    kill_process(Pid::from_raw(root.pid() as i32).unwrap(), Signal::KILL).unwrap();
    let survivors = wait_not_running(&[child, grandchild], Duration::from_secs(2));
    assert!(
        survivors.is_empty(),
        "{scenario}: still running 2 s after the root died: {survivors:?}"
    );

    let (status, _) = root.finish(Duration::from_secs(5));
    assert_eq!(status.code(), None, "killed by a signal");
    reap_orphans(&[child, grandchild]);
}

/// One test, two trees, in sequence: reaping any orphan (waitpid(-1))
/// must not race another test's children.
#[test]
fn killing_the_root_takes_the_whole_tree_down() {
    // Orphans re-parent to us, so that we can reap them and prove no
    // zombie is left (PID 1 of a container may not reap).
    set_child_subreaper(Some(rustix::process::getpid())).unwrap();
    // Descendants that notice the closed connection.
    kill_root_of("tree_forever");
    kill_root_of("tree_stuck");
    kill_middle_of_stuck_tree();
}
