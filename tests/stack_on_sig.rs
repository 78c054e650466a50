//! `kill -USR1` dumps of a three-level actor tree (scenario 16): every
//! actor dumps, parent before child; the root gathers one dump of the
//! whole tree (text and JSON); a stuck actor is marked missing; the
//! program keeps running.

#![cfg(feature = "runtime")]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{actor_pids, assert_reaped, pid_on, running, Running};
use smol_devx::stack_on_sig::{json_path, log_path, ActorDump, DEBOUNCE};

const T: Duration = Duration::from_secs(20);

/// A fresh temp dir for the example's dumps (it takes `TMPDIR`).
fn tmpdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smol-devx-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn in_dir(dir: &Path, path: PathBuf) -> PathBuf {
    dir.join(path.file_name().unwrap())
}

fn usr1(pid: u32) {
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).unwrap(),
        rustix::process::Signal::USR1,
    )
    .unwrap();
}

/// Waits until `path` holds `n` occurrences of `part`; returns its text.
fn wait_for_in_file(path: &Path, part: &str, n: usize) -> String {
    let deadline = Instant::now() + T;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.matches(part).count() >= n {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} has not {n} x {part:?}: {text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the example and waits until every actor runs; returns the
/// run and the pids by name.
fn start(dir: &Path, args: &[&str], names: &[&str]) -> (Running, Vec<(String, u32)>) {
    let mut run = Running::start(
        "shield_hang_in_sub",
        args,
        &[("TMPDIR", dir.to_str().unwrap())],
    );
    let ready: Vec<String> = names.iter().map(|n| format!("ready {n} pid")).collect();
    let parts: Vec<&str> = ready.iter().map(String::as_str).collect();
    let lines = run.expect_all(&parts, T);
    let pids = names
        .iter()
        .zip(&lines)
        .map(|(n, l)| (n.to_string(), pid_on(l)))
        .collect();
    (run, pids)
}

/// Every actor still runs after the dumps; closing stdin then ends the
/// tree cleanly, with nothing left behind.
fn still_running_then_end(mut run: Running, pids: &[(String, u32)], dir: &Path) {
    for (name, pid) in pids {
        assert!(running(*pid), "{name} (pid {pid}) stopped after a dump");
    }
    run.close_stdin();
    let (status, lines) = run.finish(T);
    assert!(status.success(), "{lines:#?}");
    assert_reaped(&actor_pids(&lines));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sigusr1_to_the_root_dumps_every_actor_parent_first_and_gathers_one_tree() {
    let dir = tmpdir("usr1");
    let names = ["root", "hang_in_sub", "sleeper"];
    let (mut run, pids) = start(&dir, &[], &names);
    let root = pids[0].1;

    for round in 1..=2 {
        // Signals closer together make one dump.
        std::thread::sleep(DEBOUNCE);
        let round_start = run.seen.len();
        usr1(root);
        // Each actor's own dump reaches stderr, in tree order: a child
        // is signalled only once its parent has written.
        let heads: Vec<String> = names
            .iter()
            .map(|n| format!("--- smol-devx: tasks of ('{n}'"))
            .collect();
        let mut order = Vec::new();
        for head in &heads {
            run.expect(head, T);
            order.push(run.seen.len());
        }
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{:#?}", run.seen);
        // The root's gathered dump races the last actors' own dumps (other
        // processes on the same stderr): it may already have gone by.
        let gathered = "smol-devx: gathered task trees of 3 actors (0 missing)";
        if !run.seen[round_start..].iter().any(|l| l.contains(gathered)) {
            run.expect(gathered, T);
        }

        for (name, pid) in &pids {
            let own = wait_for_in_file(&in_dir(&dir, log_path(*pid)), "--- end of tasks of", round);
            assert!(own.contains(&format!("tasks of ('{name}'")), "{own}");
        }
        let root_log = wait_for_in_file(
            &in_dir(&dir, log_path(root)),
            "=== end of gathered task trees ===",
            round,
        );
        let gathered = root_log
            .rsplit("=== smol-devx: gathered task trees")
            .next()
            .unwrap();
        // Ordered by the actor tree, each actor indented under its parent,
        // with where it waits.
        let at = |part: &str| {
            gathered
                .find(part)
                .unwrap_or_else(|| panic!("no {part:?} in {gathered}"))
        };
        assert!(at("\nactor ('root'") < at("\n  actor ('hang_in_sub'"));
        assert!(at("\n  actor ('hang_in_sub'") < at("\n    actor ('sleeper'"));
        assert!(at("await \"hang on purpose (shielded)\"") > at("actor ('hang_in_sub'"));
        assert!(at("await \"sleep forever\"") > at("actor ('sleeper'"));

        let json = std::fs::read(in_dir(&dir, json_path(root))).unwrap();
        let dump: ActorDump = serde_json::from_slice(&json).unwrap();
        let actors: Vec<(String, u32)> = dump
            .actors()
            .iter()
            .map(|a| (a.actor.name.to_string(), a.pid))
            .collect();
        assert_eq!(actors, pids);
        assert!(dump.actors().iter().all(|a| a.tasks.is_some()));
    }

    still_running_then_end(run, &pids, &dir);
}

/// `kill -USR1 $(pgrep app)`: every actor is signalled at once, and also
/// by its parent's relay; each still dumps once, and the root's gathered
/// dump has them all.
#[test]
fn signalling_every_actor_at_once_dumps_each_once() {
    let dir = tmpdir("all");
    let names = ["root", "hang_in_sub", "sleeper"];
    let (mut run, pids) = start(&dir, &[], &names);
    for (_, pid) in &pids {
        usr1(*pid);
    }
    run.expect("smol-devx: gathered task trees of 3 actors (0 missing)", T);
    for (_, pid) in &pids {
        wait_for_in_file(&in_dir(&dir, log_path(*pid)), "--- end of tasks of", 1);
    }
    // Let any second dump land, had the burst made one.
    std::thread::sleep(std::time::Duration::from_millis(300));
    for (name, pid) in &pids {
        let log = std::fs::read_to_string(in_dir(&dir, log_path(*pid))).unwrap();
        assert_eq!(
            log.matches("--- end of tasks of").count(),
            1,
            "{name}: {log}"
        );
    }
    still_running_then_end(run, &pids, &dir);
}

#[test]
fn an_actor_that_cannot_answer_is_marked_missing_and_the_rest_is_dumped() {
    let dir = tmpdir("blocked");
    let names = ["root", "hang_in_sub", "sleeper", "blocked"];
    let (mut run, pids) = start(&dir, &["--blocked"], &names);
    let root = pids[0].1;
    usr1(root);
    run.expect("smol-devx: gathered task trees of 4 actors (1 missing)", T);
    let dump: ActorDump =
        serde_json::from_slice(&std::fs::read(in_dir(&dir, json_path(root))).unwrap()).unwrap();
    let missing: Vec<&str> = dump
        .actors()
        .iter()
        .filter(|a| a.tasks.is_none())
        .map(|a| &*a.actor.name)
        .collect();
    assert_eq!(missing, ["blocked"]);
    let blocked = dump.actors()[3].missing.clone().unwrap();
    assert!(blocked.contains("no reply within"), "{blocked}");
    // Its watcher runs off the blocked thread: its own dump names the
    // task that blocks it, still in its poll.
    let own = wait_for_in_file(&in_dir(&dir, log_path(pids[3].1)), "--- end of tasks of", 1);
    let stuck = own
        .lines()
        .find(|l| l.contains("task #") && l.contains("blocked #"))
        .unwrap_or_else(|| panic!("{own}"));
    assert!(stuck.contains(" polling "), "{stuck}");
    still_running_then_end(run, &pids, &dir);
}
