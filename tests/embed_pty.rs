//! The debugger embedded in an actor system that is not this crate's
//! (`examples/embed`: its own spawning, IPC and executor), on smol and on
//! async-std, driven through a real pseudo-terminal: the pause, `p x`,
//! ctrl-c, the crash REPLs in order, the gathered `kill -USR1` dump, the
//! exit code, and nothing left behind in `$TMPDIR`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::pty::{assert_before, assert_no_frame_of, Pty};
use common::{assert_reaped, pause_site, pid_on};
use rustix::process::Signal;
use smol_devx::debug::repl::{CRASH_MSG, PAUSE_MSG};

/// Waits until `path` exists.
fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The actor names of a gathered dump, depth first.
fn actor_names(dump: &serde_json::Value, out: &mut Vec<String>) {
    out.push(dump["actor"]["name"].as_str().unwrap().to_owned());
    for child in dump["children"].as_array().unwrap() {
        actor_names(child, out);
    }
}

fn drive(example: &str, usr1: bool) {
    let tmp = common::fresh_tmpdir(&format!("embed-{example}-{usr1}"));
    let tmp_str = tmp.to_str().unwrap();
    let mut env = vec![("TMPDIR", tmp_str)];
    if usr1 {
        env.push(("SMOL_DEVX_STACK_ON_SIG", "1"));
    }
    let mut pty = Pty::spawn(example, &env);
    let root = pty.pid();
    let mut seen = pty.expect_prompt();
    assert_before(
        &seen,
        &[
            PAUSE_MSG,
            "('pauser', '",
            &format!("> {}", pause_site(example)),
        ],
    );
    pty.send_line("p x");
    let before = pty.expect_prompt();
    assert_before(&before, &["x = 42"]);
    seen.push_str(&before);
    // gdb reads the pauser's frame from the host executor's poll too.
    if !usr1 && common::gdb_installed() {
        pty.send_line("p x + 1");
        assert_before(&pty.expect_prompt(), &["x + 1 = 43"]);
    }
    // The host's executor (async-std's, or smol's) shows no frame.
    pty.send_line("bt");
    let bt = pty.expect_prompt();
    assert!(bt.contains(&format!("{example}::pauser")), "{bt}");
    assert_no_frame_of(
        &bt,
        &[
            "async_std::",
            "async_global_executor::",
            "async_executor::",
            "async_task::",
            "smol::",
        ],
    );
    seen.push_str(&bt);

    // `crasher` is up (its socket is bound once its host is installed)
    // and queued behind `pauser`.
    wait_for(&tmp.join(format!("toy-{root}")).join("crasher.sock"));
    // ctrl-c as the line editor sees it, then as the terminal sends it in
    // cooked mode, to every process of the tree: nothing changes.
    pty.send_raw(b"\x03");
    seen.push_str(&pty.expect_prompt());
    pty.signal_group(Signal::INT);
    // The root judged it while `pauser` held the terminal (judged later,
    // between two REPLs, it would rightly cancel the tree).
    seen.push_str(&pty.expect("ignoring ctrl-c"));
    pty.send_line("p x");
    let before = pty.expect_prompt();
    assert_before(&before, &["x = 42"]);
    seen.push_str(&before);

    if usr1 {
        let json = tmp.join(format!("smol-devx-tree-{root}.json"));
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(root as i32).unwrap(),
            Signal::USR1,
        )
        .unwrap();
        wait_for(&json);
        // Written in one go, but give the writer its moment.
        let dump: serde_json::Value = loop {
            if let Ok(dump) = serde_json::from_slice(&std::fs::read(&json).unwrap()) {
                break dump;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut names = Vec::new();
        actor_names(&dump, &mut names);
        names.sort();
        assert_eq!(names, ["crasher", "pauser", "root"], "{dump}");
        pty.send_line("p x");
        assert_before(&pty.expect_prompt(), &["x = 42"]);
    }

    pty.send_line("c");
    let before = pty.expect_prompt();
    assert_before(&before, &[CRASH_MSG, "('crasher', '", "config is missing"]);
    seen.push_str(&before);
    pty.send_line("c");
    let before = pty.expect_prompt();
    assert_before(
        &before,
        &[
            CRASH_MSG,
            "('root', '",
            "('crasher', '",
            "config is missing",
        ],
    );
    pty.send_line("c");
    let (rest, code) = pty.expect_exit();
    assert_ne!(code, 0, "{rest}");
    assert!(rest.contains("toy: RemoteActorError: ('crasher'"), "{rest}");

    seen.push_str(&rest);
    let children: Vec<u32> = seen
        .lines()
        .filter(|l| l.starts_with("toy: spawned "))
        .map(pid_on)
        .collect();
    assert_eq!(children.len(), 2, "{seen}");
    assert_reaped(&children);
    // Only the dump files stay: no socket, no directory.
    let mut left: Vec<String> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let dump_file = |name: &str| {
        name.starts_with("smol-devx-") && (name.ends_with(".log") || name.ends_with(".json"))
    };
    left.retain(|name| !dump_file(name));
    assert!(left.is_empty(), "left in $TMPDIR: {left:?}");
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn embedded_on_smol() {
    drive("embed_host", false);
}

#[test]
fn embedded_on_smol_dumps_the_whole_tree_on_usr1() {
    drive("embed_host", true);
}

#[test]
fn embedded_on_async_std() {
    drive("embed_async_std", false);
}

#[test]
fn embedded_on_async_std_dumps_the_whole_tree_on_usr1() {
    drive("embed_async_std", true);
}
